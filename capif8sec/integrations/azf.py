"""A reference AzF endpoint: HTTPS (HTTP/1.1) on asyncio, every connection checked.

This is what ``capif8sec serve`` runs.  It exists so the whole path -- TS 33.210 TLS, the
post-handshake check, the authenticated identity -- can be exercised from outside (openssl,
sslyze, load tests).  HTTP handling is deliberately minimal: one request per connection, bounded
request head, ``Connection: close``.

Paths:

- ``GET /whoami`` -- 200, JSON: the authenticated peer's identity, the authentication method,
  TLS version and suite.
- anything else -- 404 (405 for other methods on ``/whoami``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from capif8sec.integrations.aio import DEFAULT_HANDSHAKE_TIMEOUT, start_server
from capif8sec.tls.check import TlsPeer
from capif8sec.tls.context import CapifContext

__all__ = ["MAX_REQUEST_HEAD", "REQUEST_TIMEOUT", "primary_identity", "serve", "whoami"]

log = logging.getLogger("capif8sec.integrations.azf")

#: Largest request head (request line + headers) accepted, in bytes.
MAX_REQUEST_HEAD = 16 * 1024
#: Seconds a client gets to send its request head after the handshake.
REQUEST_TIMEOUT = 10.0


def primary_identity(peer: TlsPeer) -> str | None:
    """The identity the policy layer keys on (see ``CertificateIdentities.primary``)."""
    if peer.psk_identity:
        return peer.psk_identity
    return peer.identities.primary() if peer.identities is not None else None


def whoami(peer: TlsPeer) -> dict[str, Any]:
    """The body of ``GET /whoami``."""
    return {
        "identity": primary_identity(peer),
        "method": peer.authentication,
        "tls_version": peer.version,
        "cipher": peer.cipher,
        "identities": peer.identities.as_dict() if peer.identities else None,
        "certificate_sha256": peer.certificate_fingerprint,
    }


def _response(status: int, reason: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, sort_keys=True).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + payload


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: TlsPeer
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        writer.write(_response(400, "Bad Request", {"error": "malformed request line"}))
    elif parts[1] != "/whoami":
        writer.write(_response(404, "Not Found", {"error": f"no such path {parts[1][:100]}"}))
    elif parts[0] != "GET":
        writer.write(_response(405, "Method Not Allowed", {"error": "use GET"}))
    else:
        writer.write(_response(200, "OK", whoami(peer)))
    with contextlib.suppress(OSError, ConnectionError):
        await writer.drain()


async def serve(
    context: CapifContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever).  ``on_ready(host, port)`` runs once listening."""
    server = await start_server(
        _handle,
        host,
        port,
        ssl=context,
        handshake_timeout=handshake_timeout,
        limit=MAX_REQUEST_HEAD,
    )
    sockname = server.sockets[0].getsockname()
    if on_ready is not None:
        on_ready(sockname[0], sockname[1])
    async with server:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()
