"""The ASGI middleware on real uvicorn and hypercorn servers with capif8sec's server context:
real handshakes over loopback, certificate and SCRAM ROFs, CAPIF-8 policy, problem details."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any

import pytest
from integrations_helpers import (
    CCF,
    OTHER_OWNER,
    OWNER,
    PASSWORD,
    POLICY,
    ROF,
    TIMEOUT,
    Serve,
    WhoAmI,
    identity,
    in_channel_server,
    mtls_server,
    request_json,
    response_json,
    rof_client,
    running,
    scram_server,
    verification,
)

from capif8sec import tls
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.credentials import PskCredential
from capif8sec.auth.stores import MemoryStore
from capif8sec.capif8 import MessageGuard, ResourceOwnerAuthorizationRequest
from capif8sec.capif8.messages import ResourceOwnerAuthorizationResponse
from capif8sec.integrations.asgi import Capif8secMiddleware
from capif8sec.integrations.azf import (
    REQUESTS_PATH,
    RESPONSES_PATH,
    REVOCATIONS_PATH,
    Capif8Endpoint,
    RofEndpoint,
)
from capif8sec.policy import PolicyEngine, loads_policy
from capif8sec.testing import IssuedCert, TestPKI
from capif8sec.tls.psk import HAS_PSK, psk_client_context, psk_server_context

pytestmark = pytest.mark.timeout(120)

httpx = pytest.importorskip("httpx", reason="the httpx extra is not installed")
aiohttp = pytest.importorskip("aiohttp", reason="the aiohttp extra is not installed")
pytest.importorskip("uvicorn", reason="the asgi-uvicorn extra is not installed")
pytest.importorskip("hypercorn", reason="the asgi-hypercorn extra is not installed")

from capif8sec.integrations import aiohttp as capif_aiohttp  # noqa: E402
from capif8sec.integrations import httpx as capif_httpx  # noqa: E402
from capif8sec.integrations import hypercorn as capif_hypercorn  # noqa: E402
from capif8sec.integrations import uvicorn as capif_uvicorn  # noqa: E402

SERVERS: dict[str, tuple[Serve, dict[str, Any]]] = {
    "uvicorn": (capif_uvicorn.serve, {"log_level": "warning"}),
    "hypercorn": (capif_hypercorn.serve, {"errorlog": None}),
}


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> tuple[Serve, dict[str, Any]]:
    return SERVERS[request.param]


def _guard() -> MessageGuard:
    return MessageGuard(PolicyEngine(loads_policy(POLICY)))


def _ccf_app(app: WhoAmI, *, scram: bool = False) -> Capif8secMiddleware:
    outstanding = [
        ResourceOwnerAuthorizationRequest.from_dict(request_json(owner))
        for owner in (OWNER, OTHER_OWNER)
    ]
    endpoint = Capif8Endpoint(_guard(), outstanding=outstanding[:1])
    endpoint.expect(ResourceOwnerAuthorizationRequest.from_dict(request_json(OTHER_OWNER, "req-2")))
    return Capif8secMiddleware(
        app, endpoints=[endpoint], in_channel=[scram_server()] if scram else ()
    )


def _problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response.content)
    assert body["status"] == response.status_code
    return body


def test_a_certificate_rof_and_the_ccf_policy(
    server: tuple[Serve, dict[str, Any]], pki: TestPKI
) -> None:
    """R56, R59: the identity from the client certificate reaches the app; the CAPIF-8
    endpoint's guard accepts the ROF's own owner and refuses another's with a 403 problem."""
    serve, settings = server
    app = WhoAmI()
    with running(serve, _ccf_app(app), mtls_server(pki), **settings) as port:
        base = f"https://127.0.0.1:{port}"
        with capif_httpx.client(rof_client(pki), base_url=base, timeout=TIMEOUT) as client:
            whoami = client.get("/whoami")
            assert whoami.status_code == 200, whoami.text
            assert whoami.json() == {"identity": "urn:capif:rof:rof-1", "method": "certificate"}
            ccf = capif_httpx.tls_peer(whoami).identities
            assert ccf is not None and CCF in ccf.dns_names

            accepted = client.post(RESPONSES_PATH, json=response_json())
            assert accepted.status_code == 204, accepted.text
            refused = client.post(RESPONSES_PATH, json=response_json(OTHER_OWNER, "req-2"))
            assert refused.status_code == 403
            assert _problem(refused)["cause"] == "owner-not-allowed"
            revoke = {
                "resOwnerId": OTHER_OWNER,
                "apiInvokerId": "INV-42",
                "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
                "reason": "the owner withdrew consent",
                "allItems": True,
            }
            assert _problem(client.post(REVOCATIONS_PATH, json=revoke))["cause"] == (
                "owner-not-allowed"
            )
            assert client.post(RESPONSES_PATH, content=b"{").status_code == 400
            assert _problem(client.get(RESPONSES_PATH))["status"] == 405
            too_big = client.post(RESPONSES_PATH, content=b" " * (64 * 1024 + 1))
            assert _problem(too_big)["status"] == 413
    assert app.calls == 1  # the CAPIF-8 paths never reach the app


