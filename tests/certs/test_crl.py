"""CRLs (TS 33.310 6.1a, 6.3.1): ``capif8sec.certs.crl`` directly, and revocation in chains.

Each test names the requirement of ``shared/reference/spec-digest.md`` it pins down (R14, R25,
R26, R62).  CRLs that cryptography refuses to build (SHA-1 signed, v1, without nextUpdate) are
made by re-signing an edited TBSCertList (:func:`_resign_crl`).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from capif8sec import _der
from capif8sec.certs import ChainValidator, VerifiedChain, crl
from capif8sec.certs.parse import load_crl
from capif8sec.errors import (
    CertificateRevoked,
    ChainValidationError,
    CrlError,
    ProfileViolation,
    RevocationUnknown,
)
from capif8sec.testing import CA, DEFAULT_CRL_URL, IssuedCert, TestPKI, generate_key

OTHER_URL = "http://crl.capif.example/other-partition.crl"

# ----------------------------------------------------------------------------- network guard

_network_events: list[str] = []
_recording: list[bool] = [False]
_NETWORK_EVENT_PREFIXES = (
    "socket.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "subprocess.",
    "os.system",
)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording[0] and event.startswith(_NETWORK_EVENT_PREFIXES):
        _network_events.append(event)


sys.addaudithook(_audit)  # observes only; cannot block or change anything


@pytest.fixture
def no_network() -> Iterator[list[str]]:
    """Records socket / urllib / subprocess audit events raised while the test runs."""
    _network_events.clear()
    _recording[0] = True
    try:
        yield _network_events
    finally:
        _recording[0] = False


# ----------------------------------------------------------------------------- CRL builders


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _build_crl(
    issuer: CA,
    *,
    revoked: Iterable[x509.RevokedCertificate] = (),
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
    this_update: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
    number: int = 1,
) -> x509.CertificateRevocationList:
    """A CRL in ``issuer``'s name with exactly the given entries and extra extensions."""
    this_update = this_update or _now() - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    key = signer if signer is not None else issuer.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return builder.sign(key, hashes.SHA256())


def _entry(
    cert: x509.Certificate | IssuedCert,
    *extensions: tuple[x509.ExtensionType, bool],
    reason: x509.ReasonFlags | None = None,
) -> x509.RevokedCertificate:
    c = cert.cert if isinstance(cert, IssuedCert) else cert
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(c.serial_number)
        .revocation_date(_now() - dt.timedelta(minutes=10))
    )
    if reason is not None:
        builder = builder.add_extension(x509.CRLReason(reason), critical=False)
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.build()


_ECDSA_OIDS = {
    "sha1": "1.2.840.10045.4.1",
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}
_TIME_TAGS = (0x17, 0x18)  # UTCTime, GeneralizedTime


def _resign_crl(
    original: x509.CertificateRevocationList,
    key: object,
    *,
    hash_name: str = "sha256",
    drop_next_update: bool = False,
    version1: bool = False,
) -> x509.CertificateRevocationList:
    """DER surgery on a TBSCertList, then an ECDSA signature with ``hash_name`` by ``key``.

    ``drop_next_update`` removes the optional nextUpdate; ``version1`` removes the version and
    the crlExtensions (a v1 CRL).  cryptography refuses to build any of these itself.
    """
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    outer, _ = _der.read_tlv(original.public_bytes(serialization.Encoding.DER))
    tbs = next(_der.iter_tlvs(outer.content))
    parts = list(_der.iter_tlvs(tbs.content))
    base = 1 if parts[0].tag == _der.INTEGER else 0
    alg = _der.encode(_der.SEQUENCE, _der.encode_oid(_ECDSA_OIDS[hash_name]))
    raw = [p.raw for p in parts]
    raw[base] = alg  # TBSCertList.signature
    assert parts[base + 2].tag in _TIME_TAGS  # thisUpdate
    drop: set[int] = set()
    if drop_next_update:
        assert parts[base + 3].tag in _TIME_TAGS
        drop.add(base + 3)
    if version1:
        drop |= {i for i, p in enumerate(parts) if p.tag == 0xA0 or (i == 0 and base)}
    new_tbs = _der.encode(_der.SEQUENCE, b"".join(r for i, r in enumerate(raw) if i not in drop))
    signature = key.sign(new_tbs, ec.ECDSA(_HASHES[hash_name]()))
    der = _der.encode(
        _der.SEQUENCE, new_tbs + alg + _der.encode(_der.BIT_STRING, b"\x00" + signature)
    )
    return x509.load_der_x509_crl(der)


