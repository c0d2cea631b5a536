"""Benchmark: SqliteStore lookups stay flat from 10 to 1,000,000 stored ROFs.

Two credential databases are built in a temporary directory: one with 10 ROFs, one with
1,000,000 (each ROF has one PSK and one SCRAM verifier; the big one is filled with
``add_psks`` / ``add_scram_verifiers``, one executemany transaction per 250,000 rows).  Then
``psk_credentials(identity)`` and ``scram_verifier(username)`` are timed on both, for random
stored identities, through the store's normal path: an indexed SELECT, AES-256-GCM decryption,
the record.

The machine is shared and noisy, so both stores run in the same process in alternating rounds
(ABBA order); each round's time ratio big/small is taken, and the median of those is the
result.  The last line printed is that ratio (goal: within 1.5x).  Not a test: run it directly or
with ``make bench``; building the big database takes about a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from capif8sec.auth import PskCredential, ScramVerifier
from capif8sec.auth.stores import KeyEncryptionKey, SqliteStore

GOAL = 1.5
CHUNK = 250_000


def build(path: Path, kek: KeyEncryptionKey, rofs: int) -> SqliteStore:
    """A store holding ``rofs`` PSKs (``rof-N``) and ``rofs`` SCRAM verifiers (``user-N``)."""
    store = SqliteStore(path, kek)
    urandom = os.urandom
    for start in range(0, rofs, CHUNK):
        stop = min(start + CHUNK, rofs)
        store.add_psks(
            PskCredential(b"rof-%d" % i, urandom(32), "ccf.example", f"k{i}")
            for i in range(start, stop)
        )
        store.add_scram_verifiers(
            (ScramVerifier(f"user-{i}", urandom(16), 4096, urandom(32), urandom(32)), f"u{i}")
            for i in range(start, stop)
        )
    return store


def psk_lookups(store: SqliteStore, picks: Sequence[int], at: dt.datetime) -> int:
    """``psk_credentials`` of each picked ROF; returns how many credentials were found."""
    return sum(len(store.psk_credentials(b"rof-%d" % i, at=at)) for i in picks)


def scram_lookups(store: SqliteStore, picks: Sequence[int], at: dt.datetime) -> int:
    """``scram_verifier`` of each picked user; returns how many verifiers were found."""
    return sum(store.scram_verifier(f"user-{i}", at=at) is not None for i in picks)


KINDS = {"psk_credentials": psk_lookups, "scram_verifier": scram_lookups}


def timed(func: Callable[[], int]) -> tuple[float, int]:
    """Seconds taken by ``func()`` and what it returned."""
    gc.collect()
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=10, help="ROFs in the small store")
    parser.add_argument("--big", type=int, default=1_000_000, help="ROFs in the big store")
    parser.add_argument("--lookups", type=int, default=10000, help="lookups per kind and round")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)

    kek = KeyEncryptionKey.generate()
    at = dt.datetime.now(dt.UTC)
    rng = random.Random(8)
    with tempfile.TemporaryDirectory(prefix="capif8sec-bench-") as tmp:
        started = time.perf_counter()
        small = build(Path(tmp) / "small.db", kek, args.small)
        big = build(Path(tmp) / "big.db", kek, args.big)
        size = (Path(tmp) / "big.db").stat().st_size / 2**20
        print(
            f"built stores of {args.small} and {args.big} ROFs (PSK + SCRAM verifier each) in "
            f"{time.perf_counter() - started:.1f} s; big database {size:.0f} MiB"
        )
        stores = {"small": (small, args.small), "big": (big, args.big)}
        for store, n in stores.values():  # sanity check, and the warm-up of both
            if sum(f(store, [0, n - 1], at) for f in KINDS.values()) != 4:
                sys.exit("a stored credential was not found")

        times = {(kind, name): [] for kind in KINDS for name in stores}  # type: dict[tuple[str, str], list[float]]
        ratios: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for r in range(args.rounds):
            order = ["small", "big"] if r % 2 == 0 else ["big", "small"]
            for kind, func in KINDS.items():
                took = {}
                for name in order:
                    store, n = stores[name]
                    picks = [rng.randrange(n) for _ in range(args.lookups)]
                    took[name], found = timed(lambda f=func, s=store, p=picks: f(s, p, at))  # type: ignore[misc]
                    if found != args.lookups:
                        sys.exit(f"{kind} ({name}): {found} found for {args.lookups} lookups")
                    times[kind, name].append(took[name] / args.lookups)
                ratios[kind].append(took["big"] / took["small"])
            print(
                f"  round {r + 1:2}: "
                + "   ".join(
                    f"{kind} {1e6 * times[kind, 'small'][-1]:5.1f} / "
                    f"{1e6 * times[kind, 'big'][-1]:5.1f} us ({ratios[kind][-1]:4.2f}x)"
                    for kind in KINDS
                )
            )
        small.close()
        big.close()

    for kind in KINDS:
        for name, n in (("small", args.small), ("big", args.big)):
            per = 1e6 * statistics.median(times[kind, name])
            print(f"{kind:16} {n:>9} ROFs: {per:6.1f} us per lookup (median of rounds)")
        print(f"{kind:16} ratio big/small: {statistics.median(ratios[kind]):.2f}x")
    ratio = max(statistics.median(r) for r in ratios.values())
    print(
        f"ratio {args.big}/{args.small} ROFs lookup time (worse of the two): {ratio:.2f}x "
        f"(goal <= {GOAL:g}x)"
    )
    return 1 if args.check and ratio > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