def test_no_client_certificate_is_refused(
    server: tuple[Serve, dict[str, Any]], pki: TestPKI
) -> None:
    """A client without a certificate (or with a non-conformant one) never reaches the app."""
    serve, settings = server
    app = WhoAmI()
    broken = pki.breaking("ee.crl_distribution_point", role="client")
    non_conformant = tls.client_context(
        present=identity(IssuedCert(broken.cert, broken.private_key, (pki.tls_ca.cert,))),
        verify=verification(pki, CCF),
    )
    with running(serve, _ccf_app(app), mtls_server(pki), **settings) as port:
        for ctx in (rof_client(pki, None), non_conformant):
            refused = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
            with capif_httpx.client(ctx, timeout=TIMEOUT) as client, pytest.raises(refused):
                client.get(f"https://127.0.0.1:{port}/whoami")
        with capif_httpx.client(rof_client(pki), timeout=TIMEOUT) as client:  # still serving
            assert client.get(f"https://127.0.0.1:{port}/whoami").status_code == 200
    assert app.calls == 1


def test_scram_rof(server: tuple[Serve, dict[str, Any]], pki: TestPKI) -> None:
    """R52-R54: SCRAM-SHA-256-PLUS over RFC 7804 headers; a wrong password is a 401 problem."""
    serve, settings = server
    app = WhoAmI()
    with running(serve, _ccf_app(app, scram=True), in_channel_server(pki), **settings) as port:
        base = f"https://127.0.0.1:{port}"
        ctx = rof_client(pki, None)
        with capif_httpx.client(ctx, base_url=base, timeout=TIMEOUT) as client:
            anonymous = client.get("/whoami")
            assert anonymous.status_code == 401
            assert _problem(anonymous)["detail"] == "authentication required"
            assert anonymous.headers["www-authenticate"] == 'SCRAM-SHA-256-PLUS realm="capif8"'

            good = capif_httpx.ScramAuth("rof-pw", PASSWORD)
            whoami = client.get("/whoami", auth=good)
            assert whoami.status_code == 200
            assert whoami.json() == {"identity": "rof-pw", "method": "password"}
            assert "authentication-info" in whoami.headers
            assert client.post(RESPONSES_PATH, json=response_json(), auth=good).status_code == 204

            wrong = client.get("/whoami", auth=capif_httpx.ScramAuth("rof-pw", "wrong"))
            assert wrong.status_code == 401
            body = _problem(wrong)
            assert body["detail"] == "authentication failed"
            assert PASSWORD not in wrong.text and "wrong" not in json.dumps(body)
    assert app.calls == 1