def _pem(obj: x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def _assert_good(result: VerifiedChain, length: int = 3) -> None:
    assert len(result.chain) == length
    assert all(status.startswith("good (CRL") for status in result.revocation), result.revocation


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    """root CA -> TLS CA, P-256.  Tests revoke only certificates they issued themselves."""
    return TestPKI()


@pytest.fixture(scope="module")
def root_crl(pki: TestPKI) -> bytes:
    return pki.root_ca.crl_pem()


@pytest.fixture
def leaf(pki: TestPKI) -> IssuedCert:
    """A fresh ROF client certificate (CDP = DEFAULT_CRL_URL) for this test alone."""
    return pki.client_cert("rof-crl")


@pytest.fixture(scope="module")
def impostor_key() -> ec.EllipticCurvePrivateKey:
    key = generate_key("p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _validate(
    pki: TestPKI,
    leaf: IssuedCert,
    crls: Iterable[bytes | x509.CertificateRevocationList],
    **kw: Any,
) -> VerifiedChain:
    validator = ChainValidator(pki.trust_anchor_pem, crls=crls, **kw)
    return validator.verify(leaf.cert, leaf.intermediates, role="client")


# ============================================================================= unit: crl module


def test_r25_check_crl_signature_accepts_the_issuers_crl(pki: TestPKI) -> None:
    """R25: a v2 SHA-256 CRL signed by its issuer passes; the facts are exposed."""
    the_crl = _build_crl(pki.tls_ca, number=42)
    checked = crl.check_crl_signature(the_crl, pki.tls_ca.cert)
    assert checked.crl is the_crl
    assert checked.issuer == pki.tls_ca.cert
    assert checked.number == 42
    assert (checked.only_user_certs, checked.only_ca_certs) == (False, False)
    assert checked.this_update == the_crl.last_update_utc
    assert crl.check_crl(checked, _now()) is checked


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_r25_crl_hashes_of_the_sha2_family_accepted(pki: TestPKI, hash_name: str) -> None:
    """R25: SHA-256 shall, SHA-384 should; SHA-512 is as strong and accepted."""
    the_crl = pki.tls_ca.crl(hash_name=hash_name)
    crl.check_crl_signature(the_crl, pki.tls_ca.cert)


def test_r25_resign_helper_produces_a_valid_crl(pki: TestPKI) -> None:
    """Control for the DER surgery below: re-signing with SHA-256 yields a usable CRL."""
    again = _resign_crl(pki.tls_ca.crl(), pki.tls_ca.private_key)
    checked = crl.check_crl_signature(again, pki.tls_ca.cert)
    assert crl.check_crl(checked, _now()) is checked
    assert again.next_update_utc is not None


def test_r25_sha1_signed_crl_refused(pki: TestPKI) -> None:
    """R25: a CRL signed with ECDSA-SHA-1 is refused, although its signature verifies."""
    sha1 = _resign_crl(pki.tls_ca.crl(), pki.tls_ca.private_key, hash_name="sha1")
    assert sha1.signature_algorithm_oid.dotted_string == _ECDSA_OIDS["sha1"]
    public_key = pki.tls_ca.cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    # genuinely signed by the issuer (raises InvalidSignature otherwise)
    public_key.verify(sha1.signature, sha1.tbs_certlist_bytes, ec.ECDSA(hashes.SHA1()))
    with pytest.raises(CrlError, match="sha1"):
        crl.check_crl_signature(sha1, pki.tls_ca.cert)


def test_r25_sha224_signed_crl_refused(pki: TestPKI) -> None:
    """R25: only SHA-256/384(/512): SHA-224 is below the profile."""
    with pytest.raises(CrlError, match="sha224"):
        crl.check_crl_signature(pki.tls_ca.crl(hash_name="sha224"), pki.tls_ca.cert)


def test_r25_v1_crl_refused(pki: TestPKI) -> None:
    """R25 (6.1a): CRLs are v2."""
    v1 = _resign_crl(pki.tls_ca.crl(), pki.tls_ca.private_key, version1=True)
    assert len(v1.extensions) == 0
    with pytest.raises(CrlError, match="version 2"):
        crl.check_crl_signature(v1, pki.tls_ca.cert)


def test_r25_crl_of_another_issuer_refused(pki: TestPKI) -> None:
    """R25: the root's CRL says nothing about the TLS CA's certificates."""
    with pytest.raises(CrlError, match="is not"):
        crl.check_crl_signature(pki.root_ca.crl(), pki.tls_ca.cert)


def test_r25_crl_signed_by_another_key_refused(
    pki: TestPKI, impostor_key: ec.EllipticCurvePrivateKey
) -> None:
    """R25: the TLS CA's name on a CRL signed by another key: the signature does not verify."""
    forged = pki.tls_ca.crl(signer=impostor_key)
    assert forged.issuer == pki.tls_ca.cert.subject
    with pytest.raises(CrlError, match="does not verify"):
        crl.check_crl_signature(forged, pki.tls_ca.cert)


def test_r25_issuer_without_crl_sign_refused(pki: TestPKI) -> None:
    """R25/R22: a CA without cRLSign in its keyUsage cannot issue CRLs."""
    no_crl_sign = x509.KeyUsage(False, False, False, False, False, True, False, False, False)
    ca = pki.root_ca.issue_ca("capif8sec CA without cRLSign", key_usage=no_crl_sign)
    with pytest.raises(CrlError, match="cRLSign"):
        crl.check_crl_signature(ca.crl(), ca.cert)


def test_r25_delta_crl_refused(pki: TestPKI) -> None:
    """R25: a delta CRL is not a complete CRL; it cannot establish 'not revoked'."""
    delta = _build_crl(pki.tls_ca, extensions=[(x509.DeltaCRLIndicator(1), True)])
    with pytest.raises(CrlError, match="delta"):
        crl.check_crl_signature(delta, pki.tls_ca.cert)


def test_r25_unknown_critical_crl_extension_refused(pki: TestPKI) -> None:
    """R25/R9: an unknown critical CRL extension cannot be processed -> refused."""
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    with pytest.raises(CrlError, match="unknown critical extension"):
        crl.check_crl_signature(_build_crl(pki.tls_ca, extensions=[(odd, True)]), pki.tls_ca.cert)
    # the same extension non-critical is ignorable
    crl.check_crl_signature(_build_crl(pki.tls_ca, extensions=[(odd, False)]), pki.tls_ca.cert)


def _idp(
    *,
    full_name: Iterable[str] | None = None,
    only_user: bool = False,
    only_ca: bool = False,
    only_some_reasons: frozenset[x509.ReasonFlags] | None = None,
    indirect: bool = False,
) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in full_name]
        if full_name is not None
        else None,
        relative_name=None,
        only_contains_user_certs=only_user,
        only_contains_ca_certs=only_ca,
        only_some_reasons=only_some_reasons,
        indirect_crl=indirect,
        only_contains_attribute_certs=False,
    )


