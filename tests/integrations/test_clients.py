"""The httpx and aiohttp client helpers: the post-handshake check runs before the first request
byte, so a server that fails it never sees a request (real handshakes over loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from integrations_helpers import CCF, TIMEOUT, recording_tls_server, rof_client

from capif8sec import tls
from capif8sec.errors import HandshakeRejected, TlsConfigError
from capif8sec.integrations.handshake import (
    CheckedSSLObject,
    CheckedSSLSocket,
    CheckFailed,
    check_during_handshake,
    peer_of,
)
from capif8sec.testing import IssuedCert, TestPKI

pytestmark = pytest.mark.timeout(60)

httpx = pytest.importorskip("httpx", reason="the httpx extra is not installed")
aiohttp = pytest.importorskip("aiohttp", reason="the aiohttp extra is not installed")

from capif8sec.integrations import aiohttp as capif_aiohttp  # noqa: E402
from capif8sec.integrations import httpx as capif_httpx  # noqa: E402


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def _sync_httpx(ctx: tls.CapifContext, port: int) -> Any:
    with capif_httpx.client(ctx, timeout=TIMEOUT) as client:
        response = client.get(f"https://127.0.0.1:{port}/whoami")
        return response.status_code, capif_httpx.tls_peer(response)


def _async_httpx(ctx: tls.CapifContext, port: int) -> Any:
    async def go() -> Any:
        async with capif_httpx.async_client(ctx, timeout=TIMEOUT) as client:
            response = await client.get(f"https://127.0.0.1:{port}/whoami")
            return response.status_code, capif_httpx.tls_peer(response)

    return asyncio.run(go())


def _aiohttp(ctx: tls.CapifContext, port: int) -> Any:
    async def go() -> Any:
        url = f"https://127.0.0.1:{port}/whoami"
        async with capif_aiohttp.session(ctx) as session, session.get(url) as response:
            return response.status, capif_aiohttp.tls_peer(response)

    return asyncio.run(go())


CLIENTS: dict[str, Callable[[tls.CapifContext, int], Any]] = {
    "httpx": _sync_httpx,
    "httpx-async": _async_httpx,
    "aiohttp": _aiohttp,
}
REFUSED = (httpx.ConnectError, aiohttp.ClientError)


def _bad_servers(pki: TestPKI) -> dict[str, IssuedCert]:
    broken = pki.breaking("ee.crl_distribution_point", role="server")
    return {
        # a conformant certificate from a CA the client does not trust (OpenSSL refuses it)
        "untrusted-ca": TestPKI().server_cert(CCF),
        # trusted and conformant, but for another name (the RFC 9525 check refuses it)
        "wrong-identity": pki.server_cert("other.capif.example"),
        # trusted and named right, but without cRLDistributionPoints (the TS 33.310 check)
        "non-conformant": IssuedCert(broken.cert, broken.private_key, (pki.tls_ca.cert,)),
    }


@pytest.mark.parametrize("server", ["untrusted-ca", "wrong-identity", "non-conformant"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_server_failing_the_check_gets_no_request_byte(
    client: str, server: str, pki: TestPKI, tmp_path: Path
) -> None:
    cert = _bad_servers(pki)[server]
    with recording_tls_server(cert, tmp_path) as (port, received), pytest.raises(REFUSED):
        CLIENTS[client](rof_client(pki), port)
    assert received == [b""], f"{server}: the server got {received!r}"


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_conformant_server_gets_the_request(client: str, pki: TestPKI, tmp_path: Path) -> None:
    """The control: the same recording server with a conformant certificate sees the request,
    and the client sees the checked server."""
    with recording_tls_server(pki.server_cert(CCF), tmp_path) as (port, received):
        status, peer = CLIENTS[client](rof_client(pki), port)
    assert status == 200
    assert received[0].startswith(b"GET /whoami HTTP/1.1\r\n")
    assert peer.side == "client" and peer.authentication == "certificate"
    assert CCF in peer.identities.dns_names
    assert peer.channel_binding is not None


def test_the_failure_is_a_handshake_rejection(pki: TestPKI, tmp_path: Path) -> None:
    """The cause chain says why (here: the name), without secrets."""
    server = recording_tls_server(pki.server_cert("other.capif.example"), tmp_path)
    with server as (port, _), pytest.raises(httpx.ConnectError) as info:
        _sync_httpx(rof_client(pki), port)
    cause: BaseException | None = info.value
    while cause is not None and not isinstance(cause, CheckFailed):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, HandshakeRejected)
    assert "does not match 'ccf.capif.example'" in str(cause)


def test_only_capif8sec_client_contexts(pki: TestPKI) -> None:
    import ssl

    with pytest.raises(TlsConfigError):
        capif_httpx.client(ssl.create_default_context())  # type: ignore[arg-type]
    server_cert = pki.server_cert()
    server_side = tls.server_context(
        present=tls.Identity(server_cert.chain_pem, server_cert.key_pem),
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
    )
    with pytest.raises(TlsConfigError):
        capif_httpx.async_client(server_side)
    with pytest.raises(TlsConfigError, match="verify"):
        capif_httpx.client(rof_client(pki), verify=False)
    with pytest.raises(TlsConfigError):
        capif_aiohttp.connector(rof_client(pki), ssl=False)
    with pytest.raises(TlsConfigError):
        check_during_handshake(ssl.create_default_context())


def test_check_during_handshake_sets_the_classes(pki: TestPKI) -> None:
    ctx = check_during_handshake(rof_client(pki))
    assert ctx.sslobject_class is CheckedSSLObject
    assert ctx.sslsocket_class is CheckedSSLSocket
    assert check_during_handshake(ctx) is ctx
    with pytest.raises(HandshakeRejected, match="no checked TLS connection"):
        peer_of(object())


def test_a_context_keeps_its_own_ssl_classes(pki: TestPKI) -> None:
    """The TLS-level PSK server context brings its own SSLObject class; the check wraps it."""
    import ssl

    class Own(ssl.SSLObject):
        pass

    ctx = rof_client(pki)
    ctx.sslobject_class = Own
    check_during_handshake(ctx)
    assert issubclass(ctx.sslobject_class, Own)
    assert issubclass(ctx.sslobject_class, CheckedSSLObject)
    assert check_during_handshake(ctx).sslobject_class is ctx.sslobject_class
