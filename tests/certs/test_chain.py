"""Chain validation (TS 33.310 6.1.3a, 6.1.3c, 6.1.4a, 6.1.2, 6.3.1) through ``ChainValidator``.

Each test names the requirement of ``shared/reference/spec-digest.md`` it pins down (R13, R16,
R20, R22 to R26, R56).  CRL usability and revocation are in ``test_crl.py``; here every accepted
chain still has its revocation checked against current CRLs, so nothing passes by skipping it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from capif8sec.certs import ChainValidator, VerifiedChain
from capif8sec.errors import (
    Capif8secError,
    CertificateExpired,
    CertificateParseError,
    ChainValidationError,
    CrlError,
    ProfileViolation,
    UsageError,
)
from capif8sec.testing import CA, CertSpec, IssuedCert, TestPKI

_CA_KU = x509.KeyUsage(False, False, False, False, False, True, True, False, False)

# ----------------------------------------------------------------------------- helpers


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _validator(
    pki: TestPKI, *extra_cas: CA, crls: list[bytes] | None = None, **kwargs: object
) -> ChainValidator:
    """Trusts ``pki``'s root; current CRLs of the TLS CA, the root and ``extra_cas``."""
    if crls is None:
        crls = [ca.crl_pem() for ca in (pki.tls_ca, pki.root_ca, *extra_cas)]
    return ChainValidator(pki.trust_anchor_pem, crls=crls, **kwargs)  # type: ignore[arg-type]


def _same_subject_same_key_pool(count: int) -> tuple[CA, list[x509.Certificate]]:
    """``count`` distinct CA certificates with one subject (the TLS CA's name) and one key.

    Each of them verifies as the issuer of every other one, which makes naive path building
    explode combinatorially.  Returns the CA (to issue a leaf with) and the certificates.
    """
    loop = CA.root("capif8sec test TLS CA")  # the trusted TLS CA's name, an unrelated key
    spec = CertSpec(
        subject=loop.cert.subject,
        ca=True,
        key_usage=_CA_KU,
        basic_constraints_critical=True,
        crl_urls=(),
    )
    certs = [loop.cert] + [loop.sign(spec, loop.private_key) for _ in range(count - 1)]
    assert len(set(certs)) == count
    return loop, certs


def _assert_good(result: VerifiedChain, length: int) -> None:
    assert len(result.chain) == length
    assert len(result.revocation) == length - 1
    assert all(status.startswith("good (CRL") for status in result.revocation), result.revocation
    assert all(report.compliant for report in result.reports)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    """root CA -> TLS CA (pathLen 0), P-256.  Tests revoke only certificates they issued."""
    return TestPKI()


@pytest.fixture(scope="module")
def stranger() -> TestPKI:
    """Another PKI with the very same CA names as ``pki`` but its own keys."""
    return TestPKI()


@pytest.fixture(scope="module")
def ic_pki() -> TestPKI:
    """root -> interconnection CA (pathLen 1) -> TLS CA (pathLen 0)."""
    return TestPKI(interconnection=True)


@pytest.fixture(scope="module")
def rof(pki: TestPKI) -> IssuedCert:
    return pki.client_cert("rof-1")


@pytest.fixture(scope="module")
def ccf(pki: TestPKI) -> IssuedCert:
    return pki.server_cert("ccf.capif.example")


@pytest.fixture(scope="module")
def validator(pki: TestPKI) -> ChainValidator:
    return _validator(pki)


# ----------------------------------------------------------------------------- accepted


def test_r24_r25_rof_client_chain_accepted_with_current_crls(
    pki: TestPKI, rof: IssuedCert, validator: ChainValidator
) -> None:
    """R24/R25: ROF leaf -> TLS CA -> root, CRLs current: accepted, every element checked."""
    at = _now()
    result = validator.verify(rof.cert_pem, [pki.tls_ca.cert_pem], role="client", at=at)
    _assert_good(result, 3)
    assert result.chain == (rof.cert, pki.tls_ca.cert, pki.root_ca.cert)
    assert result.leaf == rof.cert
    assert result.role == "client"
    assert result.profile == "tls-entity"
    assert [r.profile for r in result.reports] == ["tls-entity", "tls-ca", "interconnection-ca"]
    assert result.deviations == ()
    assert result.validated_at == at