@pytest.mark.parametrize(
    "idp",
    [
        _idp(indirect=True),
        _idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})),
    ],
    ids=["indirect", "only-some-reasons"],
)
def test_r25_indirect_or_reason_partitioned_crl_refused(
    pki: TestPKI, idp: x509.IssuingDistributionPoint
) -> None:
    """R25: an indirect CRL or one covering some reasons only is not a complete CRL."""
    the_crl = _build_crl(pki.tls_ca, extensions=[(idp, True)])
    with pytest.raises(CrlError, match="indirect or partitioned"):
        crl.check_crl_signature(the_crl, pki.tls_ca.cert)


def test_r25_covers_follows_the_idp_certificate_kind(pki: TestPKI) -> None:
    """R25: onlyContainsUserCerts / onlyContainsCACerts limit what a CRL can vouch for."""
    plain = crl.check_crl_signature(_build_crl(pki.tls_ca), pki.tls_ca.cert)
    users = crl.check_crl_signature(
        _build_crl(pki.tls_ca, extensions=[(_idp(only_user=True), True)]), pki.tls_ca.cert
    )
    cas = crl.check_crl_signature(
        _build_crl(pki.tls_ca, extensions=[(_idp(only_ca=True), True)]), pki.tls_ca.cert
    )
    assert users.only_user_certs and not users.only_ca_certs
    assert cas.only_ca_certs and not cas.only_user_certs
    assert crl.covers(plain, cert_is_ca=False) and crl.covers(plain, cert_is_ca=True)
    assert crl.covers(users, cert_is_ca=False) and not crl.covers(users, cert_is_ca=True)
    assert crl.covers(cas, cert_is_ca=True) and not crl.covers(cas, cert_is_ca=False)


