"""Which ROF authenticator an HTTP request on a checked connection goes to (sans-I/O).

Shared by the reference AzF endpoint (:mod:`capif8sec.integrations.azf`) and the ASGI middleware
(:mod:`capif8sec.integrations.asgi`): given what the post-handshake check established about the
connection (:class:`~capif8sec.tls.TlsPeer`) and the request's ``Authorization`` value, the
outcome is :class:`Authenticated` (serve the request) or :class:`Unauthorized` (answer 401 with
its ``WWW-Authenticate`` challenges).

- a client certificate was part of the handshake: the certificate authenticator (mutual TLS);
- a TLS-level PSK handshake: the PSK authenticator;
- neither (a server context with
  :data:`~capif8sec.tls.CLIENT_CERTIFICATE_NOT_REQUESTED`): in-channel, over RFC 7804 headers
  bound to the channel by tls-server-end-point -- the first of the ``in_channel`` servers
  whose scheme the ``Authorization`` value names (``SCRAM-SHA-256-PLUS``, ``CAPIF8-PSK``).
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.http import HttpAuthenticated, HttpExchangeServer
from capif8sec.auth.psk import TlsPskAuthenticator
from capif8sec.errors import AuthenticationFailed
from capif8sec.tls.check import TlsPeer

__all__ = ["Authenticated", "RequestAuthenticator", "Unauthorized"]


@frozen
class Authenticated:
    """The ROF is authenticated; add ``authentication_info`` (if any) as ``Authentication-Info``."""

    peer: AuthenticatedPeer
    authentication_info: str | None = None


@frozen
class Unauthorized:
    """Answer 401: ``detail`` for the body, one ``WWW-Authenticate`` field per challenge.

    ``detail`` is ``authentication required`` (no credentials yet), ``continue`` (an exchange
    is half-way) or ``authentication failed`` -- never which part of a credential was wrong.
    """

    detail: str
    challenges: tuple[str, ...] = ()


class RequestAuthenticator:
    """Authenticates the ROF behind one HTTP request on a checked connection.

    :param in_channel: RFC 7804-style servers (SCRAM, in-channel PSK) used on connections where
        no client credential was part of the TLS handshake.
    :param certificate: the certificate authenticator (default: SAN identities only).
    """

    def __init__(
        self,
        *,
        in_channel: Sequence[HttpExchangeServer] = (),
        certificate: CertificateAuthenticator | None = None,
    ) -> None:
        self._certificate = certificate or CertificateAuthenticator()
        self._psk = TlsPskAuthenticator()
        self._in_channel = tuple(in_channel)

    def __repr__(self) -> str:
        return f"<RequestAuthenticator in_channel={len(self._in_channel)}>"

    def authenticate(self, tls: TlsPeer, authorization: str | None) -> Authenticated | Unauthorized:
        """The outcome for a request carrying ``authorization`` (None: no such header)."""
        try:
            if tls.authentication == "certificate":
                return Authenticated(self._certificate.authenticate(tls))
            if tls.authentication == "psk":
                return Authenticated(self._psk.authenticate(tls))
            return self._in_channel_step(tls, authorization)
        except AuthenticationFailed:
            return self._unauthorized(tls, "authentication failed")

    def _in_channel_step(
        self, tls: TlsPeer, authorization: str | None
    ) -> Authenticated | Unauthorized:
        binding = tls.channel_binding
        if authorization is None or binding is None or not self._in_channel:
            return self._unauthorized(tls, "authentication required")
        scheme = authorization.split(" ", 1)[0].upper()
        for server in self._in_channel:
            if server.scheme(binding).upper() == scheme:
                step = server.handle(authorization, binding)
                if isinstance(step, HttpAuthenticated):
                    return Authenticated(step.peer, step.authentication_info)
                return Unauthorized("continue", (step.www_authenticate,))
        raise AuthenticationFailed("authentication failed")

    def _unauthorized(self, tls: TlsPeer, detail: str) -> Unauthorized:
        binding = tls.channel_binding
        if binding is None or tls.authentication != "none":
            return Unauthorized(detail)
        return Unauthorized(detail, tuple(server.challenge(binding) for server in self._in_channel))
