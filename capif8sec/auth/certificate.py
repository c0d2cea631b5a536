"""The certificate authenticator: mutual TLS, as the post-handshake check established it."""

from __future__ import annotations

from capif8sec.auth.base import AuthenticatedPeer, ContextNeeds, Method
from capif8sec.errors import AuthenticationFailed
from capif8sec.tls.check import TlsPeer

__all__ = ["CertificateAuthenticator"]


class CertificateAuthenticator:
    """Authenticates an ROF by the client certificate the post-handshake check validated.

    The identity is the certificate's first URI-ID, else DNS-ID, else IP-ID (R56); the CN only
    with ``legacy_cn=True`` and only when the certificate has no SAN identifier (R57).
    """

    name = "certificate"
    needs = ContextNeeds.CLIENT_CERTIFICATE

    def __init__(self, *, legacy_cn: bool = False) -> None:
        self._legacy_cn = legacy_cn

    def authenticate(self, peer: TlsPeer) -> AuthenticatedPeer:
        """The authenticated peer, or :class:`AuthenticationFailed`."""
        if peer.authentication != "certificate" or peer.identities is None:
            raise AuthenticationFailed("authentication failed")
        identity = peer.identities.primary(legacy_cn=self._legacy_cn)
        if identity is None:
            raise AuthenticationFailed("authentication failed")
        return AuthenticatedPeer(
            identity=identity,
            method=Method.CERTIFICATE,
            evidence={
                "certificate_sha256": peer.certificate_fingerprint or "",
                "tls_version": peer.version,
            },
            tls=peer,
        )
