"""The raw-DER reader of lint facts (capif8sec.certs.rawfacts) against pyca/cryptography.

The raw reader may only make a lint faster, never change its outcome: whenever it returns facts
for a certificate, pyca must decode the same certificate without error to equal facts; where it
declines (a DerError inside, None out) the lint falls back to pyca.  Checked on certificates
generated with pyca's builder (many extension shapes, key types, criticalities), on mutated DER
(byte edits aimed at the public key and the extensions), and end to end: every lint report is
the same with the raw reader switched off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from capif8sec import _der
from capif8sec.certs import facts as facts_mod
from capif8sec.certs import lint
from capif8sec.certs.facts import CertFacts, crypto_extension_facts, key_facts
from capif8sec.certs.rawfacts import ExtensionFacts, raw_cert_facts
from capif8sec.errors import CertificateParseError
from capif8sec.testing import TestPKI

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DER = serialization.Encoding.DER
RAW = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())
_KEYS: dict[str, Any] = {
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "k256": ec.generate_private_key(ec.SECP256K1()),
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}
_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "capif8sec"),
        x509.NameAttribute(NameOID.COMMON_NAME, "raw facts"),
    ]
)


def _crypto_facts(cert: x509.Certificate) -> tuple[Any, Any]:
    """pyca's verdicts: (key facts tuple or the exception, ExtensionFacts or the exception)."""
    key: Any
    try:
        k = key_facts(cert.public_key())
        key = (k.kind, k.bits, k.security_bits, k.curve)
    except Exception as exc:
        key = exc
    exts: Any
    try:
        exts = crypto_extension_facts(cert.extensions)
    except Exception as exc:
        exts = exc
    return key, exts


def assert_agrees(der: bytes) -> tuple[bool, bool]:
    """The raw reader declines (None), or agrees with pyca; returns where it read facts."""
    cert = x509.load_der_x509_certificate(der)
    raw_key, raw_exts = raw_cert_facts(der)
    crypto_key, crypto_exts = _crypto_facts(cert)
    if raw_key is not None:
        assert raw_key == crypto_key, (raw_key, crypto_key)
    if raw_exts is not None:
        assert isinstance(crypto_exts, ExtensionFacts), crypto_exts
        assert raw_exts == crypto_exts
    return raw_key is not None, raw_exts is not None


# --------------------------------------------------------------------------- generated


def _ascii(min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=min_size, max_size=24
    )


_OIDS = st.one_of(
    st.sampled_from(
        [
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            ExtendedKeyUsageOID.CODE_SIGNING,
        ]
    ),
    st.builds(
        lambda a, b, rest: x509.ObjectIdentifier(".".join(map(str, (a, b, *rest)))),
        st.integers(0, 2),
        st.integers(0, 39),
        st.lists(st.integers(0, 2**70), max_size=4),
    ),
)
_IP = st.one_of(
    st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)),
)
_GENERAL_NAME = st.one_of(
    st.builds(x509.DNSName, _ascii()),
    st.builds(x509.UniformResourceIdentifier, _ascii()),
    st.builds(x509.IPAddress, _IP),
    st.just(x509.RFC822Name("rof@capif.example")),
    st.just(x509.DirectoryName(_NAME)),
    st.just(x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4"))),
)


@st.composite
def _key_usage(draw: st.DrawFn) -> x509.KeyUsage:
    bits = draw(st.lists(st.booleans(), min_size=9, max_size=9))
    if not bits[4]:
        bits[7] = bits[8] = False
    return x509.KeyUsage(*bits)


@st.composite
def _basic_constraints(draw: st.DrawFn) -> x509.BasicConstraints:
    ca = draw(st.booleans())
    return x509.BasicConstraints(ca, draw(st.none() | st.integers(0, 2**40)) if ca else None)


_DIST_POINT = st.one_of(
    st.builds(
        lambda names: x509.DistributionPoint(names, None, None, None),
        st.lists(_GENERAL_NAME, min_size=1, max_size=3),
    ),
    st.just(
        x509.DistributionPoint(
            [x509.UniformResourceIdentifier("http://crl.example/a.crl")],
            None,
            frozenset({x509.ReasonFlags.key_compromise}),
            None,
        )
    ),
    st.just(
        x509.DistributionPoint(
            None,
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "crl")]),
            None,
            None,
        )
    ),
)
_EXTENSION = st.one_of(
    _key_usage(),
    _basic_constraints(),
    st.builds(x509.ExtendedKeyUsage, st.lists(_OIDS, min_size=1, max_size=4)),
    st.builds(x509.SubjectAlternativeName, st.lists(_GENERAL_NAME, min_size=1, max_size=4)),
    st.builds(x509.CRLDistributionPoints, st.lists(_DIST_POINT, min_size=1, max_size=2)),
    st.builds(x509.SubjectKeyIdentifier, st.binary(min_size=1, max_size=32)),
    st.builds(
        lambda kid: x509.AuthorityKeyIdentifier(kid, None, None),
        st.binary(min_size=1, max_size=32),
    ),
    st.just(x509.AuthorityKeyIdentifier(None, [x509.DirectoryName(_NAME)], 7)),
    st.just(
        x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), None)]
        )
    ),
    st.builds(
        x509.UnrecognizedExtension,
        st.just(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")),
        st.binary(max_size=8),
    ),
)


