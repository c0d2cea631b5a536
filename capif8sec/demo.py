"""``capif8sec demo``: what the library does, end to end, on a freshly minted test PKI.

Today it covers the certificate layer (TS 33.310): mint a PKI, lint every certificate, validate
the CCF and ROF chains with the TLS CA's CRL, and show the refusals the profile demands.  Each
step states its expected outcome; the demo exits 0 only if every outcome was as expected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TextIO

from attrs import frozen

from capif8sec.certs import ChainValidator, lint
from capif8sec.errors import Capif8secError
from capif8sec.testing import TestPKI

__all__ = ["Outcome", "run_demo"]


@frozen
class Outcome:
    """One demo step: what was tried, what was expected, what happened."""

    step: str
    expected: str
    actual: str
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the step turned out as expected."""
        return self.expected == self.actual


def _attempt(step: str, expected: str, action: Callable[[], str]) -> Outcome:
    try:
        detail = action()
        actual = "accepted"
    except Capif8secError as exc:
        detail = f"{type(exc).__name__}: {exc}"
        actual = "refused"
    return Outcome(step, expected, actual, detail)


def run_demo(fmt: str, out: TextIO) -> int:
    """Run every step, print a table (or JSON), return 0 only if all went as expected."""
    pki = TestPKI()
    ccf = pki.server_cert("ccf.capif.example")
    rof = pki.client_cert("rof-1")
    revoked = pki.client_cert("rof-revoked")
    crl = pki.crl(revoked=[revoked])
    validator = ChainValidator(pki.trust_anchor_pem, crls=[crl])

    def lint_ok(cert: object, profile: str, role: str | None, issuer: object) -> Callable[[], str]:
        def run() -> str:
            report = lint(cert, profile, role, issuer=issuer)  # type: ignore[arg-type]
            if not report.compliant:
                raise _NotCompliant("; ".join(f"{f.rule}: {f.message}" for f in report.errors))
            return f"compliant, {len(report.findings)} finding(s)"

        return run

    def verify(issued: object, role: str) -> Callable[[], str]:
        def run() -> str:
            v = validator.verify(issued.cert, issued.intermediates, role=role)  # type: ignore[attr-defined]
            ids = v.identities
            return f"identities {list(ids.uris) + list(ids.dns_names)}; {v.revocation[0]}"

        return run

    steps = [
        _attempt(
            "lint root CA (6.1.2)",
            "accepted",
            lint_ok(pki.root_ca.cert, "interconnection-ca", None, None),
        ),
        _attempt(
            "lint TLS CA (6.1.4a)",
            "accepted",
            lint_ok(pki.tls_ca.cert, "tls-ca", None, pki.root_ca.cert),
        ),
        _attempt(
            "lint CCF server cert (6.1.3a)",
            "accepted",
            lint_ok(ccf.cert, "tls-entity", "server", pki.tls_ca.cert),
        ),
        _attempt(
            "lint ROF client cert (6.1.3a)",
            "accepted",
            lint_ok(rof.cert, "tls-entity", "client", pki.tls_ca.cert),
        ),
        _attempt("validate CCF chain + CRL as server", "accepted", verify(ccf, "server")),
        _attempt("validate ROF chain + CRL as client", "accepted", verify(rof, "client")),
        _attempt("ROF cert presented as a server cert (EKU)", "refused", verify(rof, "server")),
        _attempt("revoked ROF cert", "refused", verify(revoked, "client")),
    ]
    for rule in (
        "ee.key_usage_digital_signature",
        "ee.crl_distribution_point",
        "common.signature_hash",
    ):
        broken = pki.breaking(rule, "client")
        steps.append(
            _attempt(
                f"cert breaking {rule}",
                "refused",
                lint_ok(broken.cert, broken.profile, broken.role, broken.issuer),
            )
        )

    all_ok = all(s.ok for s in steps)
    if fmt == "json":
        json.dump(
            {
                "ok": all_ok,
                "steps": [
                    {
                        "step": s.step,
                        "expected": s.expected,
                        "actual": s.actual,
                        "ok": s.ok,
                        "detail": s.detail,
                    }
                    for s in steps
                ],
            },
            out,
            indent=2,
        )
        out.write("\n")
    else:
        width = max(len(s.step) for s in steps)
        out.write(f"{'step':{width}}  expected  actual    ok  detail\n")
        for s in steps:
            mark = "yes" if s.ok else "NO"
            out.write(f"{s.step:{width}}  {s.expected:8}  {s.actual:8}  {mark:3} {s.detail}\n")
        out.write(f"\n{'all outcomes as expected' if all_ok else 'UNEXPECTED OUTCOMES'}\n")
    return 0 if all_ok else 1


class _NotCompliant(Capif8secError):
    """A demo step's certificate did not pass its profile."""
