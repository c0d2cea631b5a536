"""Every TS 33.310 profile rule, broken alone, is reported by its own id (R1-R23).

For each rule the test PKI makes a certificate that breaks exactly that rule; the lint must
report that rule with the rule's severity and no other error.  The conformant certificates of the
test PKI must produce no finding at all, even in strict mode.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from capif8sec.certs import PROFILES, Severity, all_rules, lint
from capif8sec.certs.report import Report
from capif8sec.errors import CertificateParseError, UsageError
from capif8sec.testing import TestPKI, breakable_rules

LINT_RULES = {rule.id: rule for p in PROFILES.values() for rule in p.rules}
CA_PREFIXES = ("ca.", "tls_ca.", "interconnection_ca.")
SERVER_ONLY = {"sba_nf.server_dns_id"}


def _cases() -> list[tuple[str, str]]:
    cases = []
    for rule_id in breakable_rules():
        if rule_id.startswith(CA_PREFIXES) or rule_id in SERVER_ONLY:
            cases.append((rule_id, "server"))
        else:
            cases.extend([(rule_id, "server"), (rule_id, "client")])
    return cases


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def test_every_lint_rule_can_be_broken() -> None:
    """The catalogue and the breakers agree: no rule goes untested (R11)."""
    assert set(LINT_RULES) == set(breakable_rules())


@pytest.mark.parametrize(
    ("rule_id", "role"),
    _cases(),
    ids=[f"{r}[{LINT_RULES[r].requirement}]-{role}" for r, role in _cases()],
)
def test_breaking_one_rule_reports_exactly_that_rule(pki: TestPKI, rule_id: str, role: str) -> None:
    broken = pki.breaking(rule_id, role)
    report = lint(broken.cert, broken.profile, broken.role, issuer=broken.issuer)
    rule = LINT_RULES[rule_id]
    hits = [f for f in report.findings if f.rule == rule_id]
    assert hits, f"{rule_id} ({rule.requirement}) not reported: {report.to_text()}"
    assert all(f.severity is rule.severity for f in hits)
    other_errors = report.rule_ids(Severity.ERROR) - {rule_id}
    assert not other_errors, report.to_text()
    assert report.compliant is (rule.severity is not Severity.ERROR)


def _conformant(pki: TestPKI) -> list[tuple[str, Report]]:
    server, client, nf = pki.server_cert(), pki.client_cert(), pki.nf_cert("both")
    return [
        ("server", lint(server.cert, "tls-entity", "server", issuer=pki.tls_ca.cert, strict=True)),
        ("client", lint(client.cert, "tls-entity", "client", issuer=pki.tls_ca.cert, strict=True)),
        ("nf", lint(nf.cert, "sba-nf", "both", issuer=pki.tls_ca.cert, strict=True)),
        ("tls-ca", lint(pki.tls_ca.cert, "tls-ca", issuer=pki.root_ca.cert, strict=True)),
        ("root", lint(pki.root_ca.cert, "interconnection-ca", strict=True)),
        (
            "ica",
            lint(
                pki.interconnection_ca.cert,
                "interconnection-ca",
                issuer=pki.root_ca.cert,
                strict=True,
            ),
        ),
    ]


@pytest.mark.parametrize("key_type", ["p256", "p384"])
def test_test_pki_defaults_pass_the_strictest_profiles(key_type: str) -> None:
    """R11: the test PKI's certificates produce no finding at all, even in strict mode."""
    for name, report in _conformant(TestPKI(key_type)):
        assert report.compliant, name
        assert report.findings == (), f"{name}: {report.to_text()}"


def test_rsa_pki_is_compliant_with_pkcs1_warning_only() -> None:
    """R3: RSA PKCS#1 v1.5 is 'not recommended' -- a warning, never an error."""
    pki = TestPKI("rsa2048")
    report = lint(pki.server_cert().cert, "tls-entity", "server", issuer=pki.tls_ca.cert)
    assert report.compliant
    assert report.rule_ids() == {"common.rsa_pkcs1v15"}
    assert report.rule_ids(Severity.WARNING) == {"common.rsa_pkcs1v15"}