def test_r25_covers_follows_the_idp_distribution_point(pki: TestPKI, leaf: IssuedCert) -> None:
    """R25 (RFC 5280 6.3.3 b.2.i): a CRL for another distribution point does not cover a
    certificate whose cRLDistributionPoints names a different one."""
    mine = crl.check_crl_signature(
        _build_crl(pki.tls_ca, extensions=[(_idp(full_name=[DEFAULT_CRL_URL]), True)]),
        pki.tls_ca.cert,
    )
    other = crl.check_crl_signature(
        _build_crl(pki.tls_ca, extensions=[(_idp(full_name=[OTHER_URL]), True)]),
        pki.tls_ca.cert,
    )
    no_cdp = pki.client_cert("rof-no-cdp", crl_urls=())
    assert crl.covers(mine, False, leaf.cert)
    assert not crl.covers(other, False, leaf.cert)
    assert not crl.covers(mine, False, no_cdp.cert)
    # without the certificate, a distribution-point-scoped CRL cannot be shown to apply
    assert not crl.covers(mine, False)


def test_r25_check_crl_time_window(pki: TestPKI) -> None:
    """R25: thisUpdate reached and nextUpdate ahead, within the skew; otherwise CrlError."""
    now = _now()
    window = crl.check_crl_signature(
        _build_crl(
            pki.tls_ca,
            this_update=now - dt.timedelta(hours=1),
            next_update=now + dt.timedelta(hours=1),
        ),
        pki.tls_ca.cert,
    )
    minute = dt.timedelta(minutes=1)
    crl.check_crl(window, now)
    with pytest.raises(CrlError, match="stale"):
        crl.check_crl(window, now + dt.timedelta(hours=1, seconds=30))
    crl.check_crl(window, now + dt.timedelta(hours=1, seconds=30), minute)
    with pytest.raises(CrlError, match="not yet valid"):
        crl.check_crl(window, now - dt.timedelta(hours=1, seconds=30))
    crl.check_crl(window, now - dt.timedelta(hours=1, seconds=30), minute)


def test_r25_crl_without_next_update_refused(pki: TestPKI) -> None:
    """R25: a CRL without nextUpdate can never be shown to be current."""
    endless = _resign_crl(pki.tls_ca.crl(), pki.tls_ca.private_key, drop_next_update=True)
    assert endless.next_update_utc is None
    checked = crl.check_crl_signature(endless, pki.tls_ca.cert)
    with pytest.raises(CrlError, match="no nextUpdate"):
        crl.check_crl(checked, _now())


def test_r25_check_revocation_reports_serial_reason_and_date(
    pki: TestPKI, leaf: IssuedCert
) -> None:
    """R25: a listed certificate -> CertificateRevoked with serial, reason and date."""
    bystander = pki.client_cert("rof-bystander")
    entry = _entry(leaf, reason=x509.ReasonFlags.key_compromise)
    checked = crl.check_crl_signature(_build_crl(pki.tls_ca, revoked=[entry]), pki.tls_ca.cert)
    crl.check_revocation(checked, bystander.cert)  # not listed: no exception
    with pytest.raises(CertificateRevoked) as info:
        crl.check_revocation(checked, leaf.cert)
    assert info.value.serial_number == leaf.cert.serial_number
    assert info.value.reason == "key_compromise"
    assert info.value.revocation_date == entry.revocation_date_utc
    assert info.value.rule == "chain.revocation"
    assert f"{leaf.cert.serial_number:#x}" in str(info.value)


def test_r25_revocation_without_reason_code(pki: TestPKI, leaf: IssuedCert) -> None:
    """R25: the reasonCode entry extension is optional; revoked is revoked."""
    checked = crl.check_crl_signature(
        _build_crl(pki.tls_ca, revoked=[_entry(leaf)]), pki.tls_ca.cert
    )
    with pytest.raises(CertificateRevoked) as info:
        crl.check_revocation(checked, leaf.cert)
    assert info.value.reason is None


def test_r25_critical_invalidity_date_entry_is_understood(pki: TestPKI, leaf: IssuedCert) -> None:
    """R25: invalidityDate is known, so even marked critical the entry still revokes."""
    when = x509.InvalidityDate(_now() - dt.timedelta(days=1))
    checked = crl.check_crl_signature(
        _build_crl(pki.tls_ca, revoked=[_entry(leaf, (when, True))]), pki.tls_ca.cert
    )
    with pytest.raises(CertificateRevoked):
        crl.check_revocation(checked, leaf.cert)


def test_r25_unknown_critical_entry_extension_is_a_crl_error(
    pki: TestPKI, leaf: IssuedCert
) -> None:
    """R25: a critical certificateIssuer (indirect CRL entry) cannot be processed."""
    issuer = x509.CertificateIssuer([x509.DirectoryName(pki.root_ca.cert.subject)])
    checked = crl.check_crl_signature(
        _build_crl(pki.tls_ca, revoked=[_entry(leaf, (issuer, True))]), pki.tls_ca.cert
    )
    with pytest.raises(CrlError, match="critical extension"):
        crl.check_revocation(checked, leaf.cert)


