"""Benchmark: policy decisions per second with 10 rules and with 1,000,000 rules.

Two policies of the same shape are built programmatically: rule ``r<N>`` lets the ROF whose
certificate carries the URI-ID ``urn:capif:rof:rof-<N>`` answer authorization requests (and
revoke) for the owner ``msisdn-49<N, 10 digits>``, for two purposes, authenticated by
certificate or PSK.  One policy has 10 such rules, the other 1,000,000 (exact identities).

Each decision is :meth:`capif8sec.policy.PolicyEngine.decide` on a certificate-authenticated
peer (an ``AuthenticatedPeer`` over a ``TlsPeer`` whose SAN holds the URI-ID): identity
extraction, the revocation check, the rule lookup, the decision record, and the audit check
(the ``capif8sec.policy.audit`` logger is left at its default level, so records are built only
if someone listens).  Every ``--deny-every``-th request asks for another ROF's owner and must
be denied; the rest must be allowed; both are counted and checked.

The machine is shared and noisy, so both engines run in the same process, in alternating
rounds (ABBA order), each round on fresh random picks; the time is the process CPU time; each
round's time ratio big/small is taken and the median is the result.  The last line printed is
that ratio (goal: within 1.5x).  ``--curve 1000,10000,100000,1000000`` instead prints the
time of each of those sizes against the small policy's, measured in the same rounds;
``--floor`` adds a baseline: the small policy's decision plus one lookup in a plain dict of
``--big`` keys, against the same with a dict of ``--small`` keys (what one hash lookup in a big
table costs here, whatever the design).  Not a test: run it directly or with ``make bench``.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.policy import Operation, Policy, PolicyEngine, PolicyRequest, Rule
from capif8sec.tls.check import TlsPeer

GOAL_RATIO = 1.5
GOAL_RATE = 200_000

OPERATIONS = frozenset({Operation.AUTHORIZE, Operation.REVOKE})
METHODS = frozenset({Method.CERTIFICATE, Method.PSK})
PURPOSES = ("service-assurance", "fraud-prevention")


def owner(n: int) -> str:
    """The resource owner of ROF ``n``."""
    return f"msisdn-49{n:010d}"


def build(rules: int) -> PolicyEngine:
    """An engine whose policy has ``rules`` rules, one per ROF."""
    return PolicyEngine(
        Policy(
            Rule(f"r{n}", f"uri:urn:capif:rof:rof-{n}", owner(n), OPERATIONS, METHODS, PURPOSES)
            for n in range(rules)
        )
    )


def peer(n: int) -> AuthenticatedPeer:
    """ROF ``n`` as the certificate authenticator hands it over."""
    uri = f"urn:capif:rof:rof-{n}"
    tls = TlsPeer(
        "server",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "certificate",
        CertificateIdentities(uris=(uri,)),
        None,
        None,
        None,
    )
    return AuthenticatedPeer(uri, Method.CERTIFICATE, {"tls_version": "TLSv1.3"}, tls)


def workload(
    rng: random.Random, rofs: int, count: int, deny_every: int
) -> list[tuple[AuthenticatedPeer, PolicyRequest]]:
    """``count`` (peer, request) pairs for random ROFs; every ``deny_every``-th asks for the
    owner of another ROF."""
    out = []
    for i in range(count):
        n = rng.randrange(rofs)
        asked = (n + 1) % rofs if deny_every and i % deny_every == deny_every - 1 else n
        request = PolicyRequest(Operation.AUTHORIZE, owner(asked), PURPOSES[i % 2])
        out.append((peer(n), request))
    return out


def run(
    engine: PolicyEngine, work: Sequence[tuple[AuthenticatedPeer, PolicyRequest]]
) -> tuple[float, int]:
    """CPU seconds taken to decide every pair, and how many were allowed."""
    decide = engine.decide
    start = time.process_time()
    allowed = 0
    for p, r in work:
        if decide(p, r).allowed:
            allowed += 1
    return time.process_time() - start, allowed


def floor(args: argparse.Namespace) -> int:
    """The same rounds as the default run, plus a baseline: the small policy's decision
    followed by one lookup of a fresh (identity, owner) string in a plain dict of ``--big``
    keys, against the same with a dict of ``--small`` keys.  That ratio is what any design
    that finds the rule with one hash lookup would show here, given the rest of the decision;
    the engine's ratio is printed beside it."""
    gc.disable()
    small, big = build(args.small), build(args.big)
    dicts = {
        n: {f"uri:urn:capif:rof:rof-{i}\x00{owner(i)}": f"r{i}" for i in range(n)}
        for n in (args.small, args.big)
    }
    gc.enable()
    gc.collect()
    rng = random.Random(8)

    def probed(n: int) -> list[tuple[AuthenticatedPeer, PolicyRequest, str, str]]:
        work = workload(rng, args.small, args.decisions, args.deny_every)
        picks = [rng.randrange(n) for _ in work]
        return [
            (p, r, f"uri:urn:capif:rof:rof-{i}", owner(i))
            for (p, r), i in zip(work, picks, strict=True)
        ]

    def run_probed(n: int) -> float:
        decide, get, work = small.decide, dicts[n].get, probed(n)
        start = time.process_time()
        for p, r, ident, own in work:
            decide(p, r)
            get(f"{ident}\x00{own}")
        return time.process_time() - start

    tasks: dict[str, Callable[[], float]] = {
        "small": lambda: run(small, workload(rng, args.small, args.decisions, args.deny_every))[0],
        "big": lambda: run(big, workload(rng, args.big, args.decisions, args.deny_every))[0],
        "probe-small": lambda: run_probed(args.small),
        "probe-big": lambda: run_probed(args.big),
    }
    ours: list[float] = []
    floors: list[float] = []
    names = list(tasks)
    for r in range(args.rounds + 1):  # round 0 warms up
        took = {name: tasks[name]() for name in names[r % 4 :] + names[: r % 4]}
        if r:
            ours.append(took["big"] / took["small"])
            floors.append(took["probe-big"] / took["probe-small"])
    mine, base = statistics.median(ours), statistics.median(floors)
    print(
        f"floor: a {args.small}-rule decision plus one lookup in a dict of {args.big} keys: "
        f"{base:.2f}x the same with {args.small} keys (range {min(floors):.2f}x to "
        f"{max(floors):.2f}x)"
    )
    print(
        f"ratio {args.big}/{args.small} rules decision time: {mine:.2f}x (range "
        f"{min(ours):.2f}x to {max(ours):.2f}x; goal <= {GOAL_RATIO:g}x; floor {base:.2f}x)"
    )
    return 0


