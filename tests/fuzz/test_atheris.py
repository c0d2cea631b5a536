"""The coverage-guided fuzz targets of ``fuzz/`` (atheris), a short bounded run each (issue 7).

Each target runs in a subprocess for ``CAPIF8SEC_ATHERIS_SECONDS`` (default 15) seconds from
its seed corpus, with libFuzzer's per-input timeout; any exception other than a
:class:`~capif8sec.errors.Capif8secError` is a crash, and so is an input running over the
timeout or the memory limit.  The longer run is ``make fuzz`` (docs/security.md, "Fuzzing").

atheris ships wheels for Linux x86-64 only; elsewhere these tests skip, and the replay test
still runs the targets' seeds and regression inputs without it.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = ("fuzz_certs", "fuzz_scram")
SECONDS = int(os.environ.get("CAPIF8SEC_ATHERIS_SECONDS", "15"))
HAS_ATHERIS = importlib.util.find_spec("atheris") is not None


def _figure(pattern: str, output: str) -> int:
    match = re.search(pattern, output)
    assert match is not None, f"no {pattern!r} in the fuzzer output: {output[-3000:]}"
    return int(match.group(1))


@pytest.mark.skipif(
    not HAS_ATHERIS,
    reason="atheris is not installed (wheels for Linux x86-64 only: pip install -e '.[fuzz]')",
)
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    """R11 and the typed-error contract under coverage guidance: no crash, no hang, no OOM."""
    argv = [
        sys.executable,
        str(FUZZ / f"{target}.py"),
        str(tmp_path / "corpus"),
        f"-max_total_time={SECONDS}",
        "-seed=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={tmp_path}/",
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=SECONDS + 120, cwd=tmp_path, check=False
    )
    output = done.stdout + done.stderr
    found = sorted(
        p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))
    )
    reproducers = {p.name: base64.b64encode(p.read_bytes()[:2048]).decode() for p in found}
    assert done.returncode == 0 and not found, (
        f"{target}: exit {done.returncode}, inputs {reproducers} (base64; replay with "
        f"python fuzz/{target}.py --replay FILE)\n{output[-6000:]}"
    )
    runs = _figure(r"Done (\d+) runs", output)
    coverage = _figure(r"DONE\s+cov: (\d+)", output)
    assert runs >= 1000, output[-3000:]
    print(f"{target}: {runs} inputs in {SECONDS}s, 0 crashes, cov {coverage}")


def test_replay_of_seeds_and_regressions_without_atheris() -> None:
    """The harnesses themselves work (seeds replay clean) and every input kept in
    ``fuzz/regressions/TARGET/`` -- each once a crash -- stays fixed."""
    for target in TARGETS:
        regressions = FUZZ / "regressions" / target.removeprefix("fuzz_")
        runs: list[list[str]] = [[]]  # the seeds
        if regressions.is_dir():
            runs.append([str(regressions)])
        for paths in runs:
            done = subprocess.run(
                [sys.executable, str(FUZZ / f"{target}.py"), "--replay", *paths],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{target} {paths}: {done.stdout}{done.stderr}"
            assert "no crash" in done.stdout
