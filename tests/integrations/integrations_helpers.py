"""Shared pieces of the integration tests: a test PKI, contexts, servers in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from capif8sec import tls
from capif8sec.auth.http import HttpScramServer
from capif8sec.auth.scram import ScramAuthenticator, make_verifier
from capif8sec.auth.stores import MemoryStore
from capif8sec.integrations.asgi import STATE_KEY, authenticated_peer
from capif8sec.testing import IssuedCert, TestPKI

CCF = "ccf.capif.example"
ROF = "rof-1.capif.example"
OWNER = "msisdn-491700000001"
OTHER_OWNER = "msisdn-491700000002"
PASSWORD = secrets.token_urlsafe(16)
TIMEOUT = 10.0

POLICY = f"""
version = "integrations"

[[rule]]
id = "rof-1"
identities = ["uri:urn:capif:rof:rof-1"]
owners = ["{OWNER}"]
operations = ["authorize", "revoke"]
methods = ["certificate"]

[[rule]]
id = "rof-pw"
identities = ["scram:rof-pw"]
owners = ["{OWNER}"]
operations = ["authorize", "revoke"]
methods = ["password"]

[[ccf]]
id = "home-ccf"
identities = ["dns:{CCF}"]
"""

Serve = Callable[..., Awaitable[None]]

#: What the recording TLS server answers to a request head.
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def identity(cert: IssuedCert) -> tls.Identity:
    return tls.Identity(cert.chain_pem, cert.key_pem)


def verification(pki: TestPKI, expected: str | None = None) -> tls.PeerVerification:
    return tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()], expected_identity=expected)


def mtls_server(pki: TestPKI, cert: IssuedCert | None = None) -> tls.CapifContext:
    """A server context requiring client certificates (CCF by default)."""
    return tls.server_context(
        present=identity(cert or pki.server_cert(CCF)), verify=verification(pki)
    )


def in_channel_server(pki: TestPKI) -> tls.CapifContext:
    """A CCF server context that does not request client certificates (SCRAM in-channel)."""
    return tls.server_context(
        present=identity(pki.server_cert(CCF)), verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED
    )


def rof_client(pki: TestPKI, rof_id: str | None = "rof-1", expected: str = CCF) -> tls.CapifContext:
    """An ROF client context: with the ROF's certificate, or none (``rof_id=None``)."""
    present: tls.Identity | Any = (
        identity(pki.client_cert(rof_id)) if rof_id else tls.PRESENT_NO_CERTIFICATE
    )
    return tls.client_context(present=present, verify=verification(pki, expected))


def scram_server(username: str = "rof-pw", password: str = PASSWORD) -> HttpScramServer:
    store = MemoryStore()
    store.add_scram(make_verifier(username, password, iterations=4096))
    return HttpScramServer(ScramAuthenticator(store).exchange, realm="capif8")


def request_json(owner: str = OWNER, request_id: str = "req-1") -> dict[str, Any]:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)
    return {
        "requestId": request_id,
        "apiInvokerInfo": {"apiInvokerId": "INV-42"},
        "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
        "purposeOfDataProcessing": "service-assurance",
        "resOwnerId": owner,
        "requestedItems": [{"apiName": "3gpp-monitoring-event", "operations": ["read"]}],
        "expiry": later.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def response_json(owner: str = OWNER, request_id: str = "req-1") -> dict[str, Any]:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    return {
        "requestId": request_id,
        "resOwnerId": owner,
        "expiry": soon.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "decisions": [{"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read"]}],
    }


class WhoAmI:
    """An ASGI app answering with the authenticated peer; counts the requests it saw."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.calls += 1
        peer = authenticated_peer(scope)
        assert scope["state"][STATE_KEY] is peer
        body = json.dumps({"identity": peer.identity, "method": str(peer.method)}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def running(serve: Serve, app: Any, context: tls.CapifContext, **kwargs: Any) -> Iterator[int]:
    """Run ``serve(app, context, on_ready=..., stop=...)`` in a thread with its own loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    found: list[Any] = []
    stop = asyncio.Event()

    def on_ready(_host: str, port: int) -> None:
        found.append(port)
        ready.set()

    async def main() -> None:
        try:
            await serve(
                app,
                context,
                on_ready=on_ready,
                stop=stop,
                **kwargs,
            )
        except BaseException as exc:
            found.append(exc)
            ready.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT), "the server did not start"
        assert isinstance(found[0], int), found
        yield found[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(TIMEOUT)
        loop.close()


@contextlib.contextmanager
def recording_tls_server(cert: IssuedCert, tmp: Path) -> Iterator[tuple[int, list[bytes]]]:
    """A plain stdlib TLS server presenting ``cert``: it records every application byte it gets.

    One connection; the list gets exactly one entry (the bytes received, possibly none).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.write(tmp / "server.pem", tmp / "server.key")
    ctx.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    received: list[bytes] = []

    def serve() -> None:
        data = b""
        try:
            raw, _ = listener.accept()
            raw.settimeout(3)
            with ctx.wrap_socket(raw, server_side=True) as sock:
                while chunk := sock.recv(65536):
                    data += chunk
                    if b"\r\n\r\n" in data:  # a request head: answer it, for the control case
                        sock.sendall(_ANSWER)
                        break
        except (OSError, ssl.SSLError):
            pass
        received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        thread.join(TIMEOUT)
        listener.close()