def curve(args: argparse.Namespace, sizes: list[int]) -> int:
    """Each round times the small policy and every size, in an order rotated per round; the
    median ratio per size is printed (the cache hierarchy shows as steps, the index as none)."""
    gc.disable()
    engines = {n: build(n) for n in [args.small, *sizes]}
    gc.enable()
    gc.collect()
    rng = random.Random(8)
    ratios: dict[int, list[float]] = {n: [] for n in sizes}
    names = list(engines)
    for r in range(args.rounds + 1):  # round 0 warms up
        took = {}
        for n in names[r % len(names) :] + names[: r % len(names)]:
            took[n], _ = run(engines[n], workload(rng, n, args.decisions, args.deny_every))
        if r:
            for n in sizes:
                ratios[n].append(took[n] / took[args.small])
    for n in sizes:
        print(
            f"{n:>9} rules: {statistics.median(ratios[n]):.2f}x the {args.small}-rule time "
            f"(range {min(ratios[n]):.2f}x to {max(ratios[n]):.2f}x)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=10, help="rules in the small policy")
    parser.add_argument("--big", type=int, default=1_000_000, help="rules in the big policy")
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions per round")
    parser.add_argument("--rounds", type=int, default=12, help="alternating rounds")
    parser.add_argument(
        "--deny-every", type=int, default=10, help="every Nth request is denied (0: none)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--curve",
        metavar="SIZES",
        help="instead: the decision time of policies of these sizes (comma-separated) against "
        "the small one's, in the same rounds, to show where the growth stops",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="instead: also time the 10-rule decision plus one lookup in a plain dict of "
        "--big keys (the memory floor of any one-lookup design), in the same rounds",
    )
    args = parser.parse_args(argv)
    if args.floor:
        return floor(args)
    if args.curve:
        return curve(args, [int(size) for size in args.curve.split(",")])

    started = time.perf_counter()
    gc.disable()  # building a million rules is much faster without the cyclic collector
    engines = {"small": (build(args.small), args.small), "big": (build(args.big), args.big)}
    gc.enable()
    gc.collect()
    print(
        f"built policies of {args.small} and {args.big} rules in "
        f"{time.perf_counter() - started:.1f} s"
    )
    rng = random.Random(8)  # picking ROFs, not keys
    denied_per_round = args.decisions // args.deny_every if args.deny_every else 0
    for engine, n in engines.values():  # sanity check, and the warm-up of both
        _, allowed = run(engine, workload(rng, n, args.decisions, args.deny_every))
        if allowed != args.decisions - denied_per_round:
            sys.exit(f"{allowed} allowed of {args.decisions}, expected {denied_per_round} denied")

    times: dict[str, list[float]] = {"small": [], "big": []}
    ratios: list[float] = []
    for r in range(args.rounds):
        order = ["small", "big"] if r % 2 == 0 else ["big", "small"]
        took = {}
        for name in order:
            engine, n = engines[name]
            work = workload(rng, n, args.decisions, args.deny_every)
            took[name], allowed = run(engine, work)
            if allowed != args.decisions - denied_per_round:
                sys.exit(f"{name}: {allowed} allowed of {args.decisions}")
            times[name].append(took[name] / args.decisions)
        ratios.append(took["big"] / took["small"])
        print(
            f"  round {r + 1:2}: {args.small} rules {1e6 * times['small'][-1]:5.2f} us, "
            f"{args.big} rules {1e6 * times['big'][-1]:5.2f} us per decision "
            f"({ratios[-1]:4.2f}x)"
        )
    rates = {name: 1 / statistics.median(t) for name, t in times.items()}
    for name, n in (("small", args.small), ("big", args.big)):
        print(
            f"{n:>9} rules: {rates[name]:9,.0f} decisions/s (median of rounds; "
            f"goal >= {GOAL_RATE:,})"
        )
    ratio = statistics.median(ratios)
    print(
        f"ratio {args.big}/{args.small} rules decision time: {ratio:.2f}x "
        f"(range {min(ratios):.2f}x to {max(ratios):.2f}x; goal <= {GOAL_RATIO:g}x)"
    )
    missed = ratio > GOAL_RATIO or min(rates.values()) < GOAL_RATE
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
