"""TLS channel bindings available from Python's ``ssl``: tls-server-end-point (RFC 5929).

``ssl`` has no keying-material exporter (so no RFC 9266 tls-exporter), and ``tls-unique`` is
undefined on TLS 1.3 (RFC 8446 C.5) although ``get_channel_binding('tls-unique')`` returns a
value there: capif8sec never uses it.  tls-server-end-point is the hash of the server's
certificate, with the hash of its signature algorithm (SHA-256 for MD5 and SHA-1), so both
sides can compute it on every Python version and TLS version.
"""

from __future__ import annotations

import hashlib

from attrs import frozen
from cryptography import x509

from capif8sec.errors import HandshakeRejected

__all__ = ["TLS_SERVER_END_POINT", "ChannelBinding", "tls_server_end_point"]

TLS_SERVER_END_POINT = "tls-server-end-point"


@frozen
class ChannelBinding:
    """A channel binding: its type name and its data."""

    type: str
    data: bytes


def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 section 4.1: hash of the DER certificate with its signature's hash."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        algorithm = cert.signature_hash_algorithm
    except Exception as exc:  # malformed input, or a signature without a hash (EdDSA)
        raise HandshakeRejected(f"no tls-server-end-point for this certificate: {exc}") from None
    name = algorithm.name if algorithm is not None else ""
    if name in ("md5", "sha1"):
        name = "sha256"
    if name not in ("sha256", "sha384", "sha512"):
        raise HandshakeRejected("tls-server-end-point is undefined for this signature algorithm")
    return hashlib.new(name, cert_der).digest()


_MEMO: dict[bytes, bytes] = {}


def tls_server_end_point_cached(cert_der: bytes) -> bytes:
    """:func:`tls_server_end_point`, memoised by the certificate bytes (a pure function)."""
    value = _MEMO.get(cert_der)
    if value is None:
        value = tls_server_end_point(cert_der)
        if len(_MEMO) >= 1024:
            _MEMO.clear()
        _MEMO[cert_der] = value
    return value