def test_r24_r25_ccf_server_chain_accepted_with_current_crls(
    pki: TestPKI, ccf: IssuedCert, validator: ChainValidator
) -> None:
    """R24/R25: CCF server leaf with the chain a server sends (leaf + TLS CA): accepted."""
    result = validator.verify(ccf.cert, ccf.intermediates, role="server")
    _assert_good(result, 3)
    assert result.chain[1] == pki.tls_ca.cert
    assert result.role == "server"
    assert "of CN=capif8sec test TLS CA," in result.revocation[0]
    assert "of CN=capif8sec test root CA," in result.revocation[1]


def test_r24_inputs_in_every_accepted_form(
    pki: TestPKI, rof: IssuedCert, validator: ChainValidator
) -> None:
    """R24: the leaf as DER, PEM text or object; intermediates as a PEM bundle string."""
    bundle = (_pem(pki.tls_ca.cert) + _pem(pki.root_ca.cert)).decode()
    for leaf in (_der(rof.cert), rof.cert_pem.decode(), rof.cert, bytearray(_der(rof.cert))):
        result = validator.verify(leaf, [bundle], role="client")
        assert result.leaf == rof.cert


def test_r56_identities_are_the_leaf_subject_alt_names(
    pki: TestPKI, validator: ChainValidator
) -> None:
    """R56: the URI-, DNS- and IP-IDs of the validated leaf are returned for the policy layer."""
    client = pki.client_cert("rof-7", dns_names=["rof7.ro.example"])
    ids = validator.verify(client.cert, client.intermediates, role="client").identities
    assert ids.uris == ("urn:capif:rof:rof-7",)
    assert ids.dns_names == ("rof7.ro.example",)
    assert ids.ip_addresses == ()
    assert ids.common_name == "rof-7"
    assert ids.has_san_identifiers

    server = pki.server_cert(
        "ccf.capif.example",
        "azf.capif.example",
        uris=["https://ccf.capif.example/capif-security/v1"],
        ip_addresses=["192.0.2.7"],
    )
    ids = validator.verify(server.cert, server.intermediates, role="server").identities
    assert ids.dns_names == ("ccf.capif.example", "azf.capif.example")
    assert ids.uris == ("https://ccf.capif.example/capif-security/v1",)
    assert [str(a) for a in ids.ip_addresses] == ["192.0.2.7"]


def test_r23_interconnection_ca_chain_accepted(ic_pki: TestPKI) -> None:
    """R22/R23: root -> interconnection CA -> TLS CA -> leaf, all CRLs current: accepted."""
    leaf = ic_pki.client_cert()
    assert leaf.intermediates == (ic_pki.tls_ca.cert, ic_pki.interconnection_ca.cert)
    validator = _validator(ic_pki, ic_pki.interconnection_ca)
    result = validator.verify(leaf.cert, leaf.intermediates, role="client")
    _assert_good(result, 4)
    assert result.chain == (
        leaf.cert,
        ic_pki.tls_ca.cert,
        ic_pki.interconnection_ca.cert,
        ic_pki.root_ca.cert,
    )
    assert [r.profile for r in result.reports] == [
        "tls-entity",
        "tls-ca",
        "interconnection-ca",
        "interconnection-ca",
    ]
    # intermediates in the wrong order are fine too: path building sorts them out
    reordered = validator.verify(leaf.cert, leaf.intermediates[::-1], role="client")
    assert reordered.chain == result.chain


def test_r23_interconnection_chain_without_the_interconnection_ca_refused(
    ic_pki: TestPKI,
) -> None:
    """R24: the interconnection CA is not a trust anchor; without it there is no path."""
    leaf = ic_pki.client_cert()
    with pytest.raises(ChainValidationError) as info:
        _validator(ic_pki).verify(leaf.cert, [ic_pki.tls_ca.cert], role="client")
    assert type(info.value) is ChainValidationError
    assert info.value.rule == "chain.path"