_SAN_NAME = st.one_of(
    st.builds(x509.DNSName, _ascii()),
    st.builds(x509.UniformResourceIdentifier, _ascii()),
    st.builds(x509.IPAddress, _IP),
)
#: Extensions in the shapes the raw reader reads (so that it is not only seen declining).
_COMMON_EXTENSION = st.one_of(
    _key_usage(),
    _basic_constraints(),
    st.builds(x509.ExtendedKeyUsage, st.lists(_OIDS, min_size=1, max_size=4)),
    st.builds(x509.SubjectAlternativeName, st.lists(_SAN_NAME, min_size=1, max_size=4)),
    st.builds(
        x509.CRLDistributionPoints,
        st.lists(
            st.builds(
                lambda uris: x509.DistributionPoint(
                    [x509.UniformResourceIdentifier(u) for u in uris], None, None, None
                ),
                st.lists(_ascii(), min_size=1, max_size=2),
            ),
            min_size=1,
            max_size=2,
        ),
    ),
    st.builds(x509.SubjectKeyIdentifier, st.binary(min_size=1, max_size=32)),
    st.builds(
        lambda kid: x509.AuthorityKeyIdentifier(kid, None, None),
        st.binary(min_size=1, max_size=32),
    ),
)


_RSA_ISSUER_KEY = _KEYS["rsa"]
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SIGNERS: list[Callable[[x509.CertificateBuilder], x509.Certificate]] = [
    lambda b: b.sign(_ISSUER_KEY, hashes.SHA256()),
    lambda b: b.sign(_ISSUER_KEY, hashes.SHA384()),
    lambda b: b.sign(_RSA_ISSUER_KEY, hashes.SHA256()),
    lambda b: b.sign(_RSA_ISSUER_KEY, hashes.SHA256(), rsa_padding=_PSS),
    lambda b: b.sign(_KEYS["ed25519"], None),
]


@st.composite
def generated_certificates(draw: st.DrawFn) -> bytes:
    common = draw(st.booleans())
    key = _KEYS[draw(st.sampled_from(["p256", "p384"] if common else sorted(_KEYS)))]
    now = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_NAME)
        .issuer_name(_NAME)
        .public_key(key.public_key())
        .serial_number(draw(st.integers(1, 2**150)))
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
    )
    seen: set[type[Any]] = set()
    for ext in draw(st.lists(_COMMON_EXTENSION if common else _EXTENSION, max_size=8)):
        if type(ext) in seen:  # the builder refuses duplicates (they are mutated in below)
            continue
        seen.add(type(ext))
        builder = builder.add_extension(ext, critical=draw(st.booleans()))
    signer = draw(st.sampled_from(_SIGNERS))
    return signer(builder).public_bytes(DER)


@RAW
@given(der=generated_certificates())
def test_raw_facts_equal_pyca_facts_on_generated_certificates(der: bytes) -> None:
    key, exts = assert_agrees(der)
    # the whole facts layer, from the DER (raw reader, memos) and from pyca alone
    fast = CertFacts(x509.load_der_x509_certificate(der), der)
    slow = CertFacts(x509.load_der_x509_certificate(der))
    for attr in ("signature_kind", "signature_hash", "key_error", "extension_error", "exts"):
        assert getattr(fast, attr) == getattr(slow, attr), attr
    assert (fast.key is None) == (slow.key is None)
    if fast.key is not None and slow.key is not None:
        assert fast.key.describe() == slow.key.describe()
        assert fast.key.security_bits == slow.key.security_bits
    event(
        f"raw key {'read' if key else 'declined'}, raw extensions {'read' if exts else 'declined'}"
    )