def test_strict_mode_turns_warnings_into_errors(pki: TestPKI) -> None:
    """R10/R11: a name-form warning becomes an error in strict mode."""
    broken = pki.breaking("common.name_form", "server")
    relaxed = lint(broken.cert, broken.profile, broken.role, issuer=broken.issuer)
    strict = lint(broken.cert, broken.profile, broken.role, issuer=broken.issuer, strict=True)
    assert relaxed.compliant and not strict.compliant
    assert strict.rule_ids(Severity.ERROR) == {"common.name_form"}


def test_deviation_switches_off_exactly_its_rule_and_is_reported(pki: TestPKI) -> None:
    """R14: a missing CDP is accepted only under the named deviation, which the report states."""
    broken = pki.breaking("ee.crl_distribution_point", "client")
    report = lint(
        broken.cert,
        broken.profile,
        broken.role,
        issuer=broken.issuer,
        deviations=["no-crl-distribution-point"],
    )
    assert report.compliant
    assert report.deviations == ("no-crl-distribution-point",)
    assert "ee.crl_distribution_point" not in report.rule_ids()
    conformant = lint(pki.client_cert().cert, "tls-entity", "client")
    assert conformant.deviations == ()


def test_secp256k1_key_is_refused(pki: TestPKI) -> None:
    """R4/R5: a >= 256-bit curve without a TLS signature scheme is refused too."""
    issued = pki.tls_ca.issue(pki.spec("server", key_type="secp256k1"))
    report = lint(issued.cert, "tls-entity", "server", issuer=pki.tls_ca.cert)
    assert report.rule_ids(Severity.ERROR) == {"common.ec_curve"}


def test_unknown_critical_extension_is_refused(pki: TestPKI) -> None:
    """R9: an extension the profile does not know, marked critical, makes the cert non-compliant."""
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    issued = pki.tls_ca.issue(pki.spec("client", extra_extensions=((ext, True),)))
    report = lint(issued.cert, "tls-entity", "client", issuer=pki.tls_ca.cert)
    assert report.rule_ids(Severity.ERROR) == {"common.extension_criticality"}
    non_critical = pki.tls_ca.issue(pki.spec("client", extra_extensions=((ext, False),)))
    assert lint(non_critical.cert, "tls-entity", "client").compliant


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key_usage_critical": False}, "extensions.keyUsage"),
        ({"crl_dp_critical": True}, "extensions.cRLDistributionPoints"),
        ({"san_critical": True}, "extensions.subjectAltName"),
        ({"basic_constraints_critical": True}, "extensions.basicConstraints"),
    ],
)
def test_criticality_table_of_tls_entity(pki: TestPKI, change: dict[str, bool], field: str) -> None:
    """R12 (keyUsage critical), R14 (CDP non-critical), R15 (SAN/BC non-critical)."""
    issued = pki.tls_ca.issue(pki.spec("server", **change))
    report = lint(issued.cert, "tls-entity", "server", issuer=pki.tls_ca.cert)
    assert report.rule_ids(Severity.ERROR) == {"common.extension_criticality"}
    assert [f.field for f in report.errors] == [field]


def test_sba_nf_needs_critical_san_where_tls_entity_forbids_it(pki: TestPKI) -> None:
    """R20 vs R15: the two profiles must not impose one rule on the other."""
    nf = pki.nf_cert("server")
    assert lint(nf.cert, "sba-nf", "server", issuer=pki.tls_ca.cert).compliant
    report = lint(nf.cert, "tls-entity", "server", issuer=pki.tls_ca.cert)
    assert "common.extension_criticality" in report.rule_ids(Severity.ERROR)
    plain = pki.nf_cert("server", san_critical=False)
    report = lint(plain.cert, "sba-nf", "server", issuer=pki.tls_ca.cert)
    assert report.rule_ids(Severity.ERROR) == {"common.extension_criticality"}