def test_r20_sba_nf_chain_with_critical_san_accepted(pki: TestPKI) -> None:
    """R19/R20: the sba-nf profile accepts a 6.1.3c NF certificate with its critical SAN."""
    nf = pki.nf_cert()
    san = nf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    validator = _validator(pki, profile="sba-nf")
    for role in ("both", "server", "client"):
        result = validator.verify(nf.cert, nf.intermediates, role=role)
        _assert_good(result, 3)
        assert result.profile == "sba-nf"
        assert result.role == role
        assert result.identities.dns_names == ("nf1.5gc.example",)
        assert result.identities.uris == ("urn:uuid:6f1c2c9e-0d4b-4c44-9d7b-1c2f2b0b7a11",)


def test_r15_critical_san_refused_under_the_tls_entity_profile(
    pki: TestPKI, validator: ChainValidator
) -> None:
    """R15: the same NF certificate breaks 6.1.3a (SAN must be non-critical there)."""
    nf = pki.nf_cert(role="server")
    with pytest.raises((ChainValidationError, ProfileViolation)):
        validator.verify(nf.cert, nf.intermediates, role="server")


def test_r20_sba_nf_profile_refuses_a_tls_entity_certificate(pki: TestPKI, rof: IssuedCert) -> None:
    """R20: a plain 6.1.3a client certificate lacks the critical SAN and nfTypes of 6.1.3c."""
    with pytest.raises(ProfileViolation) as info:
        _validator(pki, profile="sba-nf").verify(rof.cert, rof.intermediates, role="client")
    rules = {f.rule for r in info.value.reports for f in r.errors}
    assert {"sba_nf.nf_types", "common.extension_criticality"} <= rules
    assert info.value.rule == "chain.element_profile"


# ----------------------------------------------------------------------------- validity


def test_r24_expired_leaf_refused(pki: TestPKI, validator: ChainValidator) -> None:
    """R24: notAfter in the past -> CertificateExpired, rule chain.validity."""
    now = _now()
    leaf = pki.client_cert(
        not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1)
    )
    with pytest.raises(CertificateExpired) as info:
        validator.verify(leaf.cert, leaf.intermediates, role="client")
    assert info.value.rule == "chain.validity"
    assert "expired" in str(info.value)


def test_r24_not_yet_valid_leaf_refused(pki: TestPKI, validator: ChainValidator) -> None:
    """R24: notBefore in the future -> CertificateExpired, rule chain.validity."""
    leaf = pki.server_cert(not_before=_now() + dt.timedelta(days=1))
    with pytest.raises(CertificateExpired) as info:
        validator.verify(leaf.cert, leaf.intermediates, role="server")
    assert info.value.rule == "chain.validity"
    assert "not valid before" in str(info.value)


def test_r24_r26_validation_time_is_the_at_parameter_each_call(
    rof: IssuedCert, validator: ChainValidator
) -> None:
    """R24/R26: ``at`` after notAfter or before notBefore refuses; nothing is cached between."""
    after = rof.cert.not_valid_after_utc + dt.timedelta(seconds=1)
    before = rof.cert.not_valid_before_utc - dt.timedelta(seconds=1)
    validator.verify(rof.cert, rof.intermediates, role="client")
    for when in (after, before):
        with pytest.raises(CertificateExpired) as info:
            validator.verify(rof.cert, rof.intermediates, role="client", at=when)
        assert info.value.rule == "chain.validity"
    # and a good verification afterwards is not poisoned by the failures either
    validator.verify(rof.cert, rof.intermediates, role="client")


def test_r24_naive_validation_time_is_a_usage_error(
    rof: IssuedCert, validator: ChainValidator
) -> None:
    """R24: a naive datetime is ambiguous; refused rather than guessed."""
    with pytest.raises(UsageError):
        validator.verify(rof.cert, rof.intermediates, role="client", at=dt.datetime(2030, 1, 1))


