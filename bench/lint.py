"""Benchmark: certificates linted per second, capif8sec.certs.lint against pkilint (RFC 5280).

Both linters get the same DER certificates and start from the bytes, so parsing is included on
both sides.  pkilint runs the validator set of its ``lint_pkix_cert`` command (RFC 5280 decoding
and the issuer, validity, subject, extension and SPKI validators), built once and reused, as
that command builds it.  capif8sec runs the full TS 33.310 6.1.3a profile for the certificate's
role, with its issuer (an already-parsed ``cryptography`` object, as a chain validator has it)
so that the signer-strength rule (R8) runs too.

The machine is shared and noisy, so the two are measured in the same run, alternating every few
certificates (ABBA order) so that both see the same background load, and the time measured is
the process's CPU time (``time.process_time``), which does not count the time other processes
hold the CPU.  The ratio is taken per round; the result is the median of those ratios.  The
last line printed is the ratio.  Not a test: run it directly or with ``make bench``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkilint import loader as pkilint_loader
from pkilint import validation as pkilint_validation
from pkilint.pkix import certificate as pkilint_certificate
from pkilint.pkix import extension as pkilint_extension
from pkilint.pkix import name as pkilint_name

import capif8sec.certs
from capif8sec.testing import TestPKI

GOAL = 50.0
_DER = serialization.Encoding.DER

# (DER certificate, role, issuing CA certificate)
Sample = tuple[bytes, str, x509.Certificate]


def make_corpus(per_kind: int, rsa: int) -> list[Sample]:
    """Distinct conformant certificates: server and client, P-256 and P-384, a few RSA-2048.

    P-384 end entities get their own P-384 PKI: under a P-256 CA they would break R8.
    """
    corpus: list[Sample] = []
    for key_type in ("p256", "p384"):
        pki = TestPKI(key_type)
        ca = pki.tls_ca.cert
        for i in range(per_kind):
            server = pki.server_cert(f"ccf-{i}.{key_type}.capif.example")
            client = pki.client_cert(f"rof-{key_type}-{i}")
            corpus.append((server.cert.public_bytes(_DER), "server", ca))
            corpus.append((client.cert.public_bytes(_DER), "client", ca))
    pki = TestPKI("p256")
    for i in range(rsa):
        issued = (
            pki.server_cert(f"rsa-{i}.capif.example", key_type="rsa2048")
            if i % 2 == 0
            else pki.client_cert(f"rof-rsa-{i}", key_type="rsa2048")
        )
        role = "server" if i % 2 == 0 else "client"
        corpus.append((issued.cert.public_bytes(_DER), role, pki.tls_ca.cert))
    return corpus


def make_pkilint_validator() -> Any:
    """The validator container of pkilint's ``lint_pkix_cert`` command (RFC 5280 only)."""
    return pkilint_certificate.create_pkix_certificate_validator_container(
        pkilint_certificate.create_decoding_validators(
            pkilint_name.ATTRIBUTE_TYPE_MAPPINGS, pkilint_extension.EXTENSION_MAPPINGS
        ),
        [
            pkilint_certificate.create_issuer_validator_container([]),
            pkilint_certificate.create_validity_validator_container(),
            pkilint_certificate.create_subject_validator_container([]),
            pkilint_certificate.create_extensions_validator_container([]),
            pkilint_certificate.create_spki_validator_container([]),
        ],
    )


def run_pkilint(validator: Any, samples: Sequence[Sample]) -> int:
    """Lint every sample with pkilint; returns the number of findings (INFO and above)."""
    findings = 0
    for der, _role, _issuer in samples:
        document = pkilint_loader.load_der_certificate(der, "bench")
        for result in validator.validate(document.root):
            findings += len(result.finding_descriptions)
    return findings


def run_capif8sec(samples: Sequence[Sample]) -> int:
    """Lint every sample with capif8sec; returns the number of findings."""
    findings = 0
    for der, role, issuer in samples:
        report = capif8sec.certs.lint(der, "tls-entity", role, issuer=issuer)
        findings += len(report.findings)
    return findings


