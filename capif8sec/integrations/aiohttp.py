"""aiohttp clients on capif8sec's client context (``pip install capif8sec[aiohttp]``).

aiohttp (checked on 3.14) hands the ``ssl.SSLContext`` given to its ``TCPConnector`` to
``loop.create_connection(ssl=...)``; asyncio completes the handshake before aiohttp's protocol
gets the transport.  :func:`connector` prepares the context with
:func:`~capif8sec.integrations.handshake.check_during_handshake`, so the post-handshake check
runs inside that handshake: a server failing it makes the request fail with
``aiohttp.ClientConnectorSSLError`` before a request
byte is written.

``server_hostname=`` on a request sets the SNI and the reference identity; or give the
:class:`~capif8sec.tls.PeerVerification` an ``expected_identity``.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from capif8sec.errors import TlsConfigError
from capif8sec.integrations.handshake import check_during_handshake, peer_of
from capif8sec.tls.check import TlsPeer
from capif8sec.tls.context import CapifContext

__all__ = ["CheckedResponse", "connector", "session", "tls_peer"]


def connector(context: CapifContext, **kwargs: Any) -> aiohttp.TCPConnector:
    """An :class:`aiohttp.TCPConnector` whose every connection passes the post-handshake check.

    ``kwargs`` go to :class:`aiohttp.TCPConnector` (``limit``, ...), but not ``ssl``.

    :raises TlsConfigError: not a capif8sec client context, or ``ssl`` given.
    """
    if not isinstance(context, CapifContext) or context.settings.side != "client":
        raise TlsConfigError("use a context built by capif8sec.tls.client_context (or tls.psk)")
    if "ssl" in kwargs:
        raise TlsConfigError("the capif8sec context decides TLS; do not pass ssl")
    return aiohttp.TCPConnector(ssl=check_during_handshake(context), **kwargs)


class CheckedResponse(aiohttp.ClientResponse):
    """A response that keeps the checked server of its connection (aiohttp releases the
    connection as soon as the body is complete, often before the caller looks)."""

    #: The server the post-handshake check accepted, for this response's connection.
    capif8sec_peer: TlsPeer | None = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        """Note the connection's checked peer, then read the response as aiohttp does."""
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        self.capif8sec_peer = getattr(ssl_object, "capif8sec_peer", None)
        return await super().start(connection)


def session(context: CapifContext, **kwargs: Any) -> aiohttp.ClientSession:
    """An :class:`aiohttp.ClientSession` on :func:`connector`, whose responses are
    :class:`CheckedResponse` (``trust_env`` off: no proxy from the environment).  Create it
    inside the running event loop."""
    given = {"connector", "trust_env", "response_class"}.intersection(kwargs)
    if given:
        raise TlsConfigError(f"the capif8sec session decides TLS; do not pass {sorted(given)}")
    return aiohttp.ClientSession(
        connector=connector(context), trust_env=False, response_class=CheckedResponse, **kwargs
    )


def tls_peer(response: aiohttp.ClientResponse) -> TlsPeer:
    """The checked server of the connection that carried ``response``.

    A :class:`CheckedResponse` (from :func:`session`) keeps it; for other responses, call this
    before the connection is released (before the body is read).

    :raises HandshakeRejected: no checked TLS connection (or it was already released).
    """
    if isinstance(response, CheckedResponse) and response.capif8sec_peer is not None:
        return response.capif8sec_peer
    connection = response.connection
    transport = connection.transport if connection is not None else None
    return peer_of(transport.get_extra_info("ssl_object") if transport is not None else None)
