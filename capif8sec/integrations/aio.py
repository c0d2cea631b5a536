"""asyncio helpers that run the post-handshake check before the application sees a byte.

``open_connection`` / ``start_server`` mirror :func:`asyncio.open_connection` and
:func:`asyncio.start_server`; both bound the TLS handshake with a timeout so a stalled peer cannot
hold a slot, and both close the transport when the check fails.  The closing handshake is bounded
by the same timeout (``ssl_shutdown_timeout``, unless given): asyncio's own default keeps a
connection whose peer never answers ``close_notify`` for 30 s after the application is done.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from capif8sec.errors import HandshakeRejected, TlsConfigError
from capif8sec.tls.check import TlsPeer, check_connection
from capif8sec.tls.context import CapifContext

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "check_stream", "open_connection", "start_server"]

log = logging.getLogger("capif8sec.integrations.aio")

#: Seconds a peer gets to complete the TLS handshake.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, TlsPeer], Awaitable[None]]


def _require(ctx: ssl.SSLContext) -> CapifContext:
    if not isinstance(ctx, CapifContext):
        raise TlsConfigError("use a context built by capif8sec.tls.server_context/client_context")
    return ctx


def check_stream(writer: asyncio.StreamWriter) -> TlsPeer:
    """Run the post-handshake check on an asyncio TLS stream; close it and raise on failure."""
    sslobj = writer.get_extra_info("ssl_object")
    if sslobj is None:
        writer.close()
        raise HandshakeRejected("the stream is not a TLS stream")
    try:
        return check_connection(sslobj)
    except HandshakeRejected:
        writer.transport.abort()
        raise


async def open_connection(
    host: str,
    port: int,
    *,
    ssl: ssl.SSLContext,
    server_hostname: str | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, TlsPeer]:
    """Connect, complete the handshake within ``handshake_timeout``, check the server.

    ``server_hostname`` defaults to ``host`` (it is sent as SNI and, unless the context has an
    ``expected_identity``, is the reference identity the server must match).
    """
    ctx = _require(ssl)
    kwargs.setdefault("ssl_shutdown_timeout", handshake_timeout)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host,
            port,
            ssl=ctx,
            server_hostname=server_hostname or host,
            ssl_handshake_timeout=handshake_timeout,
            **kwargs,
        ),
        timeout=handshake_timeout + 1.0,
    )
    return reader, writer, check_stream(writer)


async def start_server(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    ssl: ssl.SSLContext,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    **kwargs: Any,
) -> asyncio.Server:
    """Serve TLS; ``handler(reader, writer, peer)`` runs only for peers that passed the check.

    A peer that fails the check is logged at INFO with the reason and disconnected.  A peer
    that stalls in the opening or the closing handshake is cut after ``handshake_timeout``.
    """
    ctx = _require(ssl)
    kwargs.setdefault("ssl_shutdown_timeout", handshake_timeout)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = check_stream(writer)
        except HandshakeRejected as exc:
            log.info("connection refused after the handshake: %s", exc)
            return
        try:
            await handler(reader, writer, peer)
        finally:
            if not writer.is_closing():
                writer.close()

    return await asyncio.start_server(
        on_connect, host, port, ssl=ctx, ssl_handshake_timeout=handshake_timeout, **kwargs
    )