# --------------------------------------------------------------------------- mutated


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    pki = TestPKI()
    p384 = TestPKI("p384")
    out = [
        pki.server_cert().cert.public_bytes(DER),
        pki.client_cert().cert.public_bytes(DER),
        pki.tls_ca.cert.public_bytes(DER),
        pki.root_ca.cert.public_bytes(DER),
        p384.client_cert().cert.public_bytes(DER),
        pki.server_cert(ip_addresses=["192.0.2.7", "2001:db8::1"]).cert.public_bytes(DER),
    ]
    for der in out:  # the fast path is taken on conformant certificates: the test has a point
        assert assert_agrees(der) == (True, True)
    return out


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["set", "flip", "insert", "delete"]),
        st.floats(0, 1, exclude_max=True),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=3,
)


def _edit(data: bytes, edits: list[tuple[str, float, int]]) -> bytes:
    out = bytearray(data)
    for op, where, value in edits:
        pos = int(where * len(out))
        if op == "insert" or not out:
            out.insert(pos, value)
        elif op == "set":
            out[pos] = value
        elif op == "flip":
            out[pos] ^= 1 << (value % 8)
        else:
            del out[pos]
    return bytes(out)


def _mutant(der: bytes, target: int, level: str, edits: list[tuple[str, float, int]]) -> bytes:
    """``der`` with ``edits`` applied inside the public key or one extension, every enclosing
    length re-encoded (so that pyca still loads it and the raw reader sees the change).

    ``level``: ``spki`` (the SubjectPublicKeyInfo's content), ``value`` (an extnValue's
    content), ``extension`` (an Extension's content), ``list`` (the SEQUENCE OF Extension's
    content) or ``raw`` (bytes of the whole certificate, lengths left as they are).
    """
    if level == "raw":
        return _edit(der, edits)
    outer, _ = _der.read_tlv(der)
    tbs, *rest = list(_der.iter_tlvs(outer.content))
    fields = [t.raw for t in _der.iter_tlvs(tbs.content)]
    if level == "spki":
        i = 6 if fields[0][0] == 0xA0 else 5
        spki = _der.read_tlv(fields[i])[0]
        fields[i] = _der.encode(0x30, _edit(spki.content, edits))
    else:
        exts = _der.read_tlv(_der.read_tlv(fields[-1])[0].content)[0]
        items = [t.raw for t in _der.iter_tlvs(exts.content)]
        k = target % len(items)
        if level == "list":
            body = _edit(b"".join(items), edits)
        else:
            parts = list(_der.iter_tlvs(_der.read_tlv(items[k])[0].content))
            if level == "value":
                value = _der.encode(0x04, _edit(parts[-1].content, edits))
                content = b"".join(p.raw for p in parts[:-1]) + value
            else:
                content = _edit(b"".join(p.raw for p in parts), edits)
            items[k] = _der.encode(0x30, content)
            body = b"".join(items)
        fields[-1] = _der.encode(0xA3, _der.encode(0x30, body))
    return _der.encode(0x30, _der.encode(0x30, b"".join(fields)) + b"".join(t.raw for t in rest))


@settings(RAW, suppress_health_check=[*RAW.suppress_health_check, HealthCheck.filter_too_much])
@given(
    index=st.integers(0, 5),
    target=st.integers(0, 7),
    level=st.sampled_from(["spki", "value", "value", "value", "extension", "list", "raw"]),
    edits=_EDITS,
)
def test_raw_facts_on_mutated_der_agree_or_decline(
    seeds: list[bytes], index: int, target: int, level: str, edits: list[tuple[str, float, int]]
) -> None:
    data = _mutant(seeds[index], target, level, edits)
    try:
        x509.load_der_x509_certificate(data)
    except Exception:
        assume(False)
    key, exts = assert_agrees(data)
    event(
        f"raw key {'read' if key else 'declined'}, raw extensions {'read' if exts else 'declined'}"
    )