def test_r24_expired_tls_ca_refused(pki: TestPKI) -> None:
    """R24: an expired intermediate fails too (not only the leaf), rule chain.validity."""
    now = _now()
    old_ca = pki.root_ca.issue_ca(
        "capif8sec expired TLS CA",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    leaf = old_ca.issue(pki.spec("client"))
    with pytest.raises(CertificateExpired) as info:
        _validator(pki, old_ca).verify(leaf.cert, [old_ca.cert], role="client")
    assert info.value.rule == "chain.validity"


@pytest.fixture(scope="module")
def just_expired(pki: TestPKI) -> tuple[IssuedCert, dt.datetime]:
    """A client certificate that expired 30 s before the returned instant."""
    at = _now()
    leaf = pki.client_cert(
        not_before=at - dt.timedelta(days=1), not_after=at - dt.timedelta(seconds=30)
    )
    return leaf, at


@pytest.fixture(scope="module")
def almost_valid(pki: TestPKI) -> tuple[IssuedCert, dt.datetime]:
    """A client certificate that becomes valid 30 s after the returned instant."""
    at = _now()
    return pki.client_cert(not_before=at + dt.timedelta(seconds=30)), at


@pytest.mark.parametrize("case", ["just_expired", "almost_valid"])
def test_r24_clock_skew_tolerates_both_directions(
    pki: TestPKI, case: str, request: pytest.FixtureRequest
) -> None:
    """R24: a 30 s miss passes with clock_skew=60 s and fails with 0 s (default) or 10 s."""
    leaf, at = request.getfixturevalue(case)
    tolerant = _validator(pki, clock_skew=dt.timedelta(seconds=60))
    result = tolerant.verify(leaf.cert, leaf.intermediates, role="client", at=at)
    _assert_good(result, 3)
    for skew in (dt.timedelta(0), dt.timedelta(seconds=10)):
        with pytest.raises(CertificateExpired) as info:
            _validator(pki, clock_skew=skew).verify(
                leaf.cert, leaf.intermediates, role="client", at=at
            )
        assert info.value.rule == "chain.validity"
    with pytest.raises(CertificateExpired):
        _validator(pki).verify(leaf.cert, leaf.intermediates, role="client", at=at)


def test_r24_negative_clock_skew_is_a_usage_error(pki: TestPKI) -> None:
    """R24: the skew is a tolerance; a negative one makes no sense."""
    with pytest.raises(UsageError):
        _validator(pki, clock_skew=dt.timedelta(seconds=-1))


# ----------------------------------------------------------------------------- trust


def test_r24_leaf_of_an_untrusted_pki_refused(
    pki: TestPKI, stranger: TestPKI, validator: ChainValidator
) -> None:
    """R24: a leaf chaining to another root is refused with rule chain.path."""
    leaf = stranger.client_cert()
    with pytest.raises(ChainValidationError) as info:
        validator.verify(leaf.cert, leaf.intermediates, role="client")
    assert type(info.value) is ChainValidationError
    assert info.value.rule == "chain.path"


def test_r24_same_names_different_keys_refused(
    pki: TestPKI, stranger: TestPKI, rof: IssuedCert
) -> None:
    """R24: names alone prove nothing: the stranger's CAs carry our CA names exactly."""
    assert stranger.tls_ca.cert.subject == pki.tls_ca.cert.subject
    assert stranger.root_ca.cert.subject == pki.root_ca.cert.subject
    impostor = stranger.client_cert()
    # the impostor leaf with our genuine TLS CA: issuer name matches, signature does not
    with pytest.raises(ChainValidationError) as info:
        _validator(pki).verify(impostor.cert, [pki.tls_ca.cert], role="client")
    assert info.value.rule == "chain.path"
    # our genuine leaf with the stranger's TLS CA and root as "intermediates": still no path
    with pytest.raises(ChainValidationError) as info:
        ChainValidator(stranger.trust_anchor_pem, crls=[stranger.crl()]).verify(
            rof.cert, [pki.tls_ca.cert], role="client"
        )
    assert info.value.rule == "chain.path"


def test_r24_no_trust_anchor_is_a_usage_error() -> None:
    """R24: a validator without anchors could only ever refuse; it is a configuration error."""
    with pytest.raises(UsageError):
        ChainValidator([])


def test_r24_ca_profile_is_not_an_end_entity_profile(pki: TestPKI) -> None:
    """R24: leaves are validated against an end-entity profile only."""
    with pytest.raises(UsageError):
        ChainValidator(pki.trust_anchor_pem, profile="tls-ca")
    with pytest.raises(UsageError):
        ChainValidator(pki.trust_anchor_pem, deviations=["no-such-deviation"])


# ----------------------------------------------------------------------------- issuing (R16)


@pytest.fixture(scope="module")
def leaf_under_root(pki: TestPKI) -> IssuedCert:
    """A client certificate issued directly by the root CA (no TLS CA)."""
    return pki.root_ca.issue(pki.spec("client"))


@pytest.fixture(scope="module")
def leaf_under_ica(pki: TestPKI) -> IssuedCert:
    """A client certificate issued by an intermediate with pathLen 1 (not a TLS CA)."""
    return pki.interconnection_ca.issue(pki.spec("client"))


def test_r16_leaf_issued_directly_by_the_root_refused(
    pki: TestPKI, leaf_under_root: IssuedCert
) -> None:
    """R16/R22: the EE must be issued by a TLS CA (pathLen 0); the root is none."""
    with pytest.raises(ProfileViolation) as info:
        _validator(pki).verify(leaf_under_root.cert, [], role="client")
    assert info.value.rule == "chain.issued_by_tls_ca"
    assert "tls_ca.path_length" in {f.rule for r in info.value.reports for f in r.errors}


def test_r16_leaf_below_a_non_tls_ca_intermediate_refused(
    pki: TestPKI, leaf_under_ica: IssuedCert
) -> None:
    """R16/R22: an issuing intermediate with pathLen 1 is not a TLS CA -> refused."""
    validator = _validator(pki, pki.interconnection_ca)
    with pytest.raises(ProfileViolation) as info:
        validator.verify(leaf_under_ica.cert, leaf_under_ica.intermediates, role="client")
    assert info.value.rule == "chain.issued_by_tls_ca"
    bad = info.value.reports[0]
    assert bad.profile == "tls-ca"
    assert "tls_ca.path_length" in bad.rule_ids()


def test_r16_deviation_intermediate_below_tls_ca_accepts_both(
    pki: TestPKI, leaf_under_root: IssuedCert, leaf_under_ica: IssuedCert
) -> None:
    """R16: the documented deviation accepts both, is reported, and still checks the CRLs."""
    validator = _validator(pki, pki.interconnection_ca, deviations=["intermediate-below-tls-ca"])
    direct = validator.verify(leaf_under_root.cert, [], role="client")
    _assert_good(direct, 2)
    assert direct.deviations == ("intermediate-below-tls-ca",)
    assert direct.reports[1].profile == "interconnection-ca"

    below = validator.verify(leaf_under_ica.cert, leaf_under_ica.intermediates, role="client")
    _assert_good(below, 3)
    assert below.deviations == ("intermediate-below-tls-ca",)
    assert [r.profile for r in below.reports][1] == "interconnection-ca"


def test_r16_deviation_still_checks_a_real_tls_ca_as_a_tls_ca(
    pki: TestPKI, rof: IssuedCert
) -> None:
    """R16/R22: with the deviation, a pathLen-0 issuer is still linted as a TLS CA."""
    validator = _validator(pki, deviations=["intermediate-below-tls-ca"])
    result = validator.verify(rof.cert, rof.intermediates, role="client")
    assert result.reports[1].profile == "tls-ca"


# ----------------------------------------------------------------------------- EKU (R13)


def test_r13_server_certificate_presented_as_client_refused(
    ccf: IssuedCert, validator: ChainValidator
) -> None:
    """R13: a serverAuth-only certificate is no client certificate: ee.eku_role."""
    with pytest.raises(ProfileViolation) as info:
        validator.verify(ccf.cert, ccf.intermediates, role="client")
    assert info.value.rule == "chain.element_profile"
    assert "ee.eku_role" in str(info.value)
    assert "ee.eku_role" in info.value.reports[0].rule_ids()


def test_r13_client_certificate_presented_as_server_refused(
    rof: IssuedCert, validator: ChainValidator
) -> None:
    """R13: a clientAuth-only certificate is no server certificate: ee.eku_role."""
    with pytest.raises(ProfileViolation) as info:
        validator.verify(rof.cert, rof.intermediates, role="server")
    assert "ee.eku_role" in info.value.reports[0].rule_ids()


def test_r13_dual_eku_certificate_serves_both_roles(
    pki: TestPKI, validator: ChainValidator
) -> None:
    """R13: a certificate with serverAuth and clientAuth passes in either role."""
    both = pki.server_cert(eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH))
    for role in ("server", "client"):
        assert validator.verify(both.cert, both.intermediates, role=role).role == role