def test_nf_role_both_needs_both_purposes(pki: TestPKI) -> None:
    """R19: a dual-role NF certificate carries serverAuth and clientAuth."""
    server_only = pki.nf_cert("both", eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    report = lint(server_only.cert, "sba-nf", "both", issuer=pki.tls_ca.cert)
    assert report.rule_ids(Severity.ERROR) == {"ee.eku_role"}
    assert "clientAuth" in report.errors[0].message


def test_eku_absent_is_allowed_for_tls_entity(pki: TestPKI) -> None:
    """R13: extendedKeyUsage is optional in 6.1.3a."""
    issued = pki.tls_ca.issue(pki.spec("client", eku=None))
    assert lint(issued.cert, "tls-entity", "client").compliant


def test_key_cert_sign_on_end_entity_is_refused(pki: TestPKI) -> None:
    """R17: an end entity asserting keyCertSign is rejected."""
    ku = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    issued = pki.tls_ca.issue(pki.spec("server", key_usage=ku))
    report = lint(issued.cert, "tls-entity", "server")
    assert report.rule_ids(Severity.ERROR) == {"ee.not_ca"}


def test_signer_strength_uses_the_issuer_when_given(pki: TestPKI) -> None:
    """R8: the check needs the issuer; without it the rule cannot fire."""
    broken = pki.breaking("common.signer_strength", "server")
    assert "common.signer_strength" not in lint(broken.cert, "tls-entity", "server").rule_ids()
    strong = TestPKI("p384")
    issued = strong.tls_ca.issue(strong.spec("server", key_type="p256"))
    assert lint(issued.cert, "tls-entity", "server", issuer=strong.tls_ca.cert).compliant


def test_findings_carry_clause_field_and_requirement(pki: TestPKI) -> None:
    """R11: findings are structured data (rule id, clause, severity, message, field)."""
    broken = pki.breaking("ee.key_usage_digital_signature", "server")
    report = lint(broken.cert, broken.profile, broken.role, issuer=broken.issuer)
    (finding,) = report.errors
    assert finding.clause == "TS 33.310 6.1.3a, 6.1.3c"
    assert finding.field == "extensions.keyUsage"
    assert finding.requirement == "R12, R18"
    assert "keyEncipherment" in finding.message
    assert report.as_dict()["findings"][0]["severity"] == "error"


def test_catalogue_ids_are_unique_and_complete() -> None:
    rules = all_rules()
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids))
    for rule in rules:
        assert rule.clause and rule.requirement.startswith("R") and rule.summary
        assert rule.severity in set(Severity)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "nope"}, "unknown profile"),
        ({"profile": "tls-entity", "role": None}, "needs a role"),
        ({"profile": "tls-entity", "role": "both"}, "needs a role"),
        ({"profile": "tls-ca", "role": "server"}, "takes no role"),
        ({"profile": "tls-entity", "role": "server", "deviations": ["made-up"]}, "unknown"),
        ({"profile": "tls-entity", "role": "server", "deviations": "no-revocation-check"}, "str"),
    ],
)
def test_bad_arguments_are_usage_errors(
    pki: TestPKI, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        lint(pki.server_cert().cert, **kwargs)  # type: ignore[arg-type]


def test_v2_certificate_is_a_parse_error(pki: TestPKI) -> None:
    """R1: cryptography refuses X.509 v2 at load; that is a typed parse error, not a crash."""
    der = bytearray(pki.server_cert().cert.public_bytes(Encoding.DER))
    index = der.find(b"\xa0\x03\x02\x01\x02")  # [0] { INTEGER 2 } = v3
    assert index > 0
    der[index + 4] = 1
    with pytest.raises(CertificateParseError):
        lint(bytes(der), "tls-entity", "server")
