"""A CCF (AzF) CAPIF-8 service on uvicorn, and ROF clients on httpx: one command, loopback only.

    python examples/ccf-azf-uvicorn/ccf_azf_uvicorn.py

Mints a test PKI into a temporary directory, starts two uvicorn listeners on 127.0.0.1 (port
0) -- one requiring ROF client certificates (mutual TLS), one authenticating ROFs by password
(SCRAM-SHA-256-PLUS over RFC 7804 headers) -- and plays the ROF side with httpx: an ROF delivers
its ResourceOwnerAuthorizationResponse, and is refused where the policy says so.  Prints one
line per case; exits 0 only if every case had the expected outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from capif8sec import tls
from capif8sec.auth.http import HttpScramServer
from capif8sec.auth.scram import ScramAuthenticator, make_verifier
from capif8sec.auth.stores import MemoryStore
from capif8sec.capif8 import MessageGuard, ResourceOwnerAuthorizationRequest
from capif8sec.integrations import httpx as capif_httpx
from capif8sec.integrations import uvicorn as capif_uvicorn
from capif8sec.integrations.asgi import (
    Capif8secMiddleware,
    Receive,
    Scope,
    Send,
    authenticated_peer,
)
from capif8sec.integrations.azf import RESPONSES_PATH, Capif8Endpoint
from capif8sec.integrations.httpx import ScramAuth
from capif8sec.policy import PolicyEngine
from capif8sec.testing import TestPKI

HERE = Path(__file__).parent
CCF = "ccf.capif.example"
OWNERS = ("msisdn-491700000001", "msisdn-491700000002", "msisdn-491700000003")


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """The CCF's own application: here just 'who am I talking to'."""
    if scope["type"] != "http":
        return
    peer = authenticated_peer(scope)
    body = f'{{"identity": "{peer.identity}", "method": "{peer.method}"}}'.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def requests_sent() -> list[ResourceOwnerAuthorizationRequest]:
    """The authorization requests this CCF sent earlier (one per owner)."""
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ResourceOwnerAuthorizationRequest.from_dict(
            {
                "requestId": f"req-{i}",
                "apiInvokerInfo": {"apiInvokerId": "INV-42"},
                "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
                "purposeOfDataProcessing": "service-assurance",
                "resOwnerId": owner,
                "requestedItems": [{"apiName": "3gpp-monitoring-event", "operations": ["read"]}],
                "expiry": expiry,
            }
        )
        for i, owner in enumerate(OWNERS)
    ]


def response_for(request: ResourceOwnerAuthorizationRequest) -> dict[str, Any]:
    """The ROF's answer: the owner grants read access for 30 days."""
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    return {
        "requestId": request.request_id,
        "resOwnerId": request.res_owner_id,
        "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "decisions": [{"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read"]}],
    }


async def main() -> int:
    pki_dir = Path(tempfile.mkdtemp(prefix="capif8sec-example-"))
    files = TestPKI().write(pki_dir)  # root-ca.pem, ccf-server.pem/.key, rof-client.pem/.key, ...
    verify = tls.PeerVerification(
        files["root-ca.pem"].read_bytes(), crls=[files["tls-ca.crl.pem"].read_bytes()]
    )
    ccf_identity = tls.Identity.from_files(files["ccf-server.pem"], files["ccf-server.key"])
    mtls = tls.server_context(present=ccf_identity, verify=verify)
    in_channel = tls.server_context(
        present=ccf_identity, verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED
    )

    password = secrets.token_urlsafe(16)
    store = MemoryStore()
    store.add_scram(make_verifier("rof-pw", password, iterations=4096))
    scram = HttpScramServer(ScramAuthenticator(store).exchange, realm="capif8")
    sent = requests_sent()
    endpoint = Capif8Endpoint(MessageGuard(PolicyEngine.from_file(HERE / "policy.toml")), sent)
    app = Capif8secMiddleware(whoami, endpoints=[endpoint], in_channel=[scram])

    ports: dict[str, int] = {}
    stop = asyncio.Event()

    def listening(name: str) -> Callable[[str, int], None]:
        return lambda _host, port: ports.__setitem__(name, port)

    servers = [
        asyncio.create_task(
            capif_uvicorn.serve(app, ctx, on_ready=listening(name), stop=stop, log_level="warning")
        )
        for name, ctx in (("mtls", mtls), ("password", in_channel))
    ]
    while len(ports) < 2:
        await asyncio.sleep(0.01)

    client_verify = tls.PeerVerification(
        files["root-ca.pem"].read_bytes(),
        crls=[files["tls-ca.crl.pem"].read_bytes()],
        expected_identity=CCF,
    )
    rof_1 = tls.client_context(
        present=tls.Identity.from_files(files["rof-client.pem"], files["rof-client.key"]),
        verify=client_verify,
    )
    anonymous = tls.client_context(present=tls.PRESENT_NO_CERTIFICATE, verify=client_verify)

    async def post(ctx: tls.CapifContext, port: str, owner: int, auth: Any) -> str:
        """One ROF delivers its answer to the CCF's request about OWNERS[owner]."""
        url = f"https://127.0.0.1:{ports[port]}{RESPONSES_PATH}"
        async with capif_httpx.async_client(ctx, timeout=10) as client:
            try:
                answer = await client.post(url, json=response_for(sent[owner]), auth=auth)
            except httpx.TransportError:  # TLS 1.3: the alert comes after Finished
                return "refused in the TLS handshake"
        if answer.status_code == 204:
            return "204 accepted"
        problem = answer.json()  # RFC 9457 problem details
        return f"{answer.status_code} {problem.get('cause') or problem['detail']}"

    good, wrong = ScramAuth("rof-pw", password), ScramAuth("rof-pw", "not-the-password")
    cases = [
        ("rof-1 (certificate) answers for its owner", "204 accepted", rof_1, "mtls", 0, None),
        ("rof-1 (certificate), another owner", "403 owner-not-allowed", rof_1, "mtls", 2, None),
        ("no client certificate on the mTLS port", "refused in the TLS handshake",
         anonymous, "mtls", 0, None),
        ("rof-pw (SCRAM-SHA-256-PLUS) for its owner", "204 accepted",
         anonymous, "password", 1, good),
        ("rof-pw with a wrong password", "401 authentication failed",
         anonymous, "password", 1, wrong),
        ("no credentials at all", "401 authentication required",
         anonymous, "password", 1, None),
    ]  # fmt: skip
    failures = 0
    try:
        for title, expected, ctx, port, owner, auth in cases:
            got = await post(ctx, port, owner, auth)
            failures += got != expected
            print(f"{'ok  ' if got == expected else 'FAIL'} {title:45} -> {got}")
    finally:
        stop.set()
        await asyncio.gather(*servers)
    print("all outcomes as expected" if not failures else f"{failures} unexpected outcome(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