# ============================================================================= in chains


def test_r25_revoked_leaf_refused(pki: TestPKI, leaf: IssuedCert, root_crl: bytes) -> None:
    """R25: the leaf on its TLS CA's current CRL -> CertificateRevoked (serial, reason)."""
    with pytest.raises(CertificateRevoked) as info:
        _validate(
            pki, leaf, [pki.crl(revoked=[leaf], reason=x509.ReasonFlags.superseded), root_crl]
        )
    assert isinstance(info.value, ChainValidationError)
    assert info.value.rule == "chain.revocation"
    assert info.value.serial_number == leaf.cert.serial_number
    assert info.value.reason == "superseded"
    assert info.value.revocation_date is not None


def test_r25_revoked_tls_ca_on_the_root_crl_refused(pki: TestPKI) -> None:
    """R25: a TLS CA on the root's CRL revokes every leaf below it, leaf CRL current or not."""
    doomed = pki.root_ca.issue_ca("capif8sec revoked TLS CA")
    leaf = doomed.issue(pki.spec("client"))
    crls = [doomed.crl_pem(), pki.root_ca.crl_pem(revoked=[doomed.cert])]
    validator = ChainValidator(pki.trust_anchor_pem, crls=crls)
    with pytest.raises(CertificateRevoked) as info:
        validator.verify(leaf.cert, [doomed.cert], role="client")
    assert info.value.serial_number == doomed.cert.serial_number
    assert info.value.reason == "key_compromise"


def test_r25_missing_crl_is_revocation_unknown(pki: TestPKI, leaf: IssuedCert) -> None:
    """R25: no CRL of the leaf's issuer and no fetcher: fail closed, rule chain.revocation."""
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [pki.root_ca.crl_pem()])
    assert info.value.rule == "chain.revocation"
    assert "no CRL" in str(info.value)
    with pytest.raises(RevocationUnknown):
        _validate(pki, leaf, [])


def _unusable_tls_ca_crls() -> dict[str, Callable[[TestPKI, ec.EllipticCurvePrivateKey], Any]]:
    now = _now()
    return {
        "stale": lambda p, k: p.tls_ca.crl(
            this_update=now - dt.timedelta(days=8), next_update=now - dt.timedelta(days=1)
        ),
        "not-yet-valid": lambda p, k: p.tls_ca.crl(this_update=now + dt.timedelta(hours=1)),
        "other-key": lambda p, k: p.tls_ca.crl(signer=k),
        "sha1": lambda p, k: _resign_crl(p.tls_ca.crl(), p.tls_ca.private_key, hash_name="sha1"),
        "v1": lambda p, k: _resign_crl(p.tls_ca.crl(), p.tls_ca.private_key, version1=True),
        "no-next-update": lambda p, k: _resign_crl(
            p.tls_ca.crl(), p.tls_ca.private_key, drop_next_update=True
        ),
        "delta": lambda p, k: _build_crl(p.tls_ca, extensions=[(x509.DeltaCRLIndicator(1), True)]),
        "sha224": lambda p, k: p.tls_ca.crl(hash_name="sha224"),
    }


@pytest.mark.parametrize("kind", list(_unusable_tls_ca_crls()))
def test_r25_unusable_crl_is_revocation_unknown_chain_crl(
    pki: TestPKI,
    leaf: IssuedCert,
    root_crl: bytes,
    impostor_key: ec.EllipticCurvePrivateKey,
    kind: str,
) -> None:
    """R25: the only CRL of the leaf's issuer is unusable -> RevocationUnknown, chain.crl."""
    bad = _unusable_tls_ca_crls()[kind](pki, impostor_key)
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [bad, root_crl])
    assert info.value.rule == "chain.crl"


