"""Lint one certificate against a TS 33.310 profile."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from capif8sec.certs.facts import CertFacts, issuer_key_facts
from capif8sec.certs.parse import _PEM_CERT, CertificateInput, load_certificate
from capif8sec.certs.profiles import Profile, check_deviations, get_profile
from capif8sec.certs.report import Finding, Report, Severity
from capif8sec.certs.rules import Check, LintContext, Rule

__all__ = ["lint"]


def lint(
    certificate: CertificateInput,
    profile: str | Profile = "tls-entity",
    role: str | None = None,
    *,
    issuer: CertificateInput | None = None,
    deviations: Iterable[str] = (),
    strict: bool = False,
) -> Report:
    """Check one certificate against a profile and return every finding.

    :param certificate: PEM or DER bytes, or a ``cryptography`` certificate.
    :param profile: ``tls-entity`` (6.1.3a), ``sba-nf`` (6.1.3c), ``tls-ca`` (6.1.4a) or
        ``interconnection-ca`` (6.1.2), or a :class:`Profile`.
    :param role: ``server`` or ``client`` (``both`` for ``sba-nf``); end-entity profiles need
        one, CA profiles take none.
    :param issuer: the issuing certificate, when known: enables the signer-strength (R8) and
        AKI (6.1.3c) checks.  A self-issued certificate is its own issuer.
    :param deviations: names from :data:`~capif8sec.certs.profiles.DEVIATIONS`.
    :param strict: report warnings as errors (R10/R11 strict mode).
    :raises CertificateParseError: the input is not a certificate.
    :raises UsageError: unknown profile, role or deviation.
    """
    prof = get_profile(profile)
    role = prof.check_role(role)
    devs = check_deviations(deviations)
    cert = load_certificate(certificate)
    issuer_cert = load_certificate(issuer) if issuer is not None else None
    return lint_certificate(cert, prof, role, issuer_cert, devs, strict, der=der_input(certificate))


def der_input(data: CertificateInput) -> bytes | None:
    """``data`` itself when :func:`load_certificate` reads it as one DER certificate, else None.

    cryptography's DER parser is strict (minimal lengths, no encoded defaults, no trailing
    data), so a certificate parsed from these bytes re-encodes to exactly them: hashing them is
    the SHA-256 fingerprint, without the re-encoding ``Certificate.fingerprint`` does.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if _PEM_CERT not in raw and (raw[:1] == b"0" or not raw.lstrip().startswith(b"-----BEGIN")):
            return raw
    return None


def lint_certificate(
    cert: x509.Certificate,
    prof: Profile,
    role: str | None,
    issuer_cert: x509.Certificate | None,
    devs: frozenset[str],
    strict: bool,
    *,
    der: bytes | None = None,
) -> Report:
    """:func:`lint` on an already loaded certificate, profile, role and deviation set.

    For callers that validated their arguments once (the chain validator).  ``der``, when
    given, must be the encoding ``cert`` was parsed from (see :func:`der_input`).
    """
    facts = CertFacts(cert, der)
    if issuer_cert is None and facts.names.subject == facts.names.issuer:
        issuer_cert = cert
    issuer_key = None
    if issuer_cert is cert:
        issuer_key = facts.key
    elif issuer_cert is not None:
        issuer_key = issuer_key_facts(issuer_cert)
    ctx = LintContext(cert, facts, prof, role, issuer_cert, issuer_key, devs)

    steps, applied = _plan(
        prof, devs, strict, facts.extension_error is not None or not _is_v3(cert)
    )
    findings: list[Finding] = []
    for check, rule, severity in steps:
        for violation in check(ctx):
            findings.append(
                Finding(
                    rule=rule.id,
                    clause=violation.clause or rule.clause,
                    severity=severity,
                    message=violation.message,
                    field=violation.field,
                    requirement=rule.requirement,
                )
            )
    return Report(
        subject=facts.names.subject.rfc4514() or "(empty subject)",
        profile=prof.name,
        role=role,
        findings=tuple(findings),
        deviations=applied,
        fingerprint_sha256=(
            hashlib.sha256(der).hexdigest()
            if der is not None
            else cert.fingerprint(hashes.SHA256()).hex()
        ),
    )


Step = tuple[Check, Rule, Severity]
_PlanKey = tuple[int, frozenset[str], bool, bool]
#: The rules a lint runs, by (id(profile), deviations, strict, skip extension rules); each
#: entry holds its profile, so the id cannot be reused while the entry exists.
_PLANS: dict[_PlanKey, tuple[Profile, tuple[Step, ...], tuple[str, ...]]] = {}


def _plan(
    prof: Profile, devs: frozenset[str], strict: bool, skip_extension_rules: bool
) -> tuple[tuple[Step, ...], tuple[str, ...]]:
    """The (check, rule, severity) steps to run and the deviations they apply, in rule order.

    A function of its arguments only, so worked out once per combination: rules needing
    extensions are left out when ``skip_extension_rules`` (the certificate has no decodable
    extensions, an error of its own); a rule switched off by a deviation in ``devs`` is left
    out and its deviation reported as applied; ``strict`` turns warnings into errors.
    """
    key = (id(prof), devs, strict, skip_extension_rules)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is prof:
        return hit[1], hit[2]
    steps: list[Step] = []
    applied: list[str] = []
    for rule in prof.rules:
        if skip_extension_rules and rule.needs_extensions:
            continue
        if rule.deviation is not None and rule.deviation in devs:
            if rule.deviation not in applied:
                applied.append(rule.deviation)
            continue
        severity = rule.severity
        if strict and severity is Severity.WARNING:
            severity = Severity.ERROR
        steps.append((rule.check, rule, severity))
    plan = (prof, tuple(steps), tuple(applied))
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan[1], plan[2]


_V3 = x509.Version.v3  # an enum member read off its class costs more on 3.11


def _is_v3(cert: x509.Certificate) -> bool:
    try:
        return cert.version is _V3
    except Exception:
        return False
