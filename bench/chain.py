"""Benchmark: chains validated per second, capif8sec.certs.ChainValidator against pyca alone.

Every chain is a distinct P-256 client (ROF) certificate issued by one TLS CA under a root, as
a CCF sees them: the leaf and the TLS CA arrive as DER bytes and the root is the trust anchor.

* pyca: ``cryptography.x509.verification`` with the web-PKI defaults, a client verifier built
  from the same store and time (built once, outside the timing: the cheapest setup pyca allows),
  parsing the two DER certificates for every chain.
* capif8sec: ``ChainValidator(root, crls=[TLS CA's CRL]).verify(leaf_der, [tls_ca_der],
  role="client", at=...)``: the same pyca path validation plus the TS 33.310 profile of every
  element, the 6.1.3a issuing rule (R16), validity (R24) and revocation against the CRL (R25),
  and the SAN identities.  The CRL lists 64 other revoked certificates.

The machine is shared and noisy, so both run in the same process, alternating every few chains
(ABBA order) so that both see the same background load, and the time measured is the process's
CPU time (``time.process_time``), which does not count the time other processes hold the CPU.
Each round's time ratio is taken, and the median of those is the result.  The last
line printed is the ratio.  Not a test: run it directly or with ``make bench``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import sys
import time
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from capif8sec.certs import ChainValidator
from capif8sec.errors import CertificateRevoked
from capif8sec.testing import TestPKI

GOAL = 1.5
_DER = serialization.Encoding.DER


class Setup:
    """The PKI, the leaves (DER), the TLS CA (DER), the CRL and both validators."""

    def __init__(self, leaves: int, revoked: int) -> None:
        pki = TestPKI("p256")
        self.leaves = [pki.client_cert(f"rof-{i}").cert.public_bytes(_DER) for i in range(leaves)]
        gone = [pki.client_cert(f"retired-{i}") for i in range(revoked)]
        crl_pem = pki.crl(revoked=gone)
        self.revoked_leaf = gone[0].cert.public_bytes(_DER)
        self.tls_ca = pki.tls_ca.cert.public_bytes(_DER)
        root_der = pki.root_ca.cert.public_bytes(_DER)
        # capif8sec: configured once, like a CCF at start-up.
        self.validator = ChainValidator(root_der, crls=[crl_pem])
        self.pki = pki
        # pyca: the same anchor, one store, one client verifier for the fixed instant.
        self.at = dt.datetime.now(dt.UTC)
        store = Store([x509.load_der_x509_certificate(root_der)])
        self.verifier = PolicyBuilder().store(store).time(self.at).build_client_verifier()


def run_pyca(setup: Setup, leaves: Sequence[bytes]) -> int:
    """pyca path validation of each leaf with the TLS CA; returns the chain elements seen."""
    load = x509.load_der_x509_certificate
    elements = 0
    for der in leaves:
        verified = setup.verifier.verify(load(der), [load(setup.tls_ca)])
        elements += len(verified.chain)
    return elements


def run_capif8sec(setup: Setup, leaves: Sequence[bytes]) -> int:
    """capif8sec full validation of each leaf with the TLS CA; returns the elements seen."""
    elements = 0
    for der in leaves:
        verified = setup.validator.verify(der, [setup.tls_ca], role="client", at=setup.at)
        elements += len(verified.chain)
    return elements


def measure_round(setup: Setup, batch: int) -> tuple[float, float]:
    """CPU seconds pyca and capif8sec take for every chain, alternating every ``batch`` chains.

    The order flips at each switch (ABBA), so both see the same background load.
    """
    gc.collect()
    t_py = t_cs = 0.0
    clock = time.process_time
    leaves = setup.leaves
    for i, start in enumerate(range(0, len(leaves), batch)):
        part = leaves[start : start + batch]
        for side in ("py", "cs") if i % 2 == 0 else ("cs", "py"):
            t0 = clock()
            if side == "py":
                run_pyca(setup, part)
                t_py += clock() - t0
            else:
                run_capif8sec(setup, part)
                t_cs += clock() - t0
    return t_py, t_cs


def sanity(setup: Setup) -> None:
    """Both accept every chain (three elements); capif8sec, unlike pyca, refuses a revoked one."""
    if run_pyca(setup, setup.leaves) != 3 * len(setup.leaves):
        sys.exit("pyca did not build three-element chains")
    for der in setup.leaves:
        verified = setup.validator.verify(der, [setup.tls_ca], role="client", at=setup.at)
        if len(verified.chain) != 3 or not verified.revocation[0].startswith("good"):
            sys.exit(f"unexpected capif8sec result: {verified}")
    if run_pyca(setup, [setup.revoked_leaf]) != 3:  # pyca has no revocation checking
        sys.exit("pyca did not accept the revoked certificate's chain")
    try:
        setup.validator.verify(setup.revoked_leaf, [setup.tls_ca], role="client", at=setup.at)
    except CertificateRevoked:
        pass
    else:
        sys.exit("capif8sec accepted a revoked certificate")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leaves", type=int, default=300, help="distinct client certificates")
    parser.add_argument("--revoked", type=int, default=64, help="other entries on the CRL")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--batch", type=int, default=10, help="chains between switches")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    if min(args.leaves, args.revoked, args.rounds, args.batch) < 1:
        parser.error("counts must be positive")

    setup = Setup(args.leaves, args.revoked)
    sanity(setup)  # also the warm-up of both sides
    print(
        f"{len(setup.leaves)} distinct chains (P-256 leaf, TLS CA, root anchor; DER), "
        f"CRL with {args.revoked} entries; {args.rounds} alternating rounds"
    )

    py_rates: list[float] = []
    cs_rates: list[float] = []
    ratios: list[float] = []
    for n in range(args.rounds):
        t_py, t_cs = measure_round(setup, args.batch)
        py_rates.append(len(setup.leaves) / t_py)
        cs_rates.append(len(setup.leaves) / t_cs)
        ratios.append(t_cs / t_py)
        print(
            f"  round {n + 1}: pyca {py_rates[-1]:8.1f} chains/s   "
            f"capif8sec {cs_rates[-1]:8.1f} chains/s   time ratio {t_cs / t_py:5.2f}x"
        )

    # Cold: leaves never seen before (a new ROF every time), the CA elements known.
    cold: list[float] = []
    seen = setup.leaves
    for _ in range(max(3, args.rounds // 2)):
        setup.leaves = [
            setup.pki.client_cert(f"new-{len(cold)}-{i}").cert.public_bytes(_DER)
            for i in range(len(seen))
        ]
        t_py, t_cs = measure_round(setup, args.batch)
        cold.append(t_cs / t_py)
    setup.leaves = seen
    ratio = statistics.median(ratios)
    print(f"pyca:      {statistics.median(py_rates):8.1f} chains/s (median of rounds)")
    print(f"capif8sec: {statistics.median(cs_rates):8.1f} chains/s (median of rounds)")
    print(f"time ratio range over rounds: {min(ratios):.2f}x .. {max(ratios):.2f}x")
    print(f"cold (every leaf never seen before): time ratio {statistics.median(cold):.2f}x")
    print(
        f"ratio capif8sec/pyca time: {ratio:.2f}x (goal <= {GOAL:g}x; default configuration, "
        f"chains seen before; never-seen leaves {statistics.median(cold):.2f}x)"
    )
    return 1 if args.check and ratio > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