def test_r25_stale_crl_accepted_within_clock_skew(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R24/R25: the clock skew applies to CRL times as to certificate times."""
    now = _now()
    just_stale = pki.tls_ca.crl(
        this_update=now - dt.timedelta(days=1), next_update=now - dt.timedelta(seconds=30)
    )
    result = _validate(pki, leaf, [just_stale, root_crl], clock_skew=dt.timedelta(minutes=2))
    _assert_good(result)
    with pytest.raises(RevocationUnknown):
        _validate(pki, leaf, [just_stale, root_crl], clock_skew=dt.timedelta(seconds=5))


def test_r25_newest_usable_crl_wins(pki: TestPKI, leaf: IssuedCert, root_crl: bytes) -> None:
    """R25: of several usable CRLs of one issuer the newest decides, in any order; an
    unusable one next to a usable one is ignored."""
    now = _now()
    older = _build_crl(pki.tls_ca, this_update=now - dt.timedelta(hours=2), number=1)
    newer = _build_crl(
        pki.tls_ca, revoked=[_entry(leaf)], this_update=now - dt.timedelta(hours=1), number=2
    )
    stale = _build_crl(
        pki.tls_ca,
        this_update=now - dt.timedelta(days=9),
        next_update=now - dt.timedelta(days=2),
        number=0,
    )
    orders: list[list[bytes | x509.CertificateRevocationList]] = [
        [older, newer, root_crl],
        [newer, older, root_crl],
        [stale, newer, root_crl],
    ]
    for crls in orders:
        with pytest.raises(CertificateRevoked):
            _validate(pki, leaf, crls)
    # and the good verdict of the newest CRL is not overridden by an older revocation
    recovered = _build_crl(pki.tls_ca, this_update=now - dt.timedelta(minutes=30), number=3)
    _assert_good(_validate(pki, leaf, [newer, recovered, root_crl]))


def test_r25_crl_of_an_unrelated_issuer_is_ignored(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R25: a handed-in CRL of another issuer is no CRL of the leaf's issuer."""
    stranger = TestPKI()
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [root_crl, stranger.root_ca.crl_pem(), pki.root_ca.crl_pem()])
    assert info.value.rule == "chain.revocation"
    # the stranger's TLS CA has our TLS CA's very name: its CRL reaches the check and fails it
    assert stranger.tls_ca.cert.subject == pki.tls_ca.cert.subject
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [stranger.crl(), root_crl])
    assert info.value.rule == "chain.crl"
    assert "does not verify" in str(info.value)


def test_r25_crl_scoped_to_ca_certificates_does_not_cover_the_leaf(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R25: an onlyContainsCACerts CRL says nothing about an end entity."""
    ca_only = _build_crl(pki.tls_ca, extensions=[(_idp(only_ca=True), True)])
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [ca_only, root_crl])
    assert info.value.rule == "chain.revocation"
    users = _build_crl(pki.tls_ca, extensions=[(_idp(only_user=True), True)])
    _assert_good(_validate(pki, leaf, [users, root_crl]))


def test_r25_crl_of_another_distribution_point_does_not_cover_the_leaf(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R25 (RFC 5280 6.3.3): a partition CRL for OTHER_URL cannot clear a certificate whose
    CDP is DEFAULT_CRL_URL, even though it is a current CRL of the right issuer."""
    other = _build_crl(pki.tls_ca, extensions=[(_idp(full_name=[OTHER_URL]), True)])
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [other, root_crl])
    assert info.value.rule == "chain.revocation"
    mine = _build_crl(pki.tls_ca, extensions=[(_idp(full_name=[DEFAULT_CRL_URL]), True)])
    _assert_good(_validate(pki, leaf, [other, mine, root_crl]))


def test_r25_ca_without_cdp_and_no_crl_is_reported_not_checked(
    pki: TestPKI, leaf: IssuedCert
) -> None:
    """R25: TLS CA certificates carry no CDP (6.1.4a does not require one); with no CRL of the
    root at hand, the result says so instead of claiming 'good'."""
    result = _validate(pki, leaf, [pki.crl()])
    assert result.revocation[0].startswith("good (CRL")
    assert result.revocation[1] == "not checked (CA without a CRL distribution point)"


def test_r25_unusable_root_crl_does_not_hide_a_revoked_tls_ca(pki: TestPKI) -> None:
    """R25: once the root's CRL listing a TLS CA goes stale, the TLS CA is not silently
    accepted again: revocation is unknown (fail closed), not 'not checked'."""
    doomed = pki.root_ca.issue_ca("capif8sec revoked TLS CA 2")
    leaf = doomed.issue(pki.spec("client"))
    now = _now()
    stale_root_crl = pki.root_ca.crl(
        revoked=[doomed.cert],
        this_update=now - dt.timedelta(days=9),
        next_update=now - dt.timedelta(days=2),
    )
    validator = ChainValidator(pki.trust_anchor_pem, crls=[doomed.crl_pem(), stale_root_crl])
    with pytest.raises(RevocationUnknown) as info:
        validator.verify(leaf.cert, [doomed.cert], role="client")
    assert info.value.rule == "chain.crl"


# ----------------------------------------------------------------------------- fetcher


