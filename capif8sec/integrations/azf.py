"""A reference AzF endpoint: HTTPS (HTTP/1.1) on asyncio, every connection checked.

This is what ``capif8sec serve`` runs, so the whole path -- TS 33.210 TLS, the post-handshake
check, the ROF authenticators -- can be exercised from outside (openssl, curl, sslyze, load
tests).  HTTP handling is deliberately small: one request per connection, a bounded request head,
``Connection: close``.

How a request's ROF is authenticated depends on the TLS context:

- client certificate required: the certificate authenticator (mutual TLS);
- TLS-level PSK context (Python 3.13): the PSK authenticator;
- client certificate not requested: in-channel, over RFC 7804 headers bound to the channel by
  tls-server-end-point -- ``SCRAM-SHA-256-PLUS`` (password) or ``CAPIF8-PSK`` (in-channel PSK
  proof); an unauthenticated request gets ``401`` with a ``WWW-Authenticate`` per scheme.

Paths:

- ``GET /whoami`` -- 200, JSON: the authenticated identity, the authentication method, TLS
  version and suite.
- anything else -- 404 (405 for other methods on ``/whoami``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from attrs import frozen

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.http import HttpAuthenticated, HttpExchangeServer
from capif8sec.auth.psk import TlsPskAuthenticator
from capif8sec.errors import AuthenticationFailed
from capif8sec.integrations.aio import DEFAULT_HANDSHAKE_TIMEOUT, start_server
from capif8sec.tls.check import TlsPeer
from capif8sec.tls.context import CapifContext

__all__ = ["MAX_REQUEST_HEAD", "REQUEST_TIMEOUT", "AzfApp", "Request", "parse_request", "serve"]

log = logging.getLogger("capif8sec.integrations.azf")

#: Largest request head (request line + headers) accepted, in bytes.
MAX_REQUEST_HEAD = 16 * 1024
#: Most header fields accepted in one request.
MAX_HEADERS = 64
#: Seconds a client gets to send its request head after the handshake.
REQUEST_TIMEOUT = 10.0


@frozen
class Request:
    """A parsed request head: method, path, and header fields (names lower-cased)."""

    method: str
    path: str
    headers: dict[str, list[str]]

    def header(self, name: str) -> str | None:
        """The single value of a header field (None if absent or repeated)."""
        values = self.headers.get(name.lower(), [])
        return values[0] if len(values) == 1 else None


def parse_request(head: bytes) -> Request | None:
    """Parse an HTTP/1.1 request head; None when it is malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or len(headers) > MAX_HEADERS:
            return None
        headers.setdefault(name.lower(), []).append(value.strip())
    return Request(parts[0], parts[1], headers)


def _response(
    status: int, reason: str, body: dict[str, Any], extra: Sequence[tuple[str, str]] = ()
) -> bytes:
    payload = json.dumps(body, sort_keys=True).encode()
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in extra)
    head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    return head.encode("latin-1") + payload


def whoami(peer: AuthenticatedPeer, tls: TlsPeer) -> dict[str, Any]:
    """The body of ``GET /whoami``: no secrets, only what identifies the peer."""
    return {
        "identity": peer.identity,
        "method": str(peer.method),
        "tls_version": tls.version,
        "cipher": tls.cipher,
        "evidence": dict(peer.evidence),
    }


class AzfApp:
    """The request logic of the reference AzF endpoint (no sockets: see :func:`serve`).

    :param in_channel: RFC 7804-style servers (SCRAM, in-channel PSK) used on connections where
        no client credential was part of the TLS handshake.
    """

    def __init__(self, *, in_channel: Sequence[HttpExchangeServer] = ()) -> None:
        self._certificate = CertificateAuthenticator()
        self._psk = TlsPskAuthenticator()
        self._in_channel = tuple(in_channel)

    def respond(self, request: Request | None, tls: TlsPeer) -> bytes:
        """The full HTTP response to one request on a checked connection."""
        if request is None:
            return _response(400, "Bad Request", {"error": "malformed request"})
        if request.path != "/whoami":
            return _response(404, "Not Found", {"error": "no such path"})
        if request.method != "GET":
            return _response(405, "Method Not Allowed", {"error": "use GET"})
        extra: list[tuple[str, str]] = []
        try:
            if tls.authentication == "certificate":
                peer = self._certificate.authenticate(tls)
            elif tls.authentication == "psk":
                peer = self._psk.authenticate(tls)
            else:
                result = self._in_channel_step(request, tls)
                if not isinstance(result, HttpAuthenticated):
                    return result
                peer = result.peer
                extra.append(("Authentication-Info", result.authentication_info))
        except AuthenticationFailed:
            return self._unauthorized(tls, "authentication failed")
        log.info("authenticated %s by %s", peer.identity, peer.method)
        return _response(200, "OK", whoami(peer, tls), extra)

    def _in_channel_step(self, request: Request, tls: TlsPeer) -> HttpAuthenticated | bytes:
        authorization = request.header("authorization")
        binding = tls.channel_binding
        if authorization is None or binding is None or not self._in_channel:
            return self._unauthorized(tls, "authentication required")
        scheme = authorization.split(" ", 1)[0].upper()
        for server in self._in_channel:
            if server.scheme(binding).upper() == scheme:
                step = server.handle(authorization, binding)
                if isinstance(step, HttpAuthenticated):
                    return step
                return _response(
                    401,
                    "Unauthorized",
                    {"error": "continue"},
                    [("WWW-Authenticate", step.www_authenticate)],
                )
        raise AuthenticationFailed("authentication failed")

    def _unauthorized(self, tls: TlsPeer, message: str) -> bytes:
        binding = tls.channel_binding
        challenges = [
            ("WWW-Authenticate", server.challenge(binding))
            for server in self._in_channel
            if binding is not None and tls.authentication == "none"
        ]
        return _response(401, "Unauthorized", {"error": message}, challenges)


async def _handle(
    app: AzfApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: TlsPeer
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return
    writer.write(app.respond(parse_request(head), tls))
    with contextlib.suppress(OSError, ConnectionError):
        await writer.drain()


async def serve(
    context: CapifContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    app: AzfApp | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever).  ``on_ready(host, port)`` runs once listening."""
    the_app = app or AzfApp()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, tls: TlsPeer) -> None:
        await _handle(the_app, r, w, tls)

    server = await start_server(
        handler,
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
