"""The check every CCF and ROF runs on every new connection, right after the handshake.

:func:`check_connection` takes an ``ssl.SSLSocket`` or an ``ssl.SSLObject`` (asyncio) whose
context was built by :mod:`capif8sec.tls.context`, and establishes:

- the negotiated version and suite belong to the TS 33.210 profile (R28-R31);
- which authentication actually happened (a certificate was presented where one is required: the
  PSK-plus-certificate trap of the platform notes can never slip through);
- the peer's chain passes the TS 33.310 profile for its role -- a client certificate as a client,
  a server certificate as a server -- with validity, the 6.1.3a issuing rule and CRLs;
- for a client, the server matches the expected identity (RFC 9525, no CN);
- the peer's SAN identities are returned for the policy layer.

A failure closes an ``SSLSocket`` and raises :class:`~capif8sec.errors.HandshakeRejected`; for
an ``SSLObject`` the caller owns the transport and must close it (the asyncio helpers in
:mod:`capif8sec.integrations.aio` do).  No I/O happens here beyond that close.

The peer chain comes from ``get_verified_chain()`` (public from Python 3.13; on 3.10-3.12 the
same method exists on the private ``_sslobj``).  OpenSSL has already path-validated it against the
context's trust anchors during the handshake; this check does not verify signatures again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
import threading
from typing import Any

from attrs import field, frozen

from capif8sec.certs.chain import VerifiedChain
from capif8sec.certs.identities import CertificateIdentities, matches_reference
from capif8sec.errors import Capif8secError, HandshakeRejected
from capif8sec.tls.binding import (
    TLS_SERVER_END_POINT,
    ChannelBinding,
    tls_server_end_point_cached,
)
from capif8sec.tls.context import CapifContext, _Settings, requested_server_name

__all__ = ["TlsPeer", "check_connection", "peer_chain_der"]

Connection = ssl.SSLSocket | ssl.SSLObject


@frozen
class TlsPeer:
    """What the post-handshake check established about the peer of one connection.

    Valid for the lifetime of that connection only (R26).
    """

    side: str
    version: str
    cipher: str
    authentication: str
    identities: CertificateIdentities | None
    chain: VerifiedChain | None
    server_name: str | None
    alpn: str | None
    #: The PSK identity of a TLS-level PSK handshake (UTF-8 text, exact).
    psk_identity: str | None = None
    #: The key id of the PSK used (server side), for audit.
    psk_key_id: str | None = None
    #: tls-server-end-point of this channel (when the server presented a certificate), for
    #: in-channel authentication (SCRAM-PLUS, in-channel PSK).
    channel_binding: ChannelBinding | None = field(default=None, repr=False)

    @property
    def certificate_fingerprint(self) -> str | None:
        """SHA-256 fingerprint (hex) of the peer's end-entity certificate, if any."""
        return self.chain.reports[0].fingerprint_sha256 if self.chain else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no secrets)."""
        return {
            "side": self.side,
            "version": self.version,
            "cipher": self.cipher,
            "authentication": self.authentication,
            "identities": self.identities.as_dict() if self.identities else None,
            "certificate_sha256": self.certificate_fingerprint,
            "server_name": self.server_name,
            "alpn": self.alpn,
            "psk_identity": self.psk_identity,
        }


def peer_chain_der(conn: Connection, *, verified: bool = True) -> list[bytes]:
    """The peer's chain as DER, leaf first (just the leaf where nothing more is exposed).

    ``verified=True`` gives the chain OpenSSL validated; ``False`` the one the peer sent.  Both
    methods are public from Python 3.13 and exist on the private ``_sslobj`` on 3.10-3.12.
    """
    name = "get_verified_chain" if verified else "get_unverified_chain"
    getter = getattr(conn, name, None) or getattr(getattr(conn, "_sslobj", None), name, None)
    if getter is None:
        leaf = conn.getpeercert(binary_form=True)
        return [leaf] if leaf else []
    return [
        item if isinstance(item, bytes) else item.public_bytes(_ENCODING_DER)
        for item in getter() or ()
    ]


_ENCODING_DER: int = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009


def check_connection(conn: Connection, *, at: dt.datetime | None = None) -> TlsPeer:
    """Run the post-handshake check; return the authenticated peer or raise and close.

    :raises HandshakeRejected: the connection does not satisfy the profile; an ``SSLSocket``
        has been closed.
    """
    try:
        return _check(conn, at)
    except HandshakeRejected:
        _close(conn)
        raise
    except Capif8secError as exc:
        _close(conn)
        raise HandshakeRejected(f"peer refused: {exc}") from exc
    except Exception as exc:  # anything unforeseen fails closed, never half-checked
        _close(conn)
        raise HandshakeRejected(f"the post-handshake check failed: {type(exc).__name__}") from exc


def _close(conn: Connection) -> None:
    if isinstance(conn, ssl.SSLSocket):
        with contextlib.suppress(OSError):
            conn.close()


def _check(conn: Connection, at: dt.datetime | None) -> TlsPeer:
    ctx = conn.context
    if not isinstance(ctx, CapifContext) or not hasattr(ctx, "_capif8sec"):
        raise HandshakeRejected("the connection's context was not built by capif8sec.tls")
    settings = ctx.settings
    version = conn.version()
    cipher_info = conn.cipher()
    if version is None or cipher_info is None:
        raise HandshakeRejected("the handshake has not completed")
    cipher = cipher_info[0]
    if settings.mode == "psk":
        return _check_psk(conn, settings, version, cipher)
    if not settings.profile.allows(version, cipher):
        raise HandshakeRejected(
            f"negotiated {version} with {cipher}, outside the {settings.profile.name} profile"
        )
    server_name = requested_server_name(conn)
    alpn = conn.selected_alpn_protocol()
    if settings.side == "client" and ctx._capif8sec_alpn and alpn is None:
        # R40: a client that asked for ALPN aborts when the server selected nothing.  (A server
        # cannot tell from Python's ssl whether the client offered ALPN at all.)
        raise HandshakeRejected("no application protocol (ALPN) in common with the server")
    own = settings.own_end_point
    binding = ChannelBinding(TLS_SERVER_END_POINT, own) if own is not None else None
    if settings.validator is None:  # server that did not request a client certificate
        return TlsPeer(
            settings.side,
            version,
            cipher,
            "none",
            None,
            None,
            server_name,
            alpn,
            channel_binding=binding,
        )
    chain_der = peer_chain_der(conn)
    if not chain_der:
        raise HandshakeRejected(
            "no certificate authentication happened: the peer presented no certificate"
        )
    peer_role = "client" if settings.side == "server" else "server"
    if len(chain_der) == 1:  # no chain exposed: full path validation with the anchors
        verified = settings.validator.verify(chain_der[0], (), role=peer_role, at=at)
    else:
        verified = settings.validator.check_verified_chain(chain_der, role=peer_role, at=at)
    identities = verified.identities
    if settings.side == "client":
        binding = ChannelBinding(TLS_SERVER_END_POINT, tls_server_end_point_cached(chain_der[0]))
        reference = settings.expected_identity or server_name
        if not reference:
            raise HandshakeRejected(
                "no reference identity: set PeerVerification.expected_identity or pass "
                "server_hostname"
            )
        if not _matches(identities, reference):
            raise HandshakeRejected(
                f"the server certificate does not match {reference!r} "
                f"(it names {list(identities.dns_names) + list(identities.uris)})"
            )
    return TlsPeer(
        settings.side,
        version,
        cipher,
        "certificate",
        identities,
        verified,
        server_name,
        alpn,
        channel_binding=binding,
    )


_MATCHES: dict[tuple[int, str], tuple[CertificateIdentities, bool]] = {}
_MATCHES_LOCK = threading.Lock()


def _matches(identities: CertificateIdentities, reference: str) -> bool:
    """:func:`matches_reference`, remembered per identities object (the validator hands out one
    per certificate) and reference: RFC 9525 matching depends on those two values alone."""
    key = (id(identities), reference)
    seen = _MATCHES.get(key)
    if seen is not None and seen[0] is identities:
        return seen[1]
    result = matches_reference(identities, reference)
    with _MATCHES_LOCK:
        if len(_MATCHES) >= 1024:
            _MATCHES.clear()
        _MATCHES[key] = (identities, result)
    return result


def _check_psk(conn: Connection, settings: _Settings, version: str, cipher: str) -> TlsPeer:
    """Prove that a PSK handshake, and nothing else, happened on a PSK context."""
    from capif8sec.tls.psk import PSK_TLS12_SUITES, PSK_TLS13_SUITES, psk_identity_of

    allowed = PSK_TLS13_SUITES if version == "TLSv1.3" else PSK_TLS12_SUITES
    if version not in settings.profile.versions or cipher not in allowed:
        raise HandshakeRejected(f"negotiated {version} with {cipher}: not a profile PSK suite")
    if conn.getpeercert(binary_form=True) is not None:
        raise HandshakeRejected("a certificate was used on a PSK-only context")
    alpn = conn.selected_alpn_protocol()
    if settings.side == "client":
        return TlsPeer(
            "client",
            version,
            cipher,
            "psk",
            None,
            None,
            requested_server_name(conn),
            alpn,
            psk_identity=settings.psk_identity,
        )
    credential = psk_identity_of(conn)
    if credential is None:
        raise HandshakeRejected("no PSK identity was looked up for this connection")
    identity = credential.identity.decode("utf-8")
    return TlsPeer(
        "server",
        version,
        cipher,
        "psk",
        None,
        None,
        None,
        alpn,
        psk_identity=identity,
        psk_key_id=credential.key_id or None,
    )
