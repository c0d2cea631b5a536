"""``ChainValidator.verify`` with an intermediate it validated before (R24).

A CCF meets many ROF certificates under one TLS CA.  Once pyca has validated a path through
that TLS CA, the validator checks a new leaf against the TLS CA alone (its signature, validity
and end-entity rules) and the rest of the path for validity only (``ChainValidator._prove``).
These tests hold that shortcut to the full validation's answer for leaves that must be refused
and for CA material that must never be shortened (constraints that reach down to the leaf).
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from capif8sec.certs import ChainValidator
from capif8sec.errors import CertificateExpired
from capif8sec.testing import CA, CertSpec, TestPKI


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _validator(root: CA, crls: list[bytes], *, cache_size: int = 4096) -> ChainValidator:
    return ChainValidator(root.cert_pem, crls=crls, cache_size=cache_size)


def _outcome(
    v: ChainValidator, leaf: bytes, pool: list[bytes], at: dt.datetime | None
) -> tuple[object, ...]:
    try:
        r = v.verify(leaf, pool, role="client", at=at)
    except Exception as exc:
        return (type(exc).__name__, getattr(exc, "rule", None))
    return ("accepted", r.chain, r.revocation[:1], r.identities)


def _agree(
    root: CA, cas: tuple[CA, ...], proving: bytes, leaf: bytes, pool: list[bytes], at: object
) -> tuple[object, ...]:
    """The outcome for ``leaf`` from a validator that proved ``pool`` with ``proving`` first,
    asserted equal to a validator's that never saw anything."""
    when = at if isinstance(at, dt.datetime) else None
    crls = [ca.crl_pem() for ca in (root, *cas)]
    warm = _validator(root, crls)
    warm.verify(proving, pool, role="client")
    assert warm._proven, "the first validation should have proved the intermediate"
    cold = _validator(root, crls, cache_size=0)
    got = _outcome(warm, leaf, pool, when)
    assert got == _outcome(cold, leaf, pool, when)
    return got


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def test_r24_new_leaves_through_a_proven_tls_ca_are_judged_as_by_full_validation(
    pki: TestPKI,
) -> None:
    """R13/R24: good, expired, not yet valid, server-only and foreign-key leaves: same answers."""
    pool = [_der(pki.tls_ca.cert)]
    proving = _der(pki.client_cert("rof-proving").cert)
    good = pki.client_cert("rof-new")
    accepted = _agree(pki.root_ca, (pki.tls_ca,), proving, _der(good.cert), pool, None)
    assert accepted[0] == "accepted"
    assert accepted[1] == (good.cert, pki.tls_ca.cert, pki.root_ca.cert)

    now = dt.datetime.now(dt.UTC)
    expired = pki.client_cert(
        "rof-old", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    early = pki.client_cert(
        "rof-early", not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=30)
    )
    server_only = pki.server_cert("ccf.capif.example")
    stranger = TestPKI()  # the same CA names, other keys: signed by a look-alike TLS CA
    foreign = stranger.client_cert("rof-foreign")
    for leaf, expected in (
        (expired, "CertificateExpired"),
        (early, "CertificateExpired"),
        (server_only, "ProfileViolation"),
        (foreign, "ChainValidationError"),
    ):
        got = _agree(pki.root_ca, (pki.tls_ca,), proving, _der(leaf.cert), pool, None)
        assert got[0] == expected, got


def test_r24_an_expired_tls_ca_is_refused_after_it_was_proven() -> None:
    """R24: the TLS CA expires before its leaf; past that instant the leaf is refused, with
    the path shortened or not."""
    root = CA.root()
    now = dt.datetime.now(dt.UTC)
    tls_ca = root.issue_ca("short-lived TLS CA", not_after=now + dt.timedelta(days=30))
    pki = TestPKI()
    spec = pki.spec("client", validity_days=365)
    proving, leaf = tls_ca.issue(spec), tls_ca.issue(spec)
    pool = [_der(tls_ca.cert)]
    assert leaf.cert.not_valid_after_utc > tls_ca.cert.not_valid_after_utc
    later = now + dt.timedelta(days=40)
    crls = [
        ca.crl_pem(this_update=now - dt.timedelta(days=1), next_update=later + dt.timedelta(1))
        for ca in (root, tls_ca)
    ]
    warm = ChainValidator(root.cert_pem, crls=crls)
    warm.verify(_der(proving.cert), pool, role="client", at=later - dt.timedelta(days=11))
    assert warm._proven
    with pytest.raises(CertificateExpired):
        warm.verify(_der(leaf.cert), pool, role="client", at=later)
    cold = ChainValidator(root.cert_pem, crls=crls, cache_size=0)
    with pytest.raises(CertificateExpired):
        cold.verify(_der(leaf.cert), pool, role="client", at=later)