class _Fetcher:
    """Records every URL it is asked for and answers with a prepared CRL (or raises)."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes | x509.CertificateRevocationList:
        self.calls.append(url)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[return-value]


@pytest.mark.parametrize("as_bytes", [True, False], ids=["pem", "object"])
def test_r25_fetcher_called_with_the_cdp_url_and_its_crl_used(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes, as_bytes: bool
) -> None:
    """R25: no CRL handed in -> the injected fetcher gets the leaf's CDP URI; its CRL counts."""
    good = pki.tls_ca.crl()
    fetcher = _Fetcher(_pem(good) if as_bytes else good)
    result = _validate(pki, leaf, [root_crl], crl_fetcher=fetcher)
    _assert_good(result)
    assert fetcher.calls == [DEFAULT_CRL_URL]

    revoking = _Fetcher(_build_crl(pki.tls_ca, revoked=[_entry(leaf)]))
    with pytest.raises(CertificateRevoked):
        _validate(pki, leaf, [root_crl], crl_fetcher=revoking)
    assert revoking.calls == [DEFAULT_CRL_URL]


def test_r25_fetcher_not_called_when_a_usable_crl_is_at_hand(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R25: handed-in CRLs come first; the fetcher is the fallback."""
    fetcher = _Fetcher(OSError("must not be called"))
    _assert_good(_validate(pki, leaf, [pki.crl(), root_crl], crl_fetcher=fetcher))
    assert fetcher.calls == []


def test_r25_fetcher_used_when_the_handed_in_crl_is_stale(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R25: a stale handed-in CRL is no answer; the fetcher is asked and its fresh CRL used."""
    now = _now()
    stale = pki.tls_ca.crl(
        this_update=now - dt.timedelta(days=9), next_update=now - dt.timedelta(days=2)
    )
    fetcher = _Fetcher(pki.tls_ca.crl())
    _assert_good(_validate(pki, leaf, [stale, root_crl], crl_fetcher=fetcher))
    assert fetcher.calls == [DEFAULT_CRL_URL]


@pytest.mark.parametrize(
    "answer",
    [
        OSError("connection refused"),
        TimeoutError(),
        RuntimeError("fetcher bug"),
        ValueError("bad response"),
    ],
    ids=["oserror", "timeout", "runtime", "value"],
)
def test_r25_failing_fetcher_is_revocation_unknown(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes, answer: Exception
) -> None:
    """R25: whatever the fetcher raises becomes RevocationUnknown (fail closed), typed."""
    fetcher = _Fetcher(answer)
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [root_crl], crl_fetcher=fetcher)
    assert fetcher.calls == [DEFAULT_CRL_URL]
    assert DEFAULT_CRL_URL in str(info.value)
    assert type(answer).__name__ in str(info.value)


