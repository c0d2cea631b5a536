"""atheris target: the certificate path on arbitrary DER / PEM (loaders, lint, chain validation).

Every input goes (as bytes; as text into the loader) into each entry point a certificate or CRL
from the network or a file reaches:

- ``load_certificate`` / ``load_certificates`` / ``load_crl``;
- ``lint`` under each TS 33.310 profile (tls-entity server and client, sba-nf, tls-ca,
  interconnection-ca), and as the ``issuer`` of a genuine leaf;
- ``ChainValidator.verify`` with the input as the leaf and as the intermediate;
- ``ChainValidator(...)`` with the input as trust anchor, and as the CRL that then decides the
  revocation of a good and a revoked leaf;
- and, when the input is a SEQUENCE of three elements, its TBS part signed again by the test
  TLS CA (resp. as a CRL), so mutations get past the signature check into the profile, identity
  and revocation checks.

Only :class:`~capif8sec.errors.Capif8secError` may come out; anything else is a crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable

import atheris_common

with atheris_common.instrumented():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from capif8sec import _der
    from capif8sec.certs import ChainValidator, lint, load_certificate, load_certificates, load_crl
    from capif8sec.errors import Capif8secError
    from capif8sec.testing import DEFAULT_CRL_URL, TestPKI

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
#: (profile, role) pairs lint runs under.
PROFILES: tuple[tuple[str, str | None], ...] = (
    ("tls-entity", "server"),
    ("tls-entity", "client"),
    ("sba-nf", "both"),
    ("tls-ca", None),
    ("interconnection-ca", None),
)

_PKI = TestPKI()
_SERVER = _PKI.server_cert()
_CLIENT = _PKI.client_cert()
_REVOKED = _PKI.client_cert("rof-revoked")
_CRL_PEM = _PKI.crl(revoked=[_REVOKED])
_TLS_CA = _PKI.tls_ca.cert


def _ec_key() -> ec.EllipticCurvePrivateKey:
    key = _PKI.tls_ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


_TLS_CA_KEY = _ec_key()
_VALIDATOR = ChainValidator(_PKI.trust_anchor_pem, crls=[_CRL_PEM])
#: The outer AlgorithmIdentifier of a certificate the TLS CA signed (ecdsa-with-SHA256).
_ALGORITHM = list(_der.iter_tlvs(_der.read_tlv(_SERVER.cert.public_bytes(DER))[0].content))[1].raw


def seeds() -> dict[str, bytes]:
    """Genuine certificates and CRLs, DER and PEM, one bundle: what mutations start from."""
    out: dict[str, bytes] = {}
    certs = {
        "server": _SERVER.cert,
        "client": _CLIENT.cert,
        "revoked": _REVOKED.cert,
        "rsa-server": _PKI.server_cert(key_type="rsa2048").cert,
        "sba-nf": _PKI.nf_cert().cert,
        "tls-ca": _TLS_CA,
        "root": _PKI.root_ca.cert,
    }
    for name, cert in certs.items():
        out[f"{name}.der"] = cert.public_bytes(DER)
        out[f"{name}.pem"] = cert.public_bytes(PEM)
    crl = load_crl(_CRL_PEM)
    out["crl.der"] = crl.public_bytes(DER)
    out["crl.pem"] = _CRL_PEM
    out["chain.pem"] = _SERVER.chain_pem
    out.update(_extension_crls())
    return out


def _extension_crls() -> dict[str, bytes]:
    """CRLs with the extensions the validator treats specially (a scoped issuingDistributionPoint,
    a delta indicator, entry extensions), so mutations start from those branches too."""
    now = dt.datetime.now(dt.UTC)
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(DEFAULT_CRL_URL)],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    variants: dict[str, list[tuple[x509.ExtensionType, bool]]] = {
        "crl-idp": [(idp, True)],
        "crl-delta": [(x509.DeltaCRLIndicator(1), True)],
        "crl-entry-extensions": [],
    }
    out: dict[str, bytes] = {}
    for name, extensions in variants.items():
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(_REVOKED.cert.serial_number)
            .revocation_date(now - dt.timedelta(minutes=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        )
        if name == "crl-entry-extensions":
            entry = entry.add_extension(
                x509.InvalidityDate(now - dt.timedelta(days=1)), critical=True
            ).add_extension(x509.CertificateIssuer([x509.DNSName("other.example")]), critical=True)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(_TLS_CA.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(2), critical=False)
            .add_revoked_certificate(entry.build())
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        out[f"{name}.der"] = builder.sign(_TLS_CA_KEY, hashes.SHA256()).public_bytes(DER)
    return out


def _resigned(data: bytes) -> bytes | None:
    """``data``'s first element of a three-element SEQUENCE, signed again by the TLS CA."""
    try:
        outer, _ = _der.read_tlv(data)
        parts = list(_der.iter_tlvs(outer.content))
    except _der.DerError:
        return None
    if outer.tag != _der.SEQUENCE or len(parts) != 3:
        return None
    signature = _TLS_CA_KEY.sign(parts[0].raw, ec.ECDSA(hashes.SHA256()))
    bits = _der.encode(_der.BIT_STRING, b"\x00" + signature)
    return _der.encode(_der.SEQUENCE, parts[0].raw + _ALGORITHM + bits)


def _with_crl(data: bytes | str) -> None:
    """``data`` as the TLS CA's CRL: the revocation check of a good and a revoked leaf."""
    validator = ChainValidator(_PKI.trust_anchor_pem, crls=[data])
    for leaf, role in ((_SERVER, "server"), (_REVOKED, "client")):
        with contextlib.suppress(Capif8secError):
            validator.verify(leaf.cert, [_TLS_CA], role=role)


def _entry_points(data: bytes | str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: load_certificate(data),
        lambda: load_certificates(data),
        lambda: load_crl(data),
        *(functools.partial(lint, data, p, r) for p, r in PROFILES),
        lambda: lint(_SERVER.cert, "tls-entity", "server", issuer=data),
        lambda: _VALIDATOR.verify(data, [_TLS_CA], role="server"),
        lambda: _VALIDATOR.verify(data, [_TLS_CA], role="client"),
        lambda: _VALIDATOR.verify(_SERVER.cert, [data], role="server"),
        lambda: ChainValidator(trust_anchors=data),
        lambda: _with_crl(data),
    ]
    for call in calls:
        with contextlib.suppress(Capif8secError):
            call()


def test_one_input(data: bytes) -> None:
    """One fuzz input: as bytes, and re-signed, through every entry point; as text through the
    loader (a ``str`` becomes ASCII bytes there, and takes the bytes path after that)."""
    _entry_points(data)
    with contextlib.suppress(Capif8secError):
        load_certificates(data.decode("latin-1"))
    again = _resigned(data)
    if again is not None:
        _entry_points(again)


if __name__ == "__main__":
    atheris_common.main(test_one_input, seeds())