@pytest.mark.parametrize("role", ["both", "", "Client"])
def test_r13_unknown_role_is_a_usage_error(
    rof: IssuedCert, validator: ChainValidator, role: str
) -> None:
    """R13: tls-entity knows the server and client roles only."""
    with pytest.raises(UsageError):
        validator.verify(rof.cert, rof.intermediates, role=role)


# ----------------------------------------------------------------------------- bounded work


def test_r24_pathological_pool_of_30_refused_fast(pki: TestPKI) -> None:
    """R24: 30 certificates with one subject and key cannot make path building explode."""
    loop, pool = _same_subject_same_key_pool(30)
    leaf = loop.issue(pki.spec("client"))
    validator = _validator(pki)
    start = time.perf_counter()
    with pytest.raises(ChainValidationError) as info:
        validator.verify(leaf.cert, pool, role="client")
    assert time.perf_counter() - start < 1.0
    assert info.value.rule == "chain.path"


def test_r24_pathological_pool_within_the_intermediate_limit_refused_fast(
    pki: TestPKI,
) -> None:
    """R24: as many loop certificates as the default limit admits (8): still bounded."""
    loop, pool = _same_subject_same_key_pool(8)
    leaf = loop.issue(pki.spec("client"))
    validator = _validator(pki)
    start = time.perf_counter()
    with pytest.raises(ChainValidationError) as info:
        # the genuine TLS CA is in the pool too (same name), so it must be tried and rejected
        validator.verify(leaf.cert, [*pool[:7], pki.tls_ca.cert], role="client")
    assert time.perf_counter() - start < 1.0
    assert info.value.rule == "chain.path"


