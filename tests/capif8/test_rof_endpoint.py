"""The ROF side of the reference endpoint: the CCF's authorization requests (R56, R59).

Sans-I/O: :meth:`AzfApp.respond` with the TLS peer the post-handshake check would have made.
The same endpoint runs over real TLS in ``capif8sec demo`` (tests/test_demo.py).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from capif8_helpers import NOW, OWNER_A, REQUEST, fresh

from capif8sec.capif8 import (
    ItemDecision,
    MessageGuard,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
)
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.integrations.azf import REQUESTS_PATH, AzfApp, Request, RofEndpoint
from capif8sec.policy import PolicyEngine, loads_policy
from capif8sec.tls.check import TlsPeer

POLICY = """
[[ccf]]
id = "home-ccf"
identities = ["dns:ccf.capif.example"]
"""


def _ccf(dns: str) -> TlsPeer:
    ids = CertificateIdentities((), (dns,))
    return TlsPeer(
        "client", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "certificate", ids, None, None, None
    )


def _answer(request: ResourceOwnerAuthorizationRequest) -> ResourceOwnerAuthorizationResponse:
    return ResourceOwnerAuthorizationResponse(
        request.request_id,
        request.res_owner_id,
        (ItemDecision("3gpp-monitoring-event", granted=True, scope=("read",)),),
        NOW + dt.timedelta(days=1),
    )


def _app(decide: Any = _answer) -> AzfApp:
    guard = MessageGuard(PolicyEngine(loads_policy(POLICY)))
    return AzfApp(capif8=RofEndpoint(guard, decide, clock=lambda: NOW))


def _post(app: AzfApp, peer: TlsPeer, body: bytes) -> tuple[int, dict[str, Any]]:
    raw = app.respond(Request("POST", REQUESTS_PATH, {}), peer, body)
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload) if payload else {}


def test_an_accepted_ccf_gets_the_owners_answer() -> None:
    status, body = _post(_app(), _ccf("ccf.capif.example"), json.dumps(fresh(REQUEST)).encode())
    assert status == 200
    answer = ResourceOwnerAuthorizationResponse.from_dict(body)
    assert (answer.request_id, answer.res_owner_id) == ("req-0001", OWNER_A)


def test_a_ccf_the_rof_does_not_accept_is_refused() -> None:
    status, body = _post(_app(), _ccf("ccf-2.capif.example"), json.dumps(fresh(REQUEST)).encode())
    assert (status, body["cause"]) == (403, "ccf-not-accepted")


def test_an_expired_request_is_refused() -> None:
    request = fresh(REQUEST)
    request["expiry"] = "2026-01-01T00:00:00Z"  # before NOW
    status, body = _post(_app(), _ccf("ccf.capif.example"), json.dumps(request).encode())
    assert (status, body["cause"]) == (403, "expired")


@pytest.mark.parametrize("body", [b"", b"{", b"[]", json.dumps({"requestId": "x"}).encode()])
def test_malformed_requests_are_400(body: bytes) -> None:
    status, problem = _post(_app(), _ccf("ccf.capif.example"), body)
    assert status == 400 and problem["title"] == "Bad Request"


def test_an_application_answering_another_request_gets_a_500() -> None:
    def wrong(request: ResourceOwnerAuthorizationRequest) -> ResourceOwnerAuthorizationResponse:
        return _answer(
            ResourceOwnerAuthorizationRequest.from_dict({**fresh(REQUEST), "requestId": "other"})
        )

    status, problem = _post(
        _app(wrong), _ccf("ccf.capif.example"), json.dumps(fresh(REQUEST)).encode()
    )
    assert status == 500 and "req-0001" not in json.dumps(problem)


def test_without_a_certificate_no_request_is_read() -> None:
    peer = TlsPeer("client", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "none", None, None, None, None)
    status, _ = _post(_app(), peer, json.dumps(fresh(REQUEST)).encode())
    assert status == 401


def test_an_application_error_is_a_500_over_real_tls() -> None:
    """A ``decide`` that raises: the peer gets a 500 problem (no details), the server lives on."""
    import asyncio

    from capif8sec import tls
    from capif8sec.integrations import aio
    from capif8sec.integrations.azf import serve
    from capif8sec.testing import TestPKI

    pki = TestPKI()
    rof = pki.server_cert("rof-a.capif.example")
    verify = tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()])

    def broken(request: ResourceOwnerAuthorizationRequest) -> ResourceOwnerAuthorizationResponse:
        raise RuntimeError("the owner database is down: secret-detail")

    guard = MessageGuard(PolicyEngine(loads_policy(POLICY)))
    app = AzfApp(capif8=RofEndpoint(guard, broken, clock=lambda: NOW))
    server_ctx = tls.server_context(present=tls.Identity(rof.chain_pem, rof.key_pem), verify=verify)
    client_cert = pki.client_cert("ccf", dns_names=("ccf.capif.example",))
    client_ctx = tls.client_context(
        present=tls.Identity(client_cert.chain_pem, client_cert.key_pem), verify=verify
    )
    body = json.dumps(fresh(REQUEST)).encode()

    async def run() -> list[bytes]:
        stop = asyncio.Event()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(server_ctx, app=app, on_ready=lambda h, p: ready.set_result(p), stop=stop)
        )
        port = await asyncio.wait_for(ready, 5)
        answers = []
        for _ in range(2):  # the server still answers after the error
            reader, writer, _ = await aio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="rof-a.capif.example"
            )
            writer.write(
                f"POST {REQUESTS_PATH} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            answers.append(await asyncio.wait_for(reader.read(), 5))
            writer.close()
        stop.set()
        await task
        return answers

    for raw in asyncio.run(run()):
        assert raw.startswith(b"HTTP/1.1 500 ")
        assert b"secret-detail" not in raw and b"RuntimeError" not in raw
