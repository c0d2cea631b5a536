"""An ROF CAPIF-8 service on hypercorn, and the CCF's client on aiohttp: one command, loopback.

    python examples/rof-hypercorn/rof_hypercorn.py

The reverse direction of CAPIF-8: the CCF (the TLS client, with its certificate) asks the ROF
(the TLS server) for a resource owner's authorization.  Mints a test PKI into a temporary
directory, starts hypercorn on 127.0.0.1 (port 0) with the ROF's certificate and mutual TLS,
and plays the CCF with aiohttp.  The ROF's ``RofEndpoint`` checks every
ResourceOwnerAuthorizationRequest against its ``[[ccf]]`` rules (``MessageGuard.check_request``)
before its ``decide`` answers; the CCF checks the ROF's certificate identity and the answer
(``MessageGuard.check_response``).  Exits 0 only if every case had the expected outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from pathlib import Path

import aiohttp

from capif8sec import tls
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.capif8 import (
    MessageGuard,
    MessageRefused,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
)
from capif8sec.integrations import aiohttp as capif_aiohttp
from capif8sec.integrations import hypercorn as capif_hypercorn
from capif8sec.integrations.asgi import Capif8secMiddleware, Receive, Scope, Send
from capif8sec.integrations.azf import REQUESTS_PATH, RofEndpoint
from capif8sec.policy import PolicyEngine
from capif8sec.testing import IssuedCert, TestPKI

HERE = Path(__file__).parent
ROF = "rof-1.capif.example"
CCF = "ccf.capif.example"


def _time(days: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def authorization_request(owner: str) -> ResourceOwnerAuthorizationRequest:
    """What the CCF asks: may INV-42 read the owner's monitoring events?"""
    return ResourceOwnerAuthorizationRequest.from_dict(
        {
            "requestId": f"req-{owner}",
            "apiInvokerInfo": {"apiInvokerId": "INV-42", "apiInvokerName": "Weather app"},
            "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
            "purposeOfDataProcessing": "service-assurance",
            "resOwnerId": owner,
            "requestedItems": [{"apiName": "3gpp-monitoring-event", "operations": ["read"]}],
            "expiry": _time(60),
        }
    )


def decide(request: ResourceOwnerAuthorizationRequest) -> ResourceOwnerAuthorizationResponse:
    """The resource owner's decision (the ROF's application logic): grant read for 30 days."""
    return ResourceOwnerAuthorizationResponse.from_dict(
        {
            "requestId": request.request_id,
            "resOwnerId": request.res_owner_id,
            "expiry": _time(30),
            "decisions": [{"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read"]}],
        }
    )


async def no_other_paths(scope: Scope, receive: Receive, send: Send) -> None:
    """Everything but the CAPIF-8 endpoint: 404."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def main() -> int:
    pki_dir = Path(tempfile.mkdtemp(prefix="capif8sec-example-"))
    pki = TestPKI()
    files = pki.write(pki_dir)
    # The ROF serves with a server certificate naming its host and its ROF URI; the CCF calls
    # with a client certificate naming ccf.capif.example.
    pki.server_cert(ROF, uris=["urn:capif:rof:rof-1"]).write(
        pki_dir / "rof.pem", pki_dir / "rof.key"
    )
    ccf_cert = pki.tls_ca.issue(pki.spec("client", uris=(), dns_names=(CCF,)))
    ccf_cert.write(pki_dir / "ccf-client.pem", pki_dir / "ccf-client.key")
    other_ccf = pki.tls_ca.issue(pki.spec("client", uris=(), dns_names=("ccf-2.capif.example",)))
    stranger = TestPKI().tls_ca.issue(pki.spec("client", uris=(), dns_names=(CCF,)))

    anchors = files["root-ca.pem"].read_bytes()
    crls = [files["tls-ca.crl.pem"].read_bytes()]
    rof_ctx = tls.server_context(
        present=tls.Identity.from_files(pki_dir / "rof.pem", pki_dir / "rof.key"),
        verify=tls.PeerVerification(anchors, crls=crls),
    )
    rof_guard = MessageGuard(PolicyEngine.from_file(HERE / "rof-policy.toml"))
    app = Capif8secMiddleware(no_other_paths, endpoints=[RofEndpoint(rof_guard, decide)])

    ccf_guard = MessageGuard(PolicyEngine.from_file(HERE / "ccf-policy.toml"))

    async def ask(port: int, cert: IssuedCert, owner: str) -> str:
        """The CCF asks the ROF; checks who answered and what."""
        ctx = tls.client_context(
            present=tls.Identity(cert.chain_pem, cert.key_pem),
            verify=tls.PeerVerification(anchors, crls=crls, expected_identity=ROF),
        )
        request = authorization_request(owner)
        url = f"https://127.0.0.1:{port}{REQUESTS_PATH}"
        try:
            async with (
                capif_aiohttp.session(ctx) as session,
                session.post(url, data=request.to_json(), headers=JSON) as answer,
            ):
                body = await answer.read()
                if answer.status != 200:
                    return f"{answer.status} {(await answer.json())['cause']}"
                rof = CertificateAuthenticator().authenticate(capif_aiohttp.tls_peer(answer))
        except aiohttp.ClientError:  # TLS 1.3: the server's alert comes after the handshake
            return "refused in the TLS handshake"
        response = ResourceOwnerAuthorizationResponse.from_json(body)
        try:
            ccf_guard.check_response(rof, response, request, dt.datetime.now(dt.UTC))
        except MessageRefused as exc:
            return f"answer refused by the CCF: {exc.reason}"
        granted = ",".join(response.decisions[0].scope or ())
        return f"200 granted {granted} (answered by {rof.identity})"

    ports: list[int] = []
    stop = asyncio.Event()
    server = asyncio.create_task(
        capif_hypercorn.serve(
            app, rof_ctx, on_ready=lambda _h, p: ports.append(p), stop=stop, errorlog=None
        )
    )
    while not ports:
        await asyncio.sleep(0.01)
    cases = [
        ("the home CCF asks about an owner the ROF serves", ccf_cert, "msisdn-491700000001",
         "200 granted read (answered by urn:capif:rof:rof-1)"),
        ("the home CCF asks about another owner", ccf_cert, "msisdn-491800000009",
         "403 owner-not-allowed"),
        ("a CCF the ROF does not accept", other_ccf, "msisdn-491700000001",
         "403 ccf-not-accepted"),
        ("a client certificate from an untrusted CA", stranger, "msisdn-491700000001",
         "refused in the TLS handshake"),
        ("an answer the CCF's policy does not allow", ccf_cert, "msisdn-491700000002",
         "answer refused by the CCF: owner-not-allowed"),
    ]  # fmt: skip
    failures = 0
    try:
        for title, cert, owner, expected in cases:
            got = await ask(ports[0], cert, owner)
            failures += got != expected
            print(f"{'ok  ' if got == expected else 'FAIL'} {title:48} -> {got}")
    finally:
        stop.set()
        await server
    print("all outcomes as expected" if not failures else f"{failures} unexpected outcome(s)")
    return 1 if failures else 0


JSON = {"Content-Type": "application/json"}

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
