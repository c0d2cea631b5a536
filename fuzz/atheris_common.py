"""What the atheris targets share: instrumentation, the seed corpus, the run and replay modes.

A target module does::

    with atheris_common.instrumented():
        from capif8sec... import ...          # first import of capif8sec: instrumented
    ...
    if __name__ == "__main__":
        atheris_common.main(test_one_input, seeds())

``python fuzz/TARGET.py [CORPUS_DIR ...] [-libfuzzer_flag=value ...]`` fuzzes (libFuzzer flags
such as ``-max_total_time=600``, ``-runs=N``, ``-seed=1``, ``-print_final_stats=1``).  The first
corpus directory is seeded with :func:`seeds` when it is empty; without one a temporary
directory is used.  ``python fuzz/TARGET.py --replay PATH ...`` runs the target once on every
file (or every file in each directory) without atheris -- to reproduce a crash file, or to
measure line coverage of a corpus with coverage.py; without paths it replays the seeds.

The contract under test: only :class:`~capif8sec.errors.Capif8secError` may leave the code under
test.  A target catches that family and nothing else, so any other exception reaches atheris,
which reports it as a crash and saves the input (``crash-<sha1>``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["REPLAY", "instrumented", "main"]

#: True when the target runs as ``--replay`` (no atheris, no instrumentation).
REPLAY = "--replay" in sys.argv[1:]

Target = Callable[[bytes], None]


def instrumented() -> contextlib.AbstractContextManager[Any]:
    """Instrument ``capif8sec`` modules imported inside the block (not in replay mode)."""
    if REPLAY:
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=["capif8sec"])  # type: ignore[no-any-return]


def quiet() -> None:
    """Mutated certificates make cryptography warn (negative serials, ...): not findings."""
    warnings.simplefilter("ignore")


def _files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def replay(target: Target, paths: list[str]) -> int:
    """Run ``target`` on each file; report the count; an exception propagates (a crash)."""
    count = 0
    start = time.monotonic()
    for path in _files(paths):
        target(path.read_bytes())
        count += 1
    print(f"replayed {count} inputs in {time.monotonic() - start:.1f}s: no crash", flush=True)
    return 0


def _seed(directory: Path, seeds: Mapping[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    for name, data in seeds.items():
        (directory / f"seed-{name}").write_bytes(data)


def main(target: Target, seeds: Mapping[str, bytes]) -> None:
    """Fuzz ``target`` (or replay files into it with ``--replay``); does not return."""
    quiet()
    argv = list(sys.argv)
    if REPLAY:
        paths = [a for a in argv[1:] if a != "--replay"]
        if not paths:  # the seeds themselves: a smoke test that needs no atheris
            with tempfile.TemporaryDirectory() as tmp:
                _seed(Path(tmp), seeds)
                sys.exit(replay(target, [tmp]))
        sys.exit(replay(target, paths))
    import atheris

    positional = [a for a in argv[1:] if not a.startswith("-")]
    if not positional:
        directory = tempfile.mkdtemp(prefix=f"capif8sec-{Path(argv[0]).stem}-")
        print(f"corpus: {directory}", flush=True)
        argv.append(directory)
        positional = [directory]
    first = Path(positional[0])
    if first.is_dir() or not first.exists():  # a file is an input to reproduce, not a corpus
        _seed(first, seeds)
    atheris.Setup(argv, target)
    atheris.Fuzz()