# --------------------------------------------------------------------------- end to end


def _outcome(der: bytes, **kwargs: Any) -> object:
    try:
        return lint(der, **kwargs)
    except CertificateParseError as exc:  # e.g. DER holding a PEM header is read as PEM
        return ("CertificateParseError", str(exc))


def _lint_both(monkeypatch: pytest.MonkeyPatch, der: bytes, **kwargs: Any) -> None:
    fast = _outcome(der, **kwargs)
    with monkeypatch.context() as patched:
        patched.setattr(facts_mod, "raw_facts_at", lambda _der, _spki, _rest: (None, None))
        slow = _outcome(der, **kwargs)
    assert fast == slow


@RAW
@given(der=generated_certificates(), role=st.sampled_from(["server", "client"]))
def test_lint_reports_are_the_same_without_the_raw_reader(
    monkeypatch: pytest.MonkeyPatch, der: bytes, role: str
) -> None:
    _lint_both(monkeypatch, der, profile="tls-entity", role=role)
    _lint_both(monkeypatch, der, profile="sba-nf", role="both", strict=True)
    _lint_both(monkeypatch, der, profile="tls-ca")


# --------------------------------------------------------------------------- declines


def _edit_extensions(der: bytes, old: bytes, new: bytes, *, repeat: bool = False) -> bytes:
    """``der`` with ``old`` replaced by ``new`` inside one Extension (or, with ``repeat``, the
    Extension holding ``old`` appended again); every enclosing length re-encoded."""
    outer, _ = _der.read_tlv(der)
    tbs, *rest = list(_der.iter_tlvs(outer.content))
    fields = [t.raw for t in _der.iter_tlvs(tbs.content)]
    exts = _der.read_tlv(_der.read_tlv(fields[-1])[0].content)[0]
    items = [t for t in _der.iter_tlvs(exts.content)]
    hits = [i for i, t in enumerate(items) if old in t.raw]
    assert len(hits) == 1, old.hex()
    target = items[hits[0]]
    raws = [t.raw for t in items]
    if repeat:
        raws.append(target.raw)
    else:
        raws[hits[0]] = _der.encode(0x30, target.content.replace(old, new))
    fields[-1] = _der.encode(0xA3, _der.encode(0x30, b"".join(raws)))
    return _der.encode(0x30, _der.encode(0x30, b"".join(fields)) + b"".join(t.raw for t in rest))


def _with_value(der: bytes, oid: str, value: bytes) -> bytes:
    """``der`` with the extnValue of extension ``oid`` replaced by ``value`` (re-encoded)."""
    body = _der.encode_oid(oid)
    outer, _ = _der.read_tlv(der)
    tbs, *rest = list(_der.iter_tlvs(outer.content))
    fields = [t.raw for t in _der.iter_tlvs(tbs.content)]
    exts = _der.read_tlv(_der.read_tlv(fields[-1])[0].content)[0]
    items = []
    for item in _der.iter_tlvs(exts.content):
        parts = list(_der.iter_tlvs(item.content))
        if parts[0].raw == body:
            head = b"".join(p.raw for p in parts[:-1])
            items.append(_der.encode(0x30, head + _der.encode(0x04, value)))
        else:
            items.append(item.raw)
    fields[-1] = _der.encode(0xA3, _der.encode(0x30, b"".join(items)))
    return _der.encode(0x30, _der.encode(0x30, b"".join(fields)) + b"".join(t.raw for t in rest))


_URI = b"urn:capif:rof:rof-1"