def measure_round(
    validator: Any, chunk: Sequence[Sample], passes: int, batch: int
) -> tuple[float, float, int, int]:
    """Time both linters on ``chunk``, alternating every ``batch`` certificates (ABBA).

    Fine-grained alternation exposes both to the same background load.  Returns the seconds
    pkilint took to lint the chunk once, the seconds capif8sec took to lint it ``passes``
    times, and the findings of each (per pass).
    """
    gc.collect()
    t_pk = t_cs = 0.0
    f_pk = f_cs = 0
    clock = time.process_time
    for i, start in enumerate(range(0, len(chunk), batch)):
        part = chunk[start : start + batch]
        for side in ("pk", "cs") if i % 2 == 0 else ("cs", "pk"):
            if side == "pk":
                t0 = clock()
                f_pk += run_pkilint(validator, part)
                t_pk += clock() - t0
            else:
                f = 0
                t0 = clock()
                for _ in range(passes):
                    f = run_capif8sec(part)
                t_cs += clock() - t0
                f_cs += f
    return t_pk, t_cs, f_pk, f_cs


def sanity(validator: Any, corpus: Sequence[Sample]) -> None:
    """Both linters must actually do their work and agree the corpus is sound."""
    for der, role, issuer in corpus:
        report = capif8sec.certs.lint(der, "tls-entity", role, issuer=issuer)
        if not report.compliant:
            sys.exit(f"capif8sec finds a test certificate non-compliant:\n{report.to_text()}")
    unhandled = pkilint_validation.Validator.VALIDATION_FINDING_UNHANDLED_EXCEPTION
    for der, _role, _issuer in corpus[:20]:
        document = pkilint_loader.load_der_certificate(der, "bench")
        for result in validator.validate(document.root):
            for description in result.finding_descriptions:
                if description.finding is unhandled:
                    sys.exit(f"pkilint raised while validating: {description}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-kind", type=int, default=80, help="certificates per key/role")
    parser.add_argument("--rsa", type=int, default=12, help="RSA-2048 certificates")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds")
    parser.add_argument(
        "--capif-passes", type=int, default=10, help="capif8sec passes per round and chunk"
    )
    parser.add_argument(
        "--batch", type=int, default=20, help="certificates between switches of linter"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    if min(args.per_kind, args.rounds, args.capif_passes, args.batch) < 1 or args.rsa < 0:
        parser.error("counts must be positive")

    corpus = make_corpus(args.per_kind, args.rsa)
    validator = make_pkilint_validator()
    sanity(validator, corpus)
    # Each round takes its own chunk of the corpus: pkilint lints it once, capif8sec
    # ``capif_passes`` times (it is far faster; this keeps both timings well above noise).
    chunks = [corpus[i :: args.rounds] for i in range(args.rounds)]
    run_pkilint(validator, chunks[0][:5])  # warm-up: imports, lazily built tables
    run_capif8sec(chunks[0][:5])
    print(
        f"{len(corpus)} distinct certificates (DER): P-256 and P-384 server/client, "
        f"{args.rsa} RSA-2048; {args.rounds} alternating rounds"
    )

    pk_rates: list[float] = []
    cs_rates: list[float] = []
    ratios: list[float] = []
    pk_findings = cs_findings = 0
    for n, chunk in enumerate(chunks):
        t_pk, t_cs, f_pk, f_cs = measure_round(validator, chunk, args.capif_passes, args.batch)
        pk_findings += f_pk
        cs_findings += f_cs
        pk_rate = len(chunk) / t_pk
        cs_rate = len(chunk) * args.capif_passes / t_cs
        pk_rates.append(pk_rate)
        cs_rates.append(cs_rate)
        ratios.append(cs_rate / pk_rate)
        print(
            f"  round {n + 1}: pkilint {pk_rate:8.1f} certs/s   capif8sec {cs_rate:9.1f} certs/s"
            f"   ratio {cs_rate / pk_rate:6.1f}x"
        )

    ratio = statistics.median(ratios)
    print(
        f"findings over the corpus: pkilint {pk_findings} (RFC 5280, INFO and above), "
        f"capif8sec {cs_findings} (TS 33.310, all severities)"
    )
    print(f"pkilint:   {statistics.median(pk_rates):9.1f} certs/s (median of rounds)")
    print(f"capif8sec: {statistics.median(cs_rates):9.1f} certs/s (median of rounds)")
    print(f"ratio range over rounds: {min(ratios):.1f}x .. {max(ratios):.1f}x")
    print(f"ratio capif8sec/pkilint: {ratio:.1f}x (goal >= {GOAL:g}x)")
    return 1 if args.check and ratio < GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