def test_r24_a_path_under_name_constraints_is_never_shortened() -> None:
    """R24: name constraints of a CA reach down to every leaf: each new leaf is validated in
    full, and one outside the permitted names is refused."""
    root = CA.root()
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("allowed.example")], excluded_subtrees=None
    )
    tls_ca = root.issue_ca("constrained TLS CA", extra_extensions=((constraints, True),))
    pki = TestPKI()
    inside = tls_ca.issue(pki.spec("client", dns_names=("rof.allowed.example",)))
    outside = tls_ca.issue(pki.spec("client", dns_names=("rof.other.example",)))
    pool = [_der(tls_ca.cert)]
    crls = [ca.crl_pem() for ca in (root, tls_ca)]
    v = _validator(root, crls)
    v.verify(_der(inside.cert), pool, role="client")
    assert not v._proven
    refused = _outcome(v, _der(outside.cert), pool, None)
    assert refused[0] == "ChainValidationError", refused
    assert refused == _outcome(_validator(root, crls, cache_size=0), _der(outside.cert), pool, None)


def test_r24_a_root_not_yet_valid_is_refused_after_its_path_was_proven() -> None:
    """R24: every element of the remembered rest of the path is checked for validity on each
    call -- here the root, which pyca does not see when the path is shortened."""
    root = CA.root()
    start = root.cert.not_valid_before_utc
    tls_ca = root.issue_ca("early TLS CA", not_before=start - dt.timedelta(days=10))
    pki = TestPKI()
    spec = pki.spec("client", not_before=start - dt.timedelta(days=10), validity_days=365)
    proving, leaf = tls_ca.issue(spec), tls_ca.issue(spec)
    pool = [_der(tls_ca.cert)]
    before = start - dt.timedelta(days=1)
    crls = [
        ca.crl_pem(this_update=before - dt.timedelta(days=1), next_update=start + dt.timedelta(7))
        for ca in (root, tls_ca)
    ]
    warm = _validator(root, crls)
    warm.verify(_der(proving.cert), pool, role="client", at=start + dt.timedelta(days=1))
    assert warm._proven
    refused = _outcome(warm, _der(leaf.cert), pool, before)
    assert refused[0] == "CertificateExpired", refused
    assert refused == _outcome(_validator(root, crls, cache_size=0), _der(leaf.cert), pool, before)


# -- found by review: each of these was accepted (or crashed) where the full path refuses ------


def test_r16_a_pinned_leaf_is_refused_after_its_tls_ca_was_proven() -> None:
    """R16: a leaf that is itself a trust anchor is refused (chain.path), shortened or not."""
    pki = TestPKI()
    pinned = pki.client_cert("rof-pinned")
    crls = [pki.root_ca.crl_pem(), pki.crl()]
    anchors = [pki.root_ca.cert_pem, pinned.cert_pem]
    pool = [_der(pki.tls_ca.cert)]
    warm = ChainValidator(anchors, crls=crls)
    warm.verify(_der(pki.client_cert("rof-proving").cert), pool, role="client")
    assert warm._proven
    refused = _outcome(warm, _der(pinned.cert), pool, None)
    assert refused == ("ChainValidationError", "chain.path")
    cold = ChainValidator(anchors, crls=crls, cache_size=0)
    assert _outcome(cold, _der(pinned.cert), pool, None) == refused


def test_r16_an_anchor_named_like_the_tls_ca_keeps_every_path_in_full() -> None:
    """R16/R24: an anchor with the TLS CA's name and key but another key identifier is the
    issuer pyca picks for a leaf whose AKI names it; as a TLS CA without pathLen 0 it makes
    that leaf's chain non-conformant, with or without a proven TLS CA before."""
    pki = TestPKI()
    tls_ca = pki.tls_ca
    other_ski = b"\x01" * 20
    look_alike = pki.root_ca.sign(
        CertSpec(
            subject=tls_ca.cert.subject,
            ca=True,
            path_length=None,
            key_usage=x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            basic_constraints_critical=True,
            crl_urls=(),
            subject_key_identifier=False,
            extra_extensions=((x509.SubjectKeyIdentifier(other_ski), False),),
        ),
        tls_ca.private_key,
    )
    leaf = tls_ca.issue(
        pki.spec(
            "client",
            authority_key_identifier=False,
            extra_extensions=((x509.AuthorityKeyIdentifier(other_ski, None, None), False),),
        )
    )
    anchors = [pki.root_ca.cert_pem, look_alike.public_bytes(serialization.Encoding.PEM)]
    crls = [pki.root_ca.crl_pem(), pki.crl()]
    pool = [_der(tls_ca.cert)]
    warm = ChainValidator(anchors, crls=crls)
    warm.verify(_der(pki.client_cert("rof-proving").cert), pool, role="client")
    assert not warm._proven
    refused = _outcome(warm, _der(leaf.cert), pool, None)
    assert refused == ("ProfileViolation", "chain.issued_by_tls_ca")
    cold = ChainValidator(anchors, crls=crls, cache_size=0)
    assert _outcome(cold, _der(leaf.cert), pool, None) == refused


def test_r24_intermediates_given_as_text_are_not_remembered() -> None:
    """An intermediate parsed afresh on every call (PEM text) would never be looked up again:
    nothing is remembered for it, so the memo cannot fill up with one peer's copies."""
    pki = TestPKI()
    crls = [pki.root_ca.crl_pem(), pki.crl()]
    v = ChainValidator(pki.root_ca.cert_pem, crls=crls)
    leaf = _der(pki.client_cert().cert)
    for _ in range(3):
        v.verify(leaf, [pki.tls_ca.cert_pem.decode()], role="client")
    assert not v._proven