@pytest.mark.parametrize(
    ("oid", "value", "what"),
    [
        ("2.5.29.15", b"\x03\x02\x06\x80", "keyUsage with a trailing zero bit"),
        ("2.5.29.15", b"\x03\x03\x07\x80\x00", "keyUsage with a trailing zero octet"),
        ("2.5.29.15", b"\x03\x02\x00\x81", "keyUsage encipherOnly without keyAgreement"),
        ("2.5.29.19", b"\x30\x03\x01\x01\x00", "basicConstraints with cA FALSE encoded"),
        ("2.5.29.19", b"\x30\x03\x02\x01\x00", "pathLenConstraint without cA"),
        ("2.5.29.19", b"\x30\x06\x01\x01\xff\x02\x01\xff", "negative pathLenConstraint"),
        ("2.5.29.37", b"\x30\x00", "empty extendedKeyUsage"),
        ("2.5.29.37", b"\x30\x05\x06\x03\x2b\x80\x01", "non-minimal OID arc"),
        ("2.5.29.17", b"\x30\x16\x86\x81\x13" + _URI, "non-minimal length"),
        ("2.5.29.17", b"\x30\x00", "empty subjectAltName"),
        ("2.5.29.17", b"\x30\x07\x87\x05\x01\x02\x03\x04\x05", "5-octet IP address"),
        ("2.5.29.17", b"\x30\x05\x86\x03a\x00b", "URI with a NUL"),
        ("2.5.29.31", b"\x30\x02\x30\x00", "empty distribution point"),
        ("2.5.29.35", b"\x30\x00", "authorityKeyIdentifier without keyIdentifier"),
        ("2.5.29.14", b"\x04\x00", "empty subjectKeyIdentifier"),
        ("2.5.29.14", b"\x04\x01\x01\x00", "trailing data after the key identifier"),
    ],
)
def test_unusual_extensions_are_left_to_pyca(
    monkeypatch: pytest.MonkeyPatch, oid: str, value: bytes, what: str
) -> None:
    der = TestPKI().client_cert().cert.public_bytes(DER)
    edited = _with_value(der, oid, value)
    _, raw_exts = raw_cert_facts(edited)
    assert raw_exts is None, what
    assert_agrees(edited)
    _lint_both(monkeypatch, edited, profile="tls-entity", role="client")


def test_encoded_default_critical_is_refused_by_pyca_and_declined() -> None:
    der = TestPKI().client_cert().cert.public_bytes(DER)
    edited = _edit_extensions(
        der, b"\x06\x03\x55\x1d\x13\x04", b"\x06\x03\x55\x1d\x13\x01\x01\x00\x04"
    )
    assert raw_cert_facts(edited)[1] is None
    with pytest.raises(ValueError, match="EncodedDefault"):
        x509.load_der_x509_certificate(edited)


def test_duplicate_extension_is_left_to_pyca(monkeypatch: pytest.MonkeyPatch) -> None:
    der = TestPKI().client_cert().cert.public_bytes(DER)
    edited = _edit_extensions(der, b"\x06\x03\x55\x1d\x25", b"", repeat=True)  # EKU twice
    _, raw_exts = raw_cert_facts(edited)
    assert raw_exts is None
    assert isinstance(_crypto_facts(x509.load_der_x509_certificate(edited))[1], Exception)
    _lint_both(monkeypatch, edited, profile="tls-entity", role="client")


def test_point_off_the_curve_is_left_to_pyca(monkeypatch: pytest.MonkeyPatch) -> None:
    der = TestPKI().client_cert().cert.public_bytes(DER)
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    bad = spki[:-1] + bytes([spki[-1] ^ 1])  # y changed: not on P-256
    edited = der.replace(spki, bad)
    raw_key, _ = raw_cert_facts(edited)
    assert raw_key is None
    facts = CertFacts(x509.load_der_x509_certificate(edited), edited)
    assert facts.key is None and facts.key_error  # pyca refuses the point too
    _lint_both(monkeypatch, edited, profile="tls-entity", role="client")


def test_lint_reads_conformant_certificates_without_pyca_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of the reader: a conformant P-256/P-384 leaf is linted from its DER alone."""
    for key_type in ("p256", "p384"):
        pki = TestPKI(key_type)
        issuer = pki.tls_ca.cert
        lint(pki.client_cert("warm-up").cert.public_bytes(DER), role="client", issuer=issuer)
        ders = [
            pki.client_cert("rof-7").cert.public_bytes(DER),
            pki.server_cert("ccf.capif.example").cert.public_bytes(DER),
        ]

        def refuse(*_args: object) -> None:
            raise AssertionError("pyca's objects were used")

        with monkeypatch.context() as patched:
            patched.setattr(facts_mod, "key_facts", refuse)
            patched.setattr(facts_mod, "crypto_extension_facts", refuse)
            reports = [
                lint(ders[0], role="client", issuer=issuer),
                lint(ders[1], role="server", issuer=issuer),
            ]
        assert all(report.compliant and not report.findings for report in reports)