@pytest.mark.parametrize(
    "answer",
    [b"not a crl", "", None, 42, b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"],
    ids=["junk", "empty", "none", "int", "bad-pem"],
)
def test_r25_fetcher_returning_garbage_is_revocation_unknown(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes, answer: object
) -> None:
    """R25: a fetcher answer that is no CRL -> RevocationUnknown, rule chain.crl."""
    with pytest.raises(RevocationUnknown) as info:
        _validate(pki, leaf, [root_crl], crl_fetcher=_Fetcher(answer))
    assert info.value.rule == "chain.crl"


def test_r25_fetched_crl_is_checked_like_a_handed_in_one(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes, impostor_key: ec.EllipticCurvePrivateKey
) -> None:
    """R25: the fetched CRL must be the issuer's, correctly signed, current, complete."""
    now = _now()
    for bad in (
        pki.root_ca.crl(),  # wrong issuer
        pki.tls_ca.crl(signer=impostor_key),  # forged
        pki.tls_ca.crl(this_update=now - dt.timedelta(days=9), next_update=now - dt.timedelta(1)),
        _resign_crl(pki.tls_ca.crl(), pki.tls_ca.private_key, hash_name="sha1"),
        _build_crl(pki.tls_ca, extensions=[(x509.DeltaCRLIndicator(1), True)]),
    ):
        with pytest.raises(RevocationUnknown) as info:
            _validate(pki, leaf, [root_crl], crl_fetcher=_Fetcher(bad))
        assert info.value.rule == "chain.crl"


def test_r25_library_does_no_network_io_itself(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes, no_network: list[str]
) -> None:
    """R25: with a CDP URL and no CRL, the validator fails closed without any socket use."""
    with pytest.raises(RevocationUnknown):
        _validate(pki, leaf, [root_crl])
    fetcher = _Fetcher(pki.tls_ca.crl())
    _assert_good(_validate(pki, leaf, [root_crl], crl_fetcher=fetcher))
    assert no_network == []


# ----------------------------------------------------------------------------- deviations


def test_r25_deviation_no_revocation_check(pki: TestPKI, leaf: IssuedCert) -> None:
    """R25 deviation: with no-revocation-check no CRL is consulted, and the result says so."""
    with pytest.raises(RevocationUnknown):
        _validate(pki, leaf, [])
    fetcher = _Fetcher(OSError("must not be called"))
    result = _validate(pki, leaf, [], deviations=["no-revocation-check"], crl_fetcher=fetcher)
    assert result.deviations == ("no-revocation-check",)
    assert result.revocation == ("not checked (deviation no-revocation-check)",) * 2
    assert fetcher.calls == []


def test_r14_deviation_no_crl_distribution_point(pki: TestPKI, root_crl: bytes) -> None:
    """R14: a leaf without CDP is refused by the profile, unless the deviation is set; then
    with no CRL it is 'not checked', and a CRL of its issuer at hand is still applied."""
    bare = pki.client_cert("rof-no-cdp", crl_urls=())
    with pytest.raises(ProfileViolation) as info:
        _validate(pki, bare, [pki.crl(), root_crl])
    assert "ee.crl_distribution_point" in info.value.reports[0].rule_ids()

    deviation = ["no-crl-distribution-point"]
    fetcher = _Fetcher(OSError("no URL to fetch"))
    result = _validate(pki, bare, [root_crl], deviations=deviation, crl_fetcher=fetcher)
    assert result.revocation[0] == "not checked (deviation no-crl-distribution-point)"
    assert result.deviations == ("no-crl-distribution-point",)
    assert fetcher.calls == []

    _assert_good(_validate(pki, bare, [pki.crl(), root_crl], deviations=deviation))
    with pytest.raises(CertificateRevoked):
        _validate(
            pki,
            bare,
            [_build_crl(pki.tls_ca, revoked=[_entry(bare)]), root_crl],
            deviations=deviation,
        )
    # a CRL of its issuer at hand but unusable is not silently skipped
    stale = _build_crl(
        pki.tls_ca,
        this_update=_now() - dt.timedelta(days=9),
        next_update=_now() - dt.timedelta(days=2),
    )
    with pytest.raises(RevocationUnknown):
        _validate(pki, bare, [stale, root_crl], deviations=deviation)


# ----------------------------------------------------------------------------- R26 / R62


def test_r26_r62_replace_crls_takes_effect_on_the_next_verify(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R26/R62: no validation result is cached: a new CRL set changes the very next verdict."""
    validator = ChainValidator(pki.trust_anchor_pem, crls=[pki.tls_ca.crl(), root_crl])
    validator.verify(leaf.cert, leaf.intermediates, role="client")

    validator.replace_crls([_build_crl(pki.tls_ca, revoked=[_entry(leaf)]), root_crl])
    with pytest.raises(CertificateRevoked):
        validator.verify(leaf.cert, leaf.intermediates, role="client")

    validator.replace_crls([root_crl])
    with pytest.raises(RevocationUnknown):
        validator.verify(leaf.cert, leaf.intermediates, role="client")

    validator.replace_crls([_build_crl(pki.tls_ca, number=7), root_crl])
    result = validator.verify(leaf.cert, leaf.intermediates, role="client")
    assert result.revocation[0].startswith("good (CRL #7 ")


def test_r26_the_same_crl_object_is_rechecked_for_time_on_every_verify(
    pki: TestPKI, leaf: IssuedCert, root_crl: bytes
) -> None:
    """R26: the signature check of a CRL may be memoised, its currency may not."""
    now = _now()
    short = _build_crl(
        pki.tls_ca, this_update=now - dt.timedelta(minutes=5), next_update=now + dt.timedelta(1)
    )
    validator = ChainValidator(pki.trust_anchor_pem, crls=[short, root_crl])
    validator.verify(leaf.cert, leaf.intermediates, role="client", at=now)
    with pytest.raises(RevocationUnknown) as info:
        validator.verify(
            leaf.cert, leaf.intermediates, role="client", at=now + dt.timedelta(days=2)
        )
    assert info.value.rule == "chain.crl"


def test_r25_load_crl_accepts_pem_der_and_objects(pki: TestPKI) -> None:
    """R25: CRLs may be handed in as PEM, DER or cryptography objects."""
    obj = pki.tls_ca.crl()
    der = obj.public_bytes(serialization.Encoding.DER)
    for form in (obj, der, _pem(obj), _pem(obj).decode(), bytearray(der), memoryview(der)):
        assert load_crl(form).tbs_certlist_bytes == obj.tbs_certlist_bytes