def test_r24_more_intermediates_than_max_intermediates_refused(
    ic_pki: TestPKI,
) -> None:
    """R24: the pool size is capped before path building, even when a path exists."""
    leaf = ic_pki.client_cert()
    crls = [ca.crl_pem() for ca in (ic_pki.tls_ca, ic_pki.interconnection_ca, ic_pki.root_ca)]
    ok = ChainValidator(ic_pki.trust_anchor_pem, crls=crls, max_intermediates=2)
    ok.verify(leaf.cert, leaf.intermediates, role="client")
    tight = ChainValidator(ic_pki.trust_anchor_pem, crls=crls, max_intermediates=1)
    with pytest.raises(ChainValidationError) as info:
        tight.verify(leaf.cert, leaf.intermediates, role="client")
    assert info.value.rule == "chain.path"
    assert "more than 1 intermediate" in str(info.value)


def test_r24_duplicate_intermediates_do_not_count_against_the_limit(
    pki: TestPKI, rof: IssuedCert
) -> None:
    """R24: the same certificate offered many times (and the leaf itself) counts once."""
    validator = _validator(pki, max_intermediates=1)
    offered = [pki.tls_ca.cert_pem] * 20 + [rof.cert_pem, _der(pki.tls_ca.cert)]
    _assert_good(validator.verify(rof.cert, offered, role="client"), 3)


