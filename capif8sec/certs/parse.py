"""Loading certificates and CRLs from PEM, DER or ``cryptography`` objects.

Every failure is a :class:`~capif8sec.errors.CertificateParseError` (or
:class:`~capif8sec.errors.CrlError` for CRLs); input is size-checked before any parsing, so a
multi-megabyte blob is refused at once.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from capif8sec._der import DerError, element_bounds
from capif8sec.certs.names import cert_layout, cert_names, crl_issuer
from capif8sec.errors import CertificateParseError, CrlError

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_CERTIFICATE_BYTES",
    "MAX_CRL_BYTES",
    "CertificateInput",
    "CrlInput",
    "load_certificate",
    "load_certificates",
    "load_crl",
]

#: Largest single certificate accepted (DER or PEM).  Real TLS certificates are a few KiB.
MAX_CERTIFICATE_BYTES = 64 * 1024
#: Largest PEM bundle accepted by :func:`load_certificates`.
MAX_BUNDLE_BYTES = 1024 * 1024
#: Largest CRL accepted.
MAX_CRL_BYTES = 8 * 1024 * 1024

CertificateInput = bytes | bytearray | memoryview | str | x509.Certificate
CrlInput = bytes | bytearray | memoryview | str | x509.CertificateRevocationList

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_CRL = b"-----BEGIN X509 CRL-----"


def _as_bytes(data: bytes | bytearray | memoryview | str, limit: int, what: str) -> bytes:
    if isinstance(data, str):
        if len(data) > limit:
            raise CertificateParseError(f"{what} is larger than {limit} bytes")
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise CertificateParseError(f"{what} given as text is not ASCII PEM") from None
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise CertificateParseError(f"{what} must be bytes, str or a cryptography object")
    raw = bytes(data)
    if len(raw) > limit:
        raise CertificateParseError(f"{what} is larger than {limit} bytes")
    if not raw.strip():
        raise CertificateParseError(f"{what} is empty")
    return raw


def load_certificate(data: CertificateInput) -> x509.Certificate:
    """Load exactly one certificate from PEM or DER bytes (or pass a certificate through).

    PEM input must hold exactly one ``CERTIFICATE`` block.
    """
    if isinstance(data, x509.Certificate):
        return _checked_certificate(data)
    certs = _load(data, MAX_CERTIFICATE_BYTES, single=True)
    return certs[0]


def load_certificates(data: CertificateInput) -> list[x509.Certificate]:
    """Load one or more certificates: a PEM bundle, or a single DER certificate."""
    if isinstance(data, x509.Certificate):
        return [_checked_certificate(data)]
    return _load(data, MAX_BUNDLE_BYTES, single=False)


def _load(data: CertificateInput, limit: int, *, single: bool) -> list[x509.Certificate]:
    raw = _as_bytes(data, limit, "certificate input")  # type: ignore[arg-type]
    try:
        if _PEM_CERT in raw:
            certs = x509.load_pem_x509_certificates(raw)
            for cert in certs:
                _checked_certificate(cert)
        elif raw.lstrip().startswith(b"-----BEGIN"):
            raise CertificateParseError("PEM input holds no CERTIFICATE block")
        else:
            if len(raw) > MAX_CERTIFICATE_BYTES:
                raise CertificateParseError(
                    f"DER certificate is larger than {MAX_CERTIFICATE_BYTES} bytes"
                )
            certs = [x509.load_der_x509_certificate(raw)]
            _checked_certificate(certs[0], der=raw)
    except CertificateParseError:
        raise
    except Exception as exc:  # cryptography raises ValueError and a few others
        raise CertificateParseError(f"not a valid X.509 certificate: {_short(exc)}") from exc
    if single and len(certs) != 1:
        raise CertificateParseError(f"expected exactly one certificate, found {len(certs)}")
    return certs


def load_crl(data: CrlInput) -> x509.CertificateRevocationList:
    """Load one CRL from PEM or DER bytes (or pass a CRL object through)."""
    if isinstance(data, x509.CertificateRevocationList):
        return _checked_crl(data)
    try:
        raw = _as_bytes(data, MAX_CRL_BYTES, "CRL input")
    except CertificateParseError as exc:
        raise CrlError(str(exc)) from None
    try:
        if _PEM_CRL in raw:
            return _checked_crl(x509.load_pem_x509_crl(raw))
        if raw.lstrip().startswith(b"-----BEGIN"):
            raise CrlError("PEM input holds no X509 CRL block")
        return _checked_crl(x509.load_der_x509_crl(raw))
    except CrlError:
        raise
    except Exception as exc:
        raise CrlError(f"not a valid X.509 CRL: {_short(exc)}") from exc


# Certificate objects that passed _checked_certificate, by id (certificates are immutable).
# The entries hold the objects, so an id cannot be reused while its entry exists.  Callers hand
# the same object in again and again (an issuer to lint(), a chain from the TLS layer); the
# signature check of an object needs a re-encoding (public_bytes), which is the costly part.
_CHECKED_OBJECTS: dict[int, x509.Certificate] = {}
_CHECKED_OBJECTS_MAX = 64


def _checked_certificate(cert: x509.Certificate, der: bytes | None = None) -> x509.Certificate:
    """Fail here, typed, on what cryptography only finds later (or never): a malformed subject
    or issuer Name (decoded lazily) and a signature BIT STRING with unused bits.

    ``der``: the bytes ``cert`` was just parsed from, when known (the same as its re-encoding:
    cryptography's DER parser is strict).
    """
    if der is None and _CHECKED_OBJECTS.get(id(cert)) is cert:
        return cert
    try:
        cert_names(cert, der)  # parsed once per object, strictly, and kept for later use
    except Exception as exc:  # DerError, ValueError from a re-encoding, ...
        raise CertificateParseError(
            f"the certificate's subject or issuer name cannot be decoded: {_short(exc)}"
        ) from exc
    aligned = (
        cert_layout(cert, der).signature_aligned  # walked with the names
        if der is not None
        else _signature_octet_aligned(cert.public_bytes(Encoding.DER))
    )
    if not aligned:
        raise CertificateParseError(_UNALIGNED.format(what="certificate"))
    if der is None:
        if len(_CHECKED_OBJECTS) >= _CHECKED_OBJECTS_MAX:
            _CHECKED_OBJECTS.clear()
        _CHECKED_OBJECTS[id(cert)] = cert
    return cert


_UNALIGNED = (
    "the {what} signature BIT STRING has unused bits; pyca would ignore them (a re-encoded, "
    "different {what} with the same signature), OpenSSL refuses it"
)


def _signature_octet_aligned(der: bytes) -> bool:
    """Whether the outer signature BIT STRING of a certificate or CRL has 0 unused bits."""
    parts: list[tuple[int, int, int]] = []  # (tag, content start, end) of each element
    try:
        _, pos, end = element_bounds(der)
        while pos < end and len(parts) <= 3:
            parts.append(element_bounds(der, pos, end))
            pos = parts[-1][2]
    except DerError:
        return False
    if len(parts) != 3 or pos != end:
        return False
    tag, start, stop = parts[2]
    return tag == 0x03 and start < stop and der[start] == 0


def _checked_crl(
    crl: x509.CertificateRevocationList,
) -> x509.CertificateRevocationList:
    """The CRL issuer Name is decoded lazily too; a malformed one is a :class:`CrlError`."""
    try:
        _ = crl.issuer
        crl_issuer(crl)
    except Exception as exc:
        raise CrlError(f"the CRL issuer name cannot be decoded: {_short(exc)}") from exc
    if not _signature_octet_aligned(crl.public_bytes(Encoding.DER)):
        raise CrlError(_UNALIGNED.format(what="CRL"))
    return crl


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
