"""The TLS-level PSK authenticator (Python >= 3.13; see :mod:`capif8sec.tls.psk`)."""

from __future__ import annotations

from capif8sec.auth.base import AuthenticatedPeer, ContextNeeds, Method
from capif8sec.errors import AuthenticationFailed
from capif8sec.tls.check import TlsPeer

__all__ = ["TlsPskAuthenticator"]


class TlsPskAuthenticator:
    """Authenticates an ROF by the external PSK its TLS 1.3 (or 1.2 DHE-PSK) handshake used.

    The post-handshake check already proved that a PSK handshake happened and which identity
    the server looked up for this very connection; this turns that into the peer (R56).
    """

    name = "psk"
    needs = ContextNeeds.PSK_CALLBACKS

    def authenticate(self, peer: TlsPeer) -> AuthenticatedPeer:
        """The authenticated peer, or :class:`AuthenticationFailed`."""
        if peer.authentication != "psk" or not peer.psk_identity:
            raise AuthenticationFailed("authentication failed")
        return AuthenticatedPeer(
            identity=peer.psk_identity,
            method=Method.PSK,
            evidence={
                "psk_identity": peer.psk_identity,
                "key_id": peer.psk_key_id or "",
                "tls_version": peer.version,
            },
            tls=peer,
        )