def test_r24_max_chain_depth_bounds_the_path(ic_pki: TestPKI) -> None:
    """R24: a path needing two intermediates fails when max_chain_depth is 1."""
    leaf = ic_pki.client_cert()
    validator = ChainValidator(ic_pki.trust_anchor_pem, crls=[ic_pki.crl()], max_chain_depth=1)
    with pytest.raises(ChainValidationError) as info:
        validator.verify(leaf.cert, leaf.intermediates, role="client")
    assert info.value.rule == "chain.path"


@pytest.mark.parametrize(
    "limits",
    [
        {"max_chain_depth": 0},
        {"max_chain_depth": 17},
        {"max_intermediates": -1},
        {"max_intermediates": 65},
    ],
)
def test_r24_work_limits_out_of_range_are_usage_errors(
    pki: TestPKI, limits: dict[str, int]
) -> None:
    """R24: limits cannot be switched off or made unbounded."""
    with pytest.raises(UsageError):
        ChainValidator(pki.trust_anchor_pem, **limits)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- garbage

_GARBAGE: list[bytes | str] = [
    b"",
    b"   \n",
    b"garbage",
    b"\x30\x03\x02\x01\x01",
    b"\x30\x82\xff\xff" + b"\x00" * 16,
    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    "-----BEGIN CERTIFICATE-----\nnot base64 \u00e9\n-----END CERTIFICATE-----\n",
    b"\x30" * (2 * 1024 * 1024),
]


def _garbage_ids() -> list[str]:
    return [f"garbage{i}" for i in range(len(_GARBAGE))]


@pytest.mark.parametrize("junk", _GARBAGE, ids=_garbage_ids())
def test_r11_garbage_leaf_is_a_typed_parse_error(
    junk: bytes | str, validator: ChainValidator
) -> None:
    """R11 (chain.parse): a non-certificate leaf -> CertificateParseError, nothing else."""
    with pytest.raises(CertificateParseError):
        validator.verify(junk, [], role="client")


def test_r11_leaf_must_be_exactly_one_certificate(
    rof: IssuedCert, pki: TestPKI, validator: ChainValidator
) -> None:
    """R11: a bundle in the leaf position is ambiguous and refused; so is a CRL."""
    with pytest.raises(CertificateParseError):
        validator.verify(rof.chain_pem, [], role="client")
    with pytest.raises(CertificateParseError):
        validator.verify(pki.crl(), [], role="client")


@pytest.mark.parametrize("junk", _GARBAGE, ids=_garbage_ids())
def test_r11_garbage_intermediate_is_a_typed_parse_error(
    junk: bytes | str, rof: IssuedCert, validator: ChainValidator
) -> None:
    """R11: a non-certificate among the intermediates -> CertificateParseError."""
    with pytest.raises(CertificateParseError):
        validator.verify(rof.cert, [rof.intermediates[0], junk], role="client")


@pytest.mark.parametrize("junk", _GARBAGE, ids=_garbage_ids())
def test_r11_garbage_trust_anchor_is_a_typed_parse_error(junk: bytes | str) -> None:
    """R11: a non-certificate trust anchor -> CertificateParseError when configuring."""
    with pytest.raises(CertificateParseError):
        ChainValidator(junk)
    with pytest.raises(CertificateParseError):
        ChainValidator([junk])


@pytest.mark.parametrize("junk", _GARBAGE, ids=_garbage_ids())
def test_r25_garbage_crl_is_a_typed_crl_error(
    junk: bytes | str, pki: TestPKI, rof: IssuedCert
) -> None:
    """R25: a non-CRL among the CRLs -> CrlError, at construction and on replace_crls."""
    with pytest.raises(CrlError):
        ChainValidator(pki.trust_anchor_pem, crls=[pki.crl(), junk])
    validator = _validator(pki)
    with pytest.raises(CrlError):
        validator.replace_crls([pki.crl(), junk])
    # the failed replacement left the previous, complete CRL set in force
    _assert_good(validator.verify(rof.cert, rof.intermediates, role="client"), 3)


