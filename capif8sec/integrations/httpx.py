"""httpx clients on capif8sec's client context (``pip install capif8sec[httpx]``).

httpx (checked on 0.28) takes an ``ssl.SSLContext`` as ``verify=``; its transports do the
handshake in ``httpcore``: ``SSLContext.wrap_socket`` for :class:`httpx.Client`,
``SSLContext.wrap_bio`` through anyio for :class:`httpx.AsyncClient`.  :func:`client` and
:func:`async_client` prepare the context with
:func:`~capif8sec.integrations.handshake.check_during_handshake`, so the post-handshake check
(TS 33.210 profile, the server's TS 33.310 chain, its identity) runs inside that handshake: a
server failing it makes the request fail with :class:`httpx.ConnectError` before a single
request byte is written.  No custom transport is needed for that.

Note that httpcore sets the ALPN list of the context it is given (``http/1.1``, plus ``h2``
with ``http2=True``).  ``trust_env`` is off: no proxy from the environment comes between the
ROF and the CCF, whose mutual TLS is end to end.

:class:`ScramAuth` logs in with SCRAM-SHA-256-PLUS over RFC 7804 headers, bound to the channel
of each response; :func:`tls_peer` gives the checked server of a response.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from capif8sec.auth.http import HttpScramClient
from capif8sec.auth.scram import ScramClient
from capif8sec.errors import AuthenticationFailed, TlsConfigError
from capif8sec.integrations.handshake import check_during_handshake, peer_of
from capif8sec.tls.check import TlsPeer
from capif8sec.tls.context import CapifContext

__all__ = ["ScramAuth", "async_client", "client", "tls_peer"]

_FORBIDDEN = frozenset({"verify", "cert", "trust_env", "proxy", "mounts", "transport"})


def _prepare(context: CapifContext, kwargs: dict[str, Any]) -> CapifContext:
    if not isinstance(context, CapifContext) or context.settings.side != "client":
        raise TlsConfigError("use a context built by capif8sec.tls.client_context (or tls.psk)")
    given = _FORBIDDEN.intersection(kwargs)
    if given:
        raise TlsConfigError(f"the capif8sec context decides TLS; do not pass {sorted(given)}")
    return check_during_handshake(context)


def client(context: CapifContext, **kwargs: Any) -> httpx.Client:
    """An :class:`httpx.Client` whose every connection passes the post-handshake check first.

    ``kwargs`` go to :class:`httpx.Client` (``base_url``, ``timeout``, ``auth``, ...); the TLS
    and proxy options are refused.

    :raises TlsConfigError: not a capif8sec client context, or a TLS option given.
    """
    return httpx.Client(verify=_prepare(context, kwargs), trust_env=False, **kwargs)


def async_client(context: CapifContext, **kwargs: Any) -> httpx.AsyncClient:
    """:func:`client` for :class:`httpx.AsyncClient`."""
    return httpx.AsyncClient(verify=_prepare(context, kwargs), trust_env=False, **kwargs)


def tls_peer(response: httpx.Response) -> TlsPeer:
    """The checked server of the connection that carried ``response`` (read it before closing).

    :raises HandshakeRejected: the connection was not made by :func:`client` /
        :func:`async_client` (no checked TLS connection).
    """
    stream = response.extensions.get("network_stream")
    if stream is None:
        return peer_of(None)
    # anyio (AsyncClient) exposes the SSLObject; the sync transport the SSLSocket as "socket"
    found = stream.get_extra_info("ssl_object")
    if getattr(found, "capif8sec_peer", None) is None:
        found = stream.get_extra_info("socket")
    return peer_of(found)


class ScramAuth(httpx.Auth):
    """SCRAM-SHA-256-PLUS over RFC 7804 headers (``auth=ScramAuth(...)``), with mutual proof.

    A request answered ``401`` with a ``SCRAM-SHA-256-PLUS`` challenge is sent again with the
    client-first, then the client-final message, each bound to the tls-server-end-point of the
    connection the challenge came on; the final response's ``Authentication-Info`` must carry
    the server's signature.  Every request is a full exchange (RFC 7804 ``sr``/``ttl`` re-use is
    not implemented).  The password never appears in ``repr``.

    :raises AuthenticationFailed: the server does not offer SCRAM-SHA-256-PLUS, or refuses the
        credentials (the final response is then the server's 401), or cannot prove it knows the
        password.
    """

    requires_request_body = True

    def __init__(self, username: str, password: str, *, realm: str | None = None) -> None:
        self._username = username
        self._password = password
        self._realm = realm

    def __repr__(self) -> str:
        return f"<ScramAuth username={self._username!r}>"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The RFC 7804 exchange around ``request``."""
        response = yield request
        if response.status_code != 401:
            return
        binding = tls_peer(response).channel_binding
        if binding is None:
            raise AuthenticationFailed("SCRAM-PLUS needs a certificate-authenticated server")
        scram = HttpScramClient(
            ScramClient(self._username, self._password, binding), realm=self._realm
        )
        request.headers["Authorization"] = scram.first(_challenges(response))
        response = yield request
        if response.status_code != 401:
            raise AuthenticationFailed("the server did not continue the SCRAM exchange")
        request.headers["Authorization"] = scram.final(_challenges(response))
        response = yield request
        if response.status_code == 401:
            return  # refused: the caller sees the server's 401 problem
        info = response.headers.get("authentication-info")
        if info is None:
            raise AuthenticationFailed("the server did not prove it knows the password")
        scram.verify(info)


def _challenges(response: httpx.Response) -> str:
    return ", ".join(response.headers.get_list("www-authenticate"))