def test_concurrent_connections_each_see_their_own_peer(
    server: tuple[Serve, dict[str, Any]], pki: TestPKI
) -> None:
    """The checked peer travels per connection (a context variable set in the handshake):
    interleaved keep-alive connections of different ROFs never see each other's identity."""
    serve, settings = server
    app = WhoAmI()
    names = [f"rof-{i}" for i in range(4)]

    async def one(port: int, name: str) -> list[str]:
        seen = []
        async with capif_httpx.async_client(rof_client(pki, name), timeout=TIMEOUT) as client:
            for _ in range(5):
                response = await client.get(f"https://127.0.0.1:{port}/whoami")
                seen.append(response.json()["identity"])
                await asyncio.sleep(0)
        return seen

    async def all_of(port: int) -> list[list[str]]:
        return await asyncio.gather(*(one(port, name) for name in names))

    with running(serve, Capif8secMiddleware(app), mtls_server(pki), **settings) as port:
        results = asyncio.run(all_of(port))
    for name, seen in zip(names, results, strict=True):
        assert seen == [f"urn:capif:rof:{name}"] * 5


def test_the_rof_side_on_the_reverse_direction(
    server: tuple[Serve, dict[str, Any]], pki: TestPKI
) -> None:
    """The CCF (aiohttp client, with its certificate) asks the ROF (the server) for an owner's
    authorization; the ROF checks the CCF against its [[ccf]] rules; the CCF checks the answer."""
    serve, settings = server
    rof_cert = pki.server_cert(ROF, uris=["urn:capif:rof:rof-1"])
    ccf_cert = pki.tls_ca.issue(pki.spec("client", uris=(), dns_names=(CCF,)))
    other_ccf = pki.tls_ca.issue(pki.spec("client", uris=(), dns_names=("ccf-2.capif.example",)))

    def decide(request: ResourceOwnerAuthorizationRequest) -> ResourceOwnerAuthorizationResponse:
        return ResourceOwnerAuthorizationResponse.from_dict(
            response_json(request.res_owner_id, request.request_id)
        )

    app = Capif8secMiddleware(WhoAmI(), endpoints=[RofEndpoint(_guard(), decide)])

    async def ask(port: int, cert: IssuedCert) -> tuple[int, Any, Any]:
        ctx = tls.client_context(present=identity(cert), verify=verification(pki, ROF))
        async with capif_aiohttp.session(ctx) as session:
            url = f"https://127.0.0.1:{port}{REQUESTS_PATH}"
            async with session.post(url, json=request_json()) as response:
                return response.status, capif_aiohttp.tls_peer(response), await response.json()

    with running(serve, app, mtls_server(pki, rof_cert), **settings) as port:
        status, rof_peer, body = asyncio.run(ask(port, ccf_cert))
        assert status == 200, body
        rof = CertificateAuthenticator().authenticate(rof_peer)
        assert rof.identity == "urn:capif:rof:rof-1"
        answer = ResourceOwnerAuthorizationResponse.from_dict(body)
        original = ResourceOwnerAuthorizationRequest.from_dict(request_json())
        assert _guard().check_response(rof, answer, original, dt.datetime.now(dt.UTC)).allowed

        status, _, body = asyncio.run(ask(port, other_ccf))
        assert status == 403 and body["cause"] == "ccf-not-accepted"


@pytest.mark.skipif(not HAS_PSK, reason="TLS-level PSK needs ssl PSK callbacks (Python >= 3.13)")
def test_a_tls_psk_rof(server: tuple[Serve, dict[str, Any]]) -> None:
    """R42-R45: a PSK-only server context on uvicorn/hypercorn; the middleware authenticates the
    PSK identity the handshake used; a wrong key never reaches the app."""
    store = MemoryStore()
    key = secrets.token_bytes(32)
    store.add_psk(PskCredential(b"rof-psk", key, CCF, key_id="k-1"))
    serve, settings = server
    app = WhoAmI()
    ctx = psk_server_context(store=store, ccf_identity=CCF)
    with running(serve, Capif8secMiddleware(app), ctx, **settings) as port:
        url = f"https://127.0.0.1:{port}/whoami"
        good = psk_client_context(credential=PskCredential(b"rof-psk", key, CCF))
        with capif_httpx.client(good, timeout=TIMEOUT) as client:
            response = client.get(url)
        assert response.json() == {"identity": "rof-psk", "method": "psk"}
        wrong = psk_client_context(credential=PskCredential(b"rof-psk", b"\x01" * 32, CCF))
        with (
            capif_httpx.client(wrong, timeout=TIMEOUT) as client,
            pytest.raises(httpx.ConnectError),
        ):
            client.get(url)
    assert app.calls == 1