def test_r11_wrong_python_types_are_typed_errors(pki: TestPKI, rof: IssuedCert) -> None:
    """R11: objects that are neither bytes, str nor cryptography objects are refused, typed."""
    validator = _validator(pki)
    with pytest.raises(CertificateParseError):
        validator.verify(12345, [], role="client")  # type: ignore[arg-type]
    with pytest.raises(CertificateParseError):
        validator.verify(rof.cert, [None], role="client")  # type: ignore[list-item]
    with pytest.raises(CertificateParseError):
        ChainValidator([pki.trust_anchor_pem, 3.5])  # type: ignore[list-item]
    with pytest.raises(CrlError):
        ChainValidator(pki.trust_anchor_pem, crls=[object()])  # type: ignore[list-item]


def _mutants(der: bytes, step: int) -> Iterator[bytes]:
    """Deterministic corruptions: one bit flipped / one byte set every ``step`` bytes, cuts."""
    for i in range(0, len(der), step):
        flipped = bytearray(der)
        flipped[i] ^= 0x01 << (i % 8)
        yield bytes(flipped)
        smashed = bytearray(der)
        smashed[i] = 0xFF if der[i] != 0xFF else 0x00
        yield bytes(smashed)
    for cut in range(1, len(der), step * 4):
        yield der[:cut]


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@pytest.mark.parametrize("position", ["leaf", "intermediate", "anchor", "crl"])
def test_r11_corrupted_der_in_any_position_raises_only_typed_errors(
    pki: TestPKI, rof: IssuedCert, position: str
) -> None:
    """R11/R25: corrupted DER anywhere yields a Capif8secError (or a sound acceptance).

    A corrupted leaf or TLS CA can never be accepted: its signature no longer verifies.
    """
    leaf, tls_ca, anchor = _der(rof.cert), _der(pki.tls_ca.cert), _der(pki.root_ca.cert)
    crl = pki.tls_ca.crl().public_bytes(serialization.Encoding.DER)
    root_crl = pki.root_ca.crl_pem()
    original = {"leaf": leaf, "intermediate": tls_ca, "anchor": anchor, "crl": crl}[position]
    for mutant in _mutants(original, 5):
        parts = {"leaf": leaf, "intermediate": tls_ca, "anchor": anchor, "crl": crl}
        parts[position] = mutant
        try:
            validator = ChainValidator(parts["anchor"], crls=[parts["crl"], root_crl])
            validator.verify(parts["leaf"], [parts["intermediate"]], role="client")
        except Capif8secError:
            continue  # anything else propagates and fails the test
        # Accepted: then the corruption must have missed everything that was signed (e.g. a
        # bit of BIT STRING padding).  The anchor is trusted as configured, its signature is
        # never checked; it must still carry the root's name and key.
        if position == "crl":
            assert x509.load_der_x509_crl(mutant).tbs_certlist_bytes == (
                x509.load_der_x509_crl(crl).tbs_certlist_bytes
            )
            continue
        cert = x509.load_der_x509_certificate(mutant)
        if position == "anchor":
            assert cert.subject == pki.root_ca.cert.subject
            assert cert.public_key() == pki.root_ca.cert.public_key()
        else:
            assert (
                cert.tbs_certificate_bytes
                == x509.load_der_x509_certificate(original).tbs_certificate_bytes
            )


def test_r25_a_failed_crl_check_is_not_remembered(
    pki: TestPKI, rof: IssuedCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CRL signature check that fails once (pyca answers False when OpenSSL cannot initialise,
    e.g. in a process out of file descriptors) refuses that chain only: the next one is checked
    again, and accepted."""
    import capif8sec.certs.crl as crlmod

    real = crlmod.check_crl_signature
    calls: list[int] = []

    def flaky(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise CrlError("the signature of the CRL of the TLS CA does not verify")
        return real(crl, issuer)

    monkeypatch.setattr(crlmod, "check_crl_signature", flaky)
    validator = _validator(pki)
    with pytest.raises(ChainValidationError, match="does not verify"):
        validator.verify(rof.cert, rof.intermediates, role="client")
    _assert_good(validator.verify(rof.cert, rof.intermediates, role="client"), 3)
    checks = len(calls)
    validator.verify(rof.cert, rof.intermediates, role="client")
    assert len(calls) == checks  # a CRL that passed is still checked once only
