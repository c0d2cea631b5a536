"""The ASGI middleware without a capif8sec server helper: fail closed, the ASGI ``tls`` scope
extension, WebSocket and lifespan scopes, and the server helpers' refusals."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from integrations_helpers import (
    CCF,
    TIMEOUT,
    WhoAmI,
    in_channel_server,
    mtls_server,
    rof_client,
    scram_server,
)

from capif8sec.errors import HandshakeRejected, TlsConfigError, UsageError
from capif8sec.integrations.asgi import (
    EXTENSION,
    Capif8secMiddleware,
    authenticated_peer,
    tls_peer_from_extension,
)
from capif8sec.testing import TestPKI

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    """Run an ASGI app on one scope; return what it sent."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _http(path: str = "/whoami", method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": [], **extra}


def _status(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    start, body = sent
    headers = dict(start["headers"])
    assert headers[b"content-type"] in (b"application/problem+json", b"application/json")
    return start["status"], json.loads(body["body"])


def test_no_checked_connection_is_a_500_and_the_app_is_not_called(pki: TestPKI) -> None:
    app = WhoAmI()
    status, problem = _status(_call(Capif8secMiddleware(app), _http()))
    assert (status, problem["detail"]) == (500, "no checked TLS connection")
    assert app.calls == 0


def _extension(pki: TestPKI, chain: list[bytes], **changes: Any) -> dict[str, Any]:
    ext: dict[str, Any] = {
        "server_cert": None,
        "client_cert_chain": [pem.decode() for pem in chain],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }
    ext.update(changes)
    return ext


def test_the_tls_extension_is_checked_like_a_handshake(pki: TestPKI) -> None:
    """A server that fills the ASGI tls extension (none of the tested ones does): the client
    chain is path-validated with the context's anchors, CRLs and TS 33.310 client profile."""
    ctx = mtls_server(pki)
    rof = pki.client_cert("rof-1")
    chain = [rof.cert_pem, pki.tls_ca.cert_pem]
    peer = tls_peer_from_extension(_extension(pki, chain), ctx)
    assert peer.authentication == "certificate"
    assert peer.identities is not None and peer.identities.uris == ("urn:capif:rof:rof-1",)
    assert peer.channel_binding is not None  # from the certificate the context presents

    app = WhoAmI()
    middleware = Capif8secMiddleware(app, context=ctx)
    scope = _http(extensions={"tls": _extension(pki, chain)})
    status, body = _status(_call(middleware, scope))
    assert (status, body["identity"]) == (200, "urn:capif:rof:rof-1")

    stranger = TestPKI().client_cert("rof-1")
    bad = {
        "another PKI": _extension(
            pki, [stranger.cert_pem, stranger.intermediates[0].public_bytes(Encoding.PEM)]
        ),
        "TLS 1.1": _extension(pki, chain, tls_version=0x0302),
        "a CBC suite": _extension(pki, chain, tls_version=0x0303, cipher_suite=0xC013),
        "no certificate": _extension(pki, []),
        "a server error": _extension(pki, chain, client_cert_error="expired"),
        "garbage": _extension(pki, chain, client_cert_chain=["not a certificate"]),
    }
    for name, ext in bad.items():
        with pytest.raises(HandshakeRejected):
            tls_peer_from_extension(ext, ctx)
        status, body = _status(_call(middleware, _http(extensions={"tls": ext})))
        assert status == 403, name
    # the extension alone is not trusted without the context to check it against
    status, _ = _status(_call(Capif8secMiddleware(app), scope))
    assert status == 500
    assert app.calls == 1
    with pytest.raises(TlsConfigError):
        tls_peer_from_extension(_extension(pki, chain), rof_client(pki))


def test_the_tls_extension_without_client_certificates_leads_to_scram(pki: TestPKI) -> None:
    ctx = in_channel_server(pki)
    ccf = pki.server_cert(CCF)
    ext = _extension(pki, [], server_cert=ccf.cert_pem.decode())
    peer = tls_peer_from_extension(ext, ctx)
    assert peer.authentication == "none" and peer.channel_binding is not None
    middleware = Capif8secMiddleware(WhoAmI(), context=ctx, in_channel=[scram_server()])
    sent = _call(middleware, _http(extensions={"tls": ext}))
    assert sent[0]["status"] == 401
    assert (b"www-authenticate", b'SCRAM-SHA-256-PLUS realm="capif8"') in sent[0]["headers"]


def test_websocket_lifespan_and_other_scopes() -> None:
    app = WhoAmI()
    middleware = Capif8secMiddleware(app)
    sent = _call(middleware, {"type": "websocket", "path": "/"})
    assert sent == [{"type": "websocket.close", "code": 1008}]
    lifespan: list[Any] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    out: list[Any] = []

    async def receive() -> Any:
        return lifespan.pop(0)

    async def send(message: Any) -> None:
        out.append(message)

    asyncio.run(middleware({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in out] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert _call(middleware, {"type": "something-else"}) == []
    assert app.calls == 0
    with pytest.raises(UsageError):
        authenticated_peer({"type": "http", "extensions": {EXTENSION: {}}})


def test_a_plain_uvicorn_server_fails_closed(pki: TestPKI, tmp_path: Path) -> None:
    """uvicorn with its own TLS files (no capif8sec helper): the middleware cannot know the
    peer, so every request is a 500 problem and the app is never called."""
    uvicorn = pytest.importorskip("uvicorn", reason="the asgi-uvicorn extra is not installed")
    pytest.importorskip("httpx", reason="the httpx extra is not installed")
    from capif8sec.integrations import httpx as capif_httpx

    pki.server_cert(CCF).write(tmp_path / "ccf.pem", tmp_path / "ccf.key")
    app = WhoAmI()
    config = uvicorn.Config(
        Capif8secMiddleware(app),
        ssl_certfile=tmp_path / "ccf.pem",
        ssl_keyfile=tmp_path / "ccf.key",
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        ctx = rof_client(pki, None)
        with capif_httpx.client(ctx, timeout=TIMEOUT) as client:
            response = client.get(f"https://127.0.0.1:{sock.getsockname()[1]}/whoami")
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()
    assert app.calls == 0


def test_the_server_helpers_take_only_capif8sec_server_contexts(pki: TestPKI) -> None:
    pytest.importorskip("uvicorn", reason="the asgi-uvicorn extra is not installed")
    pytest.importorskip("hypercorn", reason="the asgi-hypercorn extra is not installed")
    from capif8sec.integrations import hypercorn as capif_hypercorn
    from capif8sec.integrations import uvicorn as capif_uvicorn

    app = WhoAmI()
    for bad in (ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), rof_client(pki)):
        with pytest.raises(TlsConfigError):
            capif_uvicorn.config(app, bad)  # type: ignore[arg-type]
        with pytest.raises(TlsConfigError):
            capif_hypercorn.Config(bad)  # type: ignore[arg-type]
    with pytest.raises(TlsConfigError, match="ssl_certfile"):
        capif_uvicorn.config(app, mtls_server(pki), ssl_certfile="x.pem")
    config = capif_uvicorn.config(app, mtls_server(pki))
    config.load()
    assert config.ssl is not None and config.ssl.sslobject_class.__name__ == "CheckedSSLObject"
    hconfig = capif_hypercorn.Config(mtls_server(pki))
    assert hconfig.ssl_enabled and hconfig.create_ssl_context() is not None

    async def bad_setting() -> None:
        await capif_hypercorn.serve(app, mtls_server(pki), certfile="x.pem")

    with pytest.raises(TlsConfigError, match="certfile"):
        asyncio.run(bad_setting())

    async def unknown_setting() -> None:
        await capif_hypercorn.serve(app, mtls_server(pki), no_such_setting=1)

    with pytest.raises(UsageError):
        asyncio.run(unknown_setting())


def test_a_uvicorn_without_ssl_context_factory_is_refused(
    pki: TestPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn before 0.47 takes certificate files only: refuse rather than serve unchecked."""
    uvicorn = pytest.importorskip("uvicorn", reason="the asgi-uvicorn extra is not installed")
    from capif8sec.integrations import uvicorn as capif_uvicorn

    class OldConfig:
        def __init__(self, app: Any, ssl_certfile: str | None = None) -> None:
            raise AssertionError("not reached")

    monkeypatch.setattr(uvicorn, "Config", OldConfig)
    with pytest.raises(TlsConfigError, match=r"0\.47"):
        capif_uvicorn.config(WhoAmI(), mtls_server(pki))
