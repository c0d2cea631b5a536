"""Property-based robustness of the certificate layer (parse, lint, chain, CRL, CLI).

Hostile or broken input must end in a typed :class:`~capif8sec.errors.Capif8secError` (or a
:class:`~capif8sec.certs.Report`), never in a ``ValueError``/``TypeError``/``IndexError``
traceback, and a certificate or CRL that is not exactly what its issuer signed must never be
accepted (R11, R24, R25).

Inputs tried per full run (profile ``capif8sec-fuzz``, ``FUZZ_EXAMPLES`` = 250 per property):

* 14 hypothesis properties x 250 examples = 3,500 generated inputs, each fed to between one and
  nine entry points (loaders, ``lint`` under four profiles, ``ChainValidator`` construction,
  ``verify`` as leaf, intermediate and anchor, CRL fetching, the CLI);
* plus deterministic sweeps: every proper DER prefix of four certificates and one CRL (about
  2,700 truncations, each into one or two entry points), PEM cut every 7 bytes, 5 forms of a
  10 MB blob into 6 entry points, 6 regression cases for the bugs these properties found, and
  the CLI exit-code cases.

Hypothesis keeps failing examples in its database, so a failure found once is replayed first.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
import json
import re
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fuzz_support import OPS, Op, mutate, resign
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from capif8sec import _der
from capif8sec.certs import (
    ChainValidator,
    Report,
    Severity,
    all_rules,
    lint,
    load_certificate,
    load_certificates,
    load_crl,
)
from capif8sec.cli import main as cli_main
from capif8sec.errors import (
    Capif8secError,
    CertificateParseError,
    CertificateRevoked,
    ChainValidationError,
    CrlError,
    ProfileViolation,
    RevocationUnknown,
)
from capif8sec.testing import IssuedCert, TestPKI

# Mutated certificates make cryptography warn (non-positive serials, odd attribute lengths).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FUZZ_EXAMPLES = 250
settings.register_profile(
    "capif8sec-fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=dt.timedelta(milliseconds=750),
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings.get_profile("capif8sec-fuzz")

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
KNOWN_RULES = frozenset(rule.id for rule in all_rules())
CLAUSE = re.compile(r"(TS 33\.310|RFC 5280) \d")


# --------------------------------------------------------------------------- material


@dataclass(frozen=True)
class Material:
    """One conformant test PKI and what the properties mutate."""

    pki: TestPKI
    server: IssuedCert
    client: IssuedCert
    revoked: IssuedCert
    crl_der: bytes
    validator: ChainValidator
    #: DER of the certificates whose mutations are fed everywhere.
    seeds: dict[str, bytes]

    @property
    def tls_ca(self) -> x509.Certificate:
        return self.pki.tls_ca.cert

    @property
    def tls_ca_key(self) -> ec.EllipticCurvePrivateKey:
        key = self.pki.tls_ca.private_key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


@pytest.fixture(scope="module")
def material() -> Material:
    pki = TestPKI()
    server = pki.server_cert()
    client = pki.client_cert()
    revoked = pki.client_cert("rof-revoked")
    crl_der = load_crl(pki.crl(revoked=[revoked])).public_bytes(DER)
    seeds = {
        "server": server.cert.public_bytes(DER),
        "client": client.cert.public_bytes(DER),
        "rsa-server": pki.server_cert(key_type="rsa2048").cert.public_bytes(DER),
        "sba-nf": pki.nf_cert().cert.public_bytes(DER),
        "tls-ca": pki.tls_ca.cert.public_bytes(DER),
        "root": pki.root_ca.cert.public_bytes(DER),
    }
    validator = ChainValidator(pki.trust_anchor_pem, crls=[crl_der])
    # The unmutated material is accepted: otherwise every "never accepted" below is vacuous.
    validator.verify(server.cert, [pki.tls_ca.cert], role="server")
    validator.verify(client.cert, [pki.tls_ca.cert], role="client")
    with pytest.raises(CertificateRevoked):
        validator.verify(revoked.cert, [pki.tls_ca.cert], role="client")
    return Material(pki, server, client, revoked, crl_der, validator, seeds)


# --------------------------------------------------------------------------- strategies

SEEDS = st.sampled_from(["server", "client", "rsa-server", "sba-nf", "tls-ca", "root"])
LEAF_SEEDS = st.sampled_from(["server", "rsa-server"])


def _der_header(length: int) -> bytes:
    return b"\x30\x82" + length.to_bytes(2, "big")


#: Arbitrary bytes, and bytes that at least start like a DER SEQUENCE of the right length.
BLOBS: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=4096),
    st.binary(min_size=1, max_size=2048).map(lambda body: _der_header(len(body)) + body),
)
#: Arbitrary text, and text framed as a PEM certificate or CRL.
TEXTS: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=2048),
    st.text(max_size=1024).map(
        lambda t: f"-----BEGIN CERTIFICATE-----\n{t}\n-----END CERTIFICATE-----\n"
    ),
    st.text(max_size=1024).map(
        lambda t: f"-----BEGIN X509 CRL-----\n{t}\n-----END X509 CRL-----\n"
    ),
)


def _pem(kind: str, der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return f"-----BEGIN {kind}-----\n".encode() + body + f"-----END {kind}-----\n".encode()


def _check_report(report: Report, data: bytes) -> None:
    """A returned report is about exactly these bytes and made of catalogue findings (R11)."""
    assert isinstance(report, Report)
    assert report.fingerprint_sha256 == hashlib.sha256(data).hexdigest()
    assert isinstance(report.subject, str)
    for finding in report.findings:
        assert finding.rule in KNOWN_RULES
        assert isinstance(finding.severity, Severity)
        assert CLAUSE.match(finding.clause), finding.clause
    assert report.compliant == (not report.errors)


# --------------------------------------------------------------------------- arbitrary input


def _all_entry_points_refuse(m: Material, data: bytes | str) -> None:
    """Every loader and validator entry point refuses ``data`` with the documented error."""
    with pytest.raises(CertificateParseError):
        load_certificate(data)
    with pytest.raises(CertificateParseError):
        load_certificates(data)
    with pytest.raises(CrlError):
        load_crl(data)
    with pytest.raises(CertificateParseError):
        lint(data, "tls-entity", role="server")
    with pytest.raises(CertificateParseError):
        lint(m.server.cert, "sba-nf", role="server", issuer=data)
    with pytest.raises(CertificateParseError):
        m.validator.verify(data, [m.tls_ca], role="server")
    with pytest.raises(CertificateParseError):
        m.validator.verify(m.server.cert, [data], role="server")
    with pytest.raises(CertificateParseError):
        ChainValidator(trust_anchors=data)
    with pytest.raises(CrlError):
        ChainValidator(m.pki.trust_anchor_pem, crls=[data])


@FUZZ
@given(data=BLOBS)
def test_arbitrary_bytes_are_refused_with_typed_errors(material: Material, data: bytes) -> None:
    """R11: random bytes never parse, and only CertificateParseError/CrlError escape."""
    _all_entry_points_refuse(material, data)


@FUZZ
@given(text=TEXTS)
def test_arbitrary_text_is_refused_with_typed_errors(material: Material, text: str) -> None:
    """R11: random (also non-ASCII, PEM-framed) text is refused with typed errors only."""
    _all_entry_points_refuse(material, text)


@FUZZ
@given(body=st.binary(max_size=2048))
def test_pem_blocks_with_random_content_are_refused(material: Material, body: bytes) -> None:
    """R11: well-formed PEM armour around random DER is a CertificateParseError / CrlError."""
    _all_entry_points_refuse(material, _pem("CERTIFICATE", body))
    with pytest.raises(CrlError):
        load_crl(_pem("X509 CRL", body))


# --------------------------------------------------------------------------- mutated DER


@FUZZ
@given(seed=SEEDS, ops=OPS)
def test_mutated_certificate_lints_to_a_report_or_a_parse_error(
    material: Material, seed: str, ops: list[Op]
) -> None:
    """R11: lint of a mutated certificate gives a catalogue Report or CertificateParseError."""
    data = mutate(material.seeds[seed], ops)
    calls: list[Callable[[], Report]] = [
        lambda: lint(data, "tls-entity", role="server"),
        lambda: lint(data, "tls-entity", role="client", issuer=material.tls_ca),
        lambda: lint(data, "sba-nf", role="both", issuer=material.tls_ca),
        lambda: lint(data, "tls-ca", issuer=material.pki.root_ca.cert),
        lambda: lint(data, "interconnection-ca", strict=True),
    ]
    for call in calls:
        try:
            report = call()
        except CertificateParseError:
            continue
        _check_report(report, data)
    try:
        report = lint(material.server.cert, "sba-nf", role="server", issuer=data)
    except CertificateParseError:
        return
    _check_report(report, material.seeds["server"])


@FUZZ
@given(seed=LEAF_SEEDS, ops=OPS)
def test_mutated_leaf_is_never_accepted(material: Material, seed: str, ops: list[Op]) -> None:
    """R24: a leaf that differs from what the TLS CA signed fails at parse, validity or path
    building: before profile or revocation checks, and never with a VerifiedChain."""
    original = material.seeds[seed]
    data = mutate(original, ops)
    assume(data != original)
    for role in ("server", "client"):
        with pytest.raises((CertificateParseError, ChainValidationError)) as caught:
            material.validator.verify(data, [material.tls_ca], role=role)
        assert not isinstance(caught.value, (RevocationUnknown, CertificateRevoked))


@FUZZ
@given(ops=OPS)
def test_mutated_intermediate_is_never_accepted(material: Material, ops: list[Op]) -> None:
    """R24: a TLS CA certificate that is not what the root signed never completes a path."""
    original = material.seeds["tls-ca"]
    data = mutate(original, ops)
    assume(data != original)
    with pytest.raises((CertificateParseError, ChainValidationError)) as caught:
        material.validator.verify(material.server.cert, [data], role="server")
    assert not isinstance(caught.value, (RevocationUnknown, CertificateRevoked))
    try:
        load_certificate(data)
    except CertificateParseError:
        return
    # Offered next to the genuine TLS CA, a parseable mutant must not break the good path.
    verified = material.validator.verify(
        material.server.cert, [data, material.tls_ca], role="server"
    )
    assert verified.chain[1] == material.tls_ca


@FUZZ
@given(ops=OPS)
def test_mutated_trust_anchor_only_works_with_the_real_key(
    material: Material, ops: list[Op]
) -> None:
    """R24: a damaged trust anchor is refused typed; a path through it only exists when it still
    carries the genuine root key and name (anchors are not signature-checked themselves)."""
    data = mutate(material.seeds["root"], ops)
    try:
        validator = ChainValidator(trust_anchors=data, crls=[material.crl_der])
        verified = validator.verify(material.server.cert, [material.tls_ca], role="server")
    except (CertificateParseError, ChainValidationError, ProfileViolation):
        return  # any other exception (typed or not) fails the property
    anchor = verified.chain[-1]
    assert anchor.public_bytes(DER) == data
    root = material.pki.root_ca.cert
    assert anchor.subject == root.subject
    assert anchor.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == root.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@FUZZ
@given(ops=OPS)
def test_mutated_crl_fails_closed(material: Material, ops: list[Op]) -> None:
    """R25: a CRL that is not what the TLS CA signed is a CrlError, and revocation checking with
    it fails closed (RevocationUnknown), also for the certificate the genuine CRL revokes."""
    data = mutate(material.crl_der, ops)
    assume(data != material.crl_der)
    with contextlib.suppress(CrlError):
        load_crl(data)
    try:
        validator = ChainValidator(material.pki.trust_anchor_pem, crls=[data])
    except CrlError:
        return
    with pytest.raises(RevocationUnknown):
        validator.verify(material.server.cert, [material.tls_ca], role="server")
    with pytest.raises(RevocationUnknown):
        validator.verify(material.revoked.cert, [material.tls_ca], role="client")
    fetching = ChainValidator(material.pki.trust_anchor_pem, crl_fetcher=lambda url: data)
    with pytest.raises(RevocationUnknown):
        fetching.verify(material.server.cert, [material.tls_ca], role="server")


# --------------------------------------------------------------------------- mutated, re-signed


@FUZZ
@given(seed=LEAF_SEEDS, ops=OPS)
def test_resigned_mutant_leaf_is_only_accepted_when_lint_accepts_it(
    material: Material, seed: str, ops: list[Op]
) -> None:
    """R11, R16: a mutated TBS re-signed by the TLS CA passes the signature check, so the rules
    see the odd content: typed errors only, and an accepted chain has a compliant leaf."""
    data = resign(material.seeds[seed], ops, material.tls_ca_key)
    try:
        report = lint(data, "tls-entity", role="server", issuer=material.tls_ca)
    except CertificateParseError:
        report = None
    if report is not None:
        _check_report(report, data)
    try:
        verified = material.validator.verify(data, [material.tls_ca], role="server")
    except Capif8secError:
        return
    assert report is not None and report.compliant, report
    assert verified.reports[0].compliant
    assert verified.leaf.public_bytes(DER) == data


@FUZZ
@given(ops=OPS)
def test_resigned_mutant_crl_never_loses_a_revocation_silently(
    material: Material, ops: list[Op]
) -> None:
    """R25: a mutated CRL re-signed by the TLS CA is usable or refused typed; the revoked ROF
    certificate is accepted only if that CRL, as parsed, really does not list it."""
    data = resign(material.crl_der, ops, material.tls_ca_key)
    try:
        validator = ChainValidator(material.pki.trust_anchor_pem, crls=[data])
    except CrlError:
        return
    for issued, role in ((material.server, "server"), (material.revoked, "client")):
        try:
            validator.verify(issued.cert, [material.tls_ca], role=role)
        except Capif8secError:
            continue
        crl = load_crl(data)
        assert crl.get_revoked_certificate_by_serial_number(issued.cert.serial_number) is None


# --------------------------------------------------------------------------- PEM framing


#: Garbage for between PEM blocks.  No "-": a dash just before "-----BEGIN" hides that block
#: from cryptography's PEM reader (it is then silently skipped, not an error).
BETWEEN = st.binary(max_size=200).filter(lambda g: b"-" not in g)
#: Characters that are neither base64 nor whitespace (whitespace inside PEM is tolerated).
NOT_BASE64 = [
    c.encode("latin-1")
    for c in string.punctuation + "\x00\x01\x1b\x7f\x80\xa0\xff"
    if c not in "+/="
]


@FUZZ
@given(before=BETWEEN, between=BETWEEN, after=BETWEEN)
def test_garbage_between_pem_blocks_is_skipped(
    material: Material, before: bytes, between: bytes, after: bytes
) -> None:
    """R11: text around and between PEM blocks is ignored; both certificates come out intact."""
    first, second = material.server.cert_pem, material.pki.tls_ca.cert_pem
    certs = load_certificates(before + first + between + second + after)
    assert certs == [material.server.cert, material.tls_ca]
    with pytest.raises(CertificateParseError, match="exactly one"):
        load_certificate(before + first + between + second + after)


@FUZZ
@given(position=st.integers(0, 1 << 16), junk=st.sampled_from(NOT_BASE64), block=st.booleans())
def test_garbage_inside_a_pem_block_is_refused(
    material: Material, position: int, junk: bytes, block: bool
) -> None:
    """R11: a non-base64 byte inside a PEM body is a CertificateParseError / CrlError."""
    if block:
        pem = material.server.cert_pem
        head = len(b"-----BEGIN CERTIFICATE-----\n")
    else:
        pem = _pem("X509 CRL", material.crl_der)
        head = len(b"-----BEGIN X509 CRL-----\n")
    tail = pem.index(b"\n-----END")
    i = head + position % (tail - head)
    data = pem[:i] + junk + pem[i:]
    if block:
        with pytest.raises(CertificateParseError):
            load_certificates(data)
        with pytest.raises(CertificateParseError):
            lint(data, "tls-entity", role="server")
    else:
        with pytest.raises(CrlError):
            load_crl(data)


def test_truncated_der_is_a_parse_error(material: Material) -> None:
    """R11: every proper prefix of a certificate (and a CRL) is refused with a typed error."""
    for name in ("server", "rsa-server", "tls-ca", "root"):
        der = material.seeds[name]
        for cut in range(len(der)):
            with pytest.raises(CertificateParseError):
                load_certificate(der[:cut])
            with pytest.raises(CertificateParseError):
                lint(der[:cut], "tls-entity", role="server")
    for cut in range(len(material.crl_der)):
        with pytest.raises(CrlError):
            load_crl(material.crl_der[:cut])


def test_truncated_pem_is_a_parse_error(material: Material) -> None:
    """R11: a PEM certificate cut anywhere after its BEGIN line is refused."""
    pem = material.server.cert_pem
    for cut in range(len(b"-----BEGIN CERTIFICATE-----\n"), len(pem) - 1, 7):
        with pytest.raises(CertificateParseError):
            load_certificates(pem[:cut])


# --------------------------------------------------------------------------- regressions
# Each of these was found by the properties above (a traceback or an acceptance) and fixed.


def with_unused_signature_bits(der: bytes) -> bytes | None:
    """The same certificate/CRL with its signature BIT STRING claiming 1 unused bit.

    Valid DER only when the last signature octet is even (the unused bit must be 0).
    """
    outer, _ = _der.read_tlv(der)
    tbs, algorithm, signature = _der.iter_tlvs(outer.content)
    if signature.content[-1] & 1:
        return None
    bits = _der.encode(_der.BIT_STRING, b"\x01" + signature.content[1:])
    return _der.encode(_der.SEQUENCE, tbs.raw + algorithm.raw + bits)


def test_signature_with_unused_bits_is_refused(material: Material) -> None:
    """R11, R24: pyca ignores the unused-bits octet of the signature, so a re-encoded (different
    bytes, different fingerprint) copy of a certificate or CRL still verifies; OpenSSL refuses
    such input, and so must capif8sec (certificate: CertificateParseError, CRL: CrlError)."""
    for _ in range(64):
        issued = material.pki.server_cert()
        cert = with_unused_signature_bits(issued.cert.public_bytes(DER))
        if cert is not None:
            break
    assert cert is not None
    # The control: pyca alone accepts the re-encoded certificate and its signature.
    x509.load_der_x509_certificate(cert).verify_directly_issued_by(material.tls_ca)
    with pytest.raises(CertificateParseError, match="unused bits"):
        load_certificate(cert)
    with pytest.raises(CertificateParseError, match="unused bits"):
        load_certificates(_pem("CERTIFICATE", cert))
    with pytest.raises(CertificateParseError):
        material.validator.verify(cert, [material.tls_ca], role="server")
    material.validator.verify(issued.cert, [material.tls_ca], role="server")

    for _ in range(64):
        crl = with_unused_signature_bits(load_crl(material.pki.crl()).public_bytes(DER))
        if crl is not None:
            break
    assert crl is not None
    assert x509.load_der_x509_crl(crl).is_signature_valid(material.tls_ca_key.public_key())
    with pytest.raises(CrlError, match="unused bits"):
        load_crl(crl)
    with pytest.raises(CrlError):
        ChainValidator(material.pki.trust_anchor_pem, crls=[crl])


@pytest.mark.parametrize(
    "replacement",
    [b"\x03\x11\x00cf.capif.example", b"\x0c\x11ccf.capif.exampl\xff"],
    ids=["cn-as-bit-string", "cn-invalid-utf8"],
)
def test_undecodable_subject_is_a_parse_error(material: Material, replacement: bytes) -> None:
    """R11: cryptography decodes Names lazily (TypeError / ValueError on first access); capif8sec
    refuses such a certificate when loading it, in lint, in verify and in the CLI."""
    cn = b"\x0c\x11ccf.capif.example"
    der = material.seeds["server"]
    assert der.count(cn) == 1
    data = der.replace(cn, replacement)
    lazy = x509.load_der_x509_certificate(data)  # the control: it loads, and then ...
    with pytest.raises((TypeError, ValueError)):
        _ = lazy.subject
    for call in (
        lambda: load_certificate(data),
        lambda: load_certificate(x509.load_der_x509_certificate(data)),
        lambda: lint(data, "tls-entity", role="server"),
        lambda: lint(material.server.cert, "tls-entity", role="server", issuer=data),
        lambda: material.validator.verify(data, [material.tls_ca], role="server"),
        lambda: ChainValidator(trust_anchors=data),
    ):
        with pytest.raises(CertificateParseError):
            call()


def test_undecodable_crl_issuer_is_a_crl_error(material: Material) -> None:
    """R25: a CRL whose issuer Name only fails when decoded is a CrlError at load time."""
    name = b"\x0c\x15capif8sec test TLS CA"
    assert material.crl_der.count(name) == 1
    data = material.crl_der.replace(name, name[:-1] + b"\xff")
    lazy = x509.load_der_x509_crl(data)
    with pytest.raises(ValueError):
        _ = lazy.issuer
    with pytest.raises(CrlError):
        load_crl(data)
    with pytest.raises(CrlError):
        ChainValidator(material.pki.trust_anchor_pem, crls=[data])


def test_leaf_that_is_a_trust_anchor_is_refused(material: Material) -> None:
    """R16, R24: pyca builds a one-element path when the leaf itself is in the trust store;
    that used to end in an IndexError, and must be a ChainValidationError (the leaf is not
    issued by a TLS CA)."""
    validator = ChainValidator(
        [material.pki.trust_anchor_pem, material.server.cert_pem], crls=[material.crl_der]
    )
    with pytest.raises(ChainValidationError) as caught:
        validator.verify(material.server.cert, [material.tls_ca], role="server")
    assert caught.value.rule == "chain.path"
    # The other leaves still validate through the TLS CA under the same validator.
    validator.verify(material.client.cert, [material.tls_ca], role="client")


def test_san_cryptography_cannot_represent_is_refused_typed(material: Material) -> None:
    """R11, R24: a CA-signed leaf whose SAN holds an x400Address made pyca's verifier raise
    UnsupportedGeneralNameType; lint reports common.extensions_decodable and verify raises
    ChainValidationError with rule chain.parse."""
    dns = b"\x82\x11ccf.capif.example"
    der = material.seeds["server"]
    assert der.count(dns) == 1
    x400 = b"\xa3\x11\x30\x0f\x04\x0d" + b"A" * 13
    data = resign(der.replace(dns, x400), [], material.tls_ca_key)
    report = lint(data, "tls-entity", role="server", issuer=material.tls_ca)
    assert report.rule_ids(Severity.ERROR) == {"common.extensions_decodable"}
    with pytest.raises(ChainValidationError) as caught:
        material.validator.verify(data, [material.tls_ca], role="server")
    assert caught.value.rule == "chain.parse"


# --------------------------------------------------------------------------- size limit

TEN_MB = 10 * 1024 * 1024
BIG_INPUTS: dict[str, Callable[[], bytes | bytearray | memoryview | str]] = {
    "zeros": lambda: bytes(TEN_MB),
    "der-header": lambda: b"\x30\x84" + (TEN_MB - 6).to_bytes(4, "big") + bytes(TEN_MB - 6),
    "pem": lambda: b"-----BEGIN CERTIFICATE-----\n" + b"QUFB\n" * (TEN_MB // 5),
    "text": lambda: "A" * TEN_MB,
    "memoryview": lambda: memoryview(bytearray(TEN_MB)),
}


@pytest.mark.parametrize("form", sorted(BIG_INPUTS))
def test_ten_megabyte_blob_is_refused_fast(material: Material, form: str) -> None:
    """R11: a 10 MB blob is refused by the size check, before any parsing, in < 0.2 s."""
    blob = BIG_INPUTS[form]()
    calls: list[Callable[[], object]] = [
        lambda: load_certificate(blob),
        lambda: load_certificates(blob),
        lambda: lint(blob, "tls-entity", role="server"),
        lambda: material.validator.verify(blob, [material.tls_ca], role="server"),
        lambda: ChainValidator(trust_anchors=blob),
    ]
    for call in calls:
        start = time.perf_counter()
        with pytest.raises(CertificateParseError, match="larger than"):
            call()
        assert time.perf_counter() - start < 0.2
    start = time.perf_counter()
    with pytest.raises(CrlError, match="larger than"):
        load_crl(blob)
    assert time.perf_counter() - start < 0.2


# --------------------------------------------------------------------------- CLI


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``capif8sec.cli.main`` in process; returns the exit code and stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue()


def _check_json_shape(document: dict[str, Any], files: Sequence[Path]) -> None:
    """The ``--format json`` contract: results[{file, subject, compliant, findings[...]}]."""
    assert set(document) == {"results"}
    results = document["results"]
    assert [r["file"] for r in results] == [str(f) for f in files]
    for result in results:
        assert {"file", "subject", "compliant", "findings"} <= set(result)
        assert isinstance(result["compliant"], bool)
        assert result["subject"] is None or isinstance(result["subject"], str)
        for finding in result["findings"]:
            assert {"rule", "clause", "severity", "message"} <= set(finding)
            assert finding["rule"] in KNOWN_RULES
            assert finding["severity"] in {"error", "warning", "notice"}
            assert CLAUSE.match(finding["clause"]), finding["clause"]
            assert isinstance(finding["message"], str) and finding["message"]


@pytest.fixture(scope="module")
def cli_dir(material: Material, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    (directory / "root.pem").write_bytes(material.pki.trust_anchor_pem)
    (directory / "tls-ca.pem").write_bytes(material.pki.tls_ca.cert_pem)
    (directory / "crl.der").write_bytes(material.crl_der)
    (directory / "server.pem").write_bytes(material.server.chain_pem)
    broken = material.pki.breaking("common.signature_hash", role="server")
    (directory / "sha1.pem").write_bytes(
        broken.cert.public_bytes(PEM) + broken.issuer.public_bytes(PEM)
    )
    return directory


@FUZZ
@given(data=BLOBS)
def test_cli_garbage_file_exits_2_with_json_error(cli_dir: Path, data: bytes) -> None:
    """R11: `capif8sec lint` on a file that is no certificate exits 2 and says why, as JSON."""
    path = cli_dir / "garbage.bin"
    path.write_bytes(data)
    code, out = run_cli(["lint", "--role", "server", "--format", "json", str(path)])
    assert code == 2
    document = json.loads(out)
    _check_json_shape(document, [path])
    result = document["results"][0]
    assert result["compliant"] is False
    assert result["subject"] is None and result["findings"] == []
    assert result["error"]


@FUZZ
@given(ops=OPS)
def test_cli_never_passes_a_mutated_leaf_with_chain_checks(
    cli_dir: Path, material: Material, ops: list[Op]
) -> None:
    """R11, R24: with --ca/--chain/--crl the CLI never exits 0 for a mutated leaf; it exits 1
    (findings) or 2 (unusable input), with well-formed JSON either way."""
    original = material.seeds["server"]
    data = mutate(original, ops)
    assume(data != original)
    path = cli_dir / "mutant.der"
    path.write_bytes(data)
    argv = ["lint", "--role", "server", "--format", "json", "--ca", str(cli_dir / "root.pem")]
    argv += ["--chain", str(cli_dir / "tls-ca.pem"), "--crl", str(cli_dir / "crl.der"), str(path)]
    code, out = run_cli(argv)
    assert code in (1, 2)
    document = json.loads(out)
    _check_json_shape(document, [path])
    assert document["results"][0]["compliant"] is False


def test_cli_exit_codes_and_json(cli_dir: Path) -> None:
    """R2, R11: compliant -> 0, SHA-1 signed -> 1 with common.signature_hash, garbage -> 2."""
    server, sha1 = cli_dir / "server.pem", cli_dir / "sha1.pem"
    garbage = cli_dir / "not-a-cert.pem"
    garbage.write_bytes(
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )

    code, out = run_cli(["lint", "--role", "server", "--format", "json", str(server)])
    assert code == 0
    document = json.loads(out)
    _check_json_shape(document, [server])
    assert document["results"][0]["compliant"] is True
    assert document["results"][0]["subject"] == "CN=ccf.capif.example,O=capif8sec test,C=SE"
    assert [f for f in document["results"][0]["findings"] if f["severity"] == "error"] == []

    code, out = run_cli(["lint", "--role", "server", "--format", "json", str(sha1)])
    assert code == 1
    document = json.loads(out)
    _check_json_shape(document, [sha1])
    errors = [f for f in document["results"][0]["findings"] if f["severity"] == "error"]
    assert [(f["rule"], f["clause"]) for f in errors] == [
        ("common.signature_hash", "TS 33.310 6.1.1")
    ]

    code, out = run_cli(["lint", "--role", "server", str(garbage)])
    assert code == 2
    assert "UNUSABLE INPUT" in out

    # The worst outcome wins: unusable (2) over not compliant (1) over compliant (0).
    code, out = run_cli(["lint", "--role", "server", "--format", "json", str(server), str(sha1)])
    assert code == 1
    assert [r["compliant"] for r in json.loads(out)["results"]] == [True, False]
    code, _ = run_cli(["lint", "--role", "server", str(server), str(sha1), str(garbage)])
    assert code == 2
    code, _ = run_cli(["lint", "--role", "server", str(cli_dir / "does-not-exist.pem")])
    assert code == 2


def test_cli_chain_checks_pass_on_the_genuine_chain(cli_dir: Path) -> None:
    """R24, R25: the control for the mutant property: the unmutated leaf with the same
    --ca/--chain/--crl arguments exits 0."""
    argv = ["lint", "--role", "server", "--format", "json", "--ca", str(cli_dir / "root.pem")]
    argv += ["--chain", str(cli_dir / "tls-ca.pem"), "--crl", str(cli_dir / "crl.der")]
    code, out = run_cli([*argv, str(cli_dir / "server.pem")])
    assert code == 0, out
    assert json.loads(out)["results"][0]["compliant"] is True
