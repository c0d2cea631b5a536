"""``capif8sec demo``: the CAPIF-8 exchange end to end, on loopback, on a freshly minted test PKI.

The demo starts, in one process and one event loop, the endpoints of the story:

- a CCF (its AzF) with three listeners: mutual TLS for ROFs with certificates; TLS-level PSK
  (Python >= 3.13); and a listener where ROFs authenticate inside the channel, by password
  (SCRAM-SHA-256-PLUS) or by an in-channel PSK proof, over RFC 7804 headers bound to the
  channel by tls-server-end-point;
- an ROF (``rof-a``) serving the CCF's authorization requests over mutual TLS.

Then it plays CAPIF-8 in both directions -- the CCF asks the ROF for a resource owner's
authorization (the CCF is the TLS client), ROFs deliver answers and revocations to the CCF (the
ROFs are the TLS clients) -- with every ROF authentication method, and it tries what the
specifications demand be refused: a TLS 1.1 client, a non-conformant certificate, a wrong PSK,
a wrong password, an ROF answering for an owner it does not serve, a CCF the ROF does not accept.
Each step states its expected outcome; the demo exits 0 only if every outcome was as expected.
Everything stays on 127.0.0.1; nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TextIO

from attrs import field, frozen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from capif8sec import tls
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.credentials import PskCredential
from capif8sec.auth.http import (
    HttpPskClient,
    HttpScramClient,
    HttpScramServer,
    http_psk_server,
)
from capif8sec.auth.inchannel import InChannelPskAuthenticator, InChannelPskClient
from capif8sec.auth.scram import ScramAuthenticator, ScramClient, make_verifier
from capif8sec.auth.stores import MemoryStore
from capif8sec.capif8 import (
    ItemDecision,
    MessageGuard,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.certs import lint
from capif8sec.errors import Capif8secError
from capif8sec.integrations import aio
from capif8sec.integrations.azf import (
    REQUESTS_PATH,
    RESPONSES_PATH,
    REVOCATIONS_PATH,
    AzfApp,
    Capif8Endpoint,
    RofEndpoint,
    serve,
)
from capif8sec.policy import Decision, PolicyEngine, loads_policy
from capif8sec.testing import TestPKI
from capif8sec.tls.psk import HAS_PSK

__all__ = ["Outcome", "run_demo"]

HOST = "127.0.0.1"
CCF = "ccf.capif.example"
ROF_A = "rof-a.capif.example"
REALM = "capif8"
TIMEOUT = 5.0
OWNERS = {"a": "msisdn-491700000001", "b": "msisdn-491700000002", "c": "msisdn-491700000003"}
#: SCRAM iterations for the demo's verifier (the library default is higher; the demo is short).
ITERATIONS = 4096

CCF_POLICY = f"""
version = "demo-ccf"

[[rule]]
id = "rof-a"
identities = ["uri:urn:capif:rof:rof-a"]
owners = ["{OWNERS["a"]}"]
operations = ["authorize", "revoke"]
methods = ["certificate"]

[[rule]]
id = "rof-b"
identities = ["scram:rof-b"]
owners = ["{OWNERS["b"]}"]
operations = ["authorize", "revoke"]
methods = ["password"]

[[rule]]
id = "rof-c"
identities = ["psk:rof-c"]
owners = ["{OWNERS["c"]}"]
operations = ["authorize", "revoke"]
methods = ["psk", "psk-in-channel"]
"""

ROF_POLICY = f"""
version = "demo-rof-a"

[[ccf]]
id = "home-ccf"
identities = ["dns:{CCF}"]
"""


@frozen
class Outcome:
    """One demo step: what was tried, what was expected, what happened."""

    step: str
    direction: str
    method: str
    expected: str
    actual: str
    detail: str
    policy: str = ""

    @property
    def ok(self) -> bool:
        """Whether the step turned out as expected."""
        return self.expected == self.actual

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the step."""
        return {
            "step": self.step,
            "direction": self.direction,
            "method": self.method,
            "expected": self.expected,
            "actual": self.actual,
            "ok": self.ok,
            "policy": self.policy,
            "detail": self.detail,
        }


# --------------------------------------------------------------------------- HTTP on loopback


@frozen
class _Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    peer: tls.TlsPeer

    def header(self, name: str) -> str:
        return ", ".join(self.headers.get(name, []))


class _Refused(Exception):
    """A connection ended without an HTTP response: the TLS layer refused it."""


async def _http(
    port: int,
    ctx: tls.CapifContext,
    server_name: str,
    method: str,
    path: str,
    body: bytes = b"",
    authorization: str | None = None,
) -> _Reply:
    """One request on one new connection (the reference endpoint closes after each)."""
    try:
        reader, writer, peer = await aio.open_connection(
            HOST, port, ssl=ctx, server_hostname=server_name, handshake_timeout=TIMEOUT
        )
    except (ssl.SSLError, OSError, Capif8secError) as exc:
        raise _Refused(f"handshake failed: {_describe(exc)}") from None
    head = f"{method} {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n"
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        writer.write(head.encode("latin-1") + b"\r\n" + body)
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)
    except (ssl.SSLError, OSError) as exc:
        raise _Refused(f"connection closed by the server: {_describe(exc)}") from None
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.wait_closed()
    if not raw:
        raise _Refused("the server closed the connection without a response")
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.lower(), []).append(value.strip())
    return _Reply(int(lines[0].split(" ")[1]), headers, payload, peer)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{type(exc).__name__} ({exc.reason})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _in_channel(
    port: int,
    ctx: tls.CapifContext,
    path: str,
    body: bytes,
    make_client: Callable[[tls.TlsPeer], HttpScramClient | HttpPskClient],
) -> _Reply:
    """RFC 7804 over three connections: challenge, first, final (with the message)."""
    challenge = await _http(port, ctx, CCF, "POST", path)
    if challenge.status != 401 or challenge.peer.channel_binding is None:
        return challenge
    client = make_client(challenge.peer)
    offers = challenge.header("www-authenticate")
    first = client.first(offers) if isinstance(client, HttpScramClient) else client.first()
    step = await _http(port, ctx, CCF, "POST", path, authorization=first)
    if step.status != 401:
        return step
    final = await _http(
        port, ctx, CCF, "POST", path, body, client.final(step.header("www-authenticate"))
    )
    if 200 <= final.status < 300:
        client.verify(final.header("authentication-info"))  # the server proved the secret too
    return final


# --------------------------------------------------------------------------- a TLS 1.1 client


def _tls11_client_hello() -> bytes:
    """A TLS 1.1 ClientHello (legacy suites, SNI), built by hand.

    Hand-made so that the attempt does not depend on what the local OpenSSL still agrees to
    offer: the server's answer alone decides the outcome.
    """
    suites = [0xC013, 0xC014, 0xC009, 0xC00A, 0x002F, 0x0035]  # ECDHE/RSA with AES-CBC-SHA
    sni_name = CCF.encode()
    sni = struct.pack("!HBH", len(sni_name) + 3, 0, len(sni_name)) + sni_name
    groups = struct.pack("!HHH", 4, 0x001D, 0x0017)  # x25519, secp256r1
    extensions = (
        struct.pack("!HH", 0x0000, len(sni))
        + sni
        + struct.pack("!HH", 0x000A, len(groups))
        + groups
        + struct.pack("!HHBB", 0x000B, 2, 1, 0)  # ec_point_formats: uncompressed
    )
    hello = (
        b"\x03\x02"  # client_version TLS 1.1
        + secrets.token_bytes(32)
        + b"\x00"  # no session id
        + struct.pack("!H", 2 * len(suites))
        + b"".join(struct.pack("!H", s) for s in suites)
        + b"\x01\x00"  # compression: null only
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


_ALERTS = {40: "handshake_failure", 70: "protocol_version", 71: "insufficient_security"}


async def _tls11_attempt(port: int) -> str:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(_tls11_client_hello())
        record = await asyncio.wait_for(reader.read(7), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if record[:1] == b"\x15" and len(record) >= 7:
        name = _ALERTS.get(record[6], f"alert {record[6]}")
        raise _Refused(f"the server answered the TLS 1.1 ClientHello with a fatal {name} alert")
    if not record:
        raise _Refused("the server closed the connection on the TLS 1.1 ClientHello")
    if record[:1] == b"\x16":
        return "the server answered the TLS 1.1 ClientHello with a handshake message"
    raise _Refused(f"the server answered with an unexpected record type {record[:1]!r}")


# --------------------------------------------------------------------------- the story


class _Log(logging.Handler):
    """Keeps what the library logs at INFO (refusal reasons, never secrets) for the table."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def refusals(self) -> list[str]:
        found = [m for m in self.messages if "refused" in m]
        self.messages.clear()
        return found


@contextlib.contextmanager
def _capture_logs() -> Iterator[_Log]:
    handler = _Log()
    logger = logging.getLogger("capif8sec")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _identity(issued: Any) -> tls.Identity:
    return tls.Identity(issued.chain_pem, issued.key_pem)


def _both_ekus() -> tuple[x509.ObjectIdentifier, ...]:
    return (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def _request(request_id: str, owner: str) -> ResourceOwnerAuthorizationRequest:
    return ResourceOwnerAuthorizationRequest.from_dict(
        {
            "requestId": request_id,
            "apiInvokerInfo": {"apiInvokerId": "INV-42", "apiInvokerName": "Weather app"},
            "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
            "purposeOfDataProcessing": "service-assurance",
            "resOwnerId": owner,
            "requestedItems": [
                {"apiName": "3gpp-monitoring-event", "operations": ["subscribe", "read"]},
                {"apiName": "3gpp-as-session-with-qos", "resource": "sessions"},
            ],
            "expiry": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat(),
        }
    )


def _owner_decides(
    request: ResourceOwnerAuthorizationRequest,
) -> ResourceOwnerAuthorizationResponse:
    """The resource owner's answer: reading the monitoring events only, for a week."""
    return ResourceOwnerAuthorizationResponse(
        request.request_id,
        request.res_owner_id,
        (
            ItemDecision("3gpp-monitoring-event", granted=True, scope=("read",)),
            ItemDecision("3gpp-as-session-with-qos", "sessions", granted=False),
        ),
        dt.datetime.now(dt.UTC) + dt.timedelta(days=7),
    )


def _revocation(owner: str) -> bytes:
    return RevocationNotification.from_dict(
        {
            "resOwnerId": owner,
            "apiInvokerId": "INV-42",
            "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
            "items": [{"apiName": "3gpp-monitoring-event"}],
            "reason": "the owner withdrew consent",
        }
    ).to_json()


def _problem_cause(reply: _Reply) -> str:
    try:
        body = json.loads(reply.body)
    except ValueError:
        return ""
    return str(body.get("cause", body.get("detail", ""))) if isinstance(body, dict) else ""


@frozen
class _Step:
    step: str
    direction: str
    method: str
    expected: str
    action: Callable[[], Awaitable[str]]
    policy: Callable[[], str] = field(default=lambda: "")


class _Story:
    """The endpoints, credentials and policies of the demo (all in memory)."""

    def __init__(self) -> None:
        self.pki = TestPKI()
        pki = self.pki
        self.ccf_cert = pki.server_cert(CCF, eku=_both_ekus())
        self.rof_a_cert = pki.client_cert("rof-a", dns_names=(ROF_A,), eku=_both_ekus())
        self.verify = tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()])
        self.decisions: list[Decision] = []
        self.ccf_engine = PolicyEngine(
            loads_policy(CCF_POLICY, source="ccf-policy.toml"), audit_hook=self.decisions.append
        )
        self.rof_engine = PolicyEngine(
            loads_policy(ROF_POLICY, source="rof-a-policy.toml"), audit_hook=self.decisions.append
        )
        self.capif8 = Capif8Endpoint(MessageGuard(self.ccf_engine))
        self.store = MemoryStore()
        self.password = secrets.token_urlsafe(18)
        self.store.add_scram(make_verifier("rof-b", self.password, iterations=ITERATIONS))
        self.psk = PskCredential(b"rof-c", secrets.token_bytes(32), CCF, key_id="demo-c")
        self.store.add_psk(self.psk)
        self.ports: dict[str, int] = {}

    def lint_pki(self) -> str:
        pki = self.pki
        checks = [
            (pki.root_ca.cert, "interconnection-ca", None, None),
            (pki.tls_ca.cert, "tls-ca", None, pki.root_ca.cert),
            (self.ccf_cert.cert, "tls-entity", "server", pki.tls_ca.cert),
            (self.ccf_cert.cert, "tls-entity", "client", pki.tls_ca.cert),
            (self.rof_a_cert.cert, "tls-entity", "client", pki.tls_ca.cert),
            (self.rof_a_cert.cert, "tls-entity", "server", pki.tls_ca.cert),
        ]
        for cert, profile, role, issuer in checks:
            report = lint(cert, profile, role, issuer=issuer)
            if not report.compliant:
                raise _Refused("; ".join(f"{f.rule}: {f.message}" for f in report.errors))
        return f"{len(checks)} certificate/profile pairs compliant (TS 33.310 6.1.2-6.1.4a)"

    # ---- the endpoints

    async def start(self, stop: asyncio.Event, servers: list[asyncio.Task[None]]) -> None:
        ccf_identity = _identity(self.ccf_cert)
        in_channel = [
            HttpScramServer(ScramAuthenticator(self.store).exchange, realm=REALM),
            http_psk_server(InChannelPskAuthenticator(self.store, CCF).exchange, realm=REALM),
        ]
        listeners: list[tuple[str, tls.CapifContext, AzfApp]] = [
            (
                "ccf-mtls",
                tls.server_context(present=ccf_identity, verify=self.verify),
                AzfApp(capif8=self.capif8),
            ),
            (
                "ccf-in-channel",
                tls.server_context(
                    present=ccf_identity, verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED
                ),
                AzfApp(in_channel=in_channel, capif8=self.capif8),
            ),
            (
                "rof-a",
                tls.server_context(present=_identity(self.rof_a_cert), verify=self.verify),
                AzfApp(capif8=RofEndpoint(MessageGuard(self.rof_engine), _owner_decides)),
            ),
        ]
        if HAS_PSK:
            from capif8sec.tls.psk import psk_server_context

            listeners.append(
                (
                    "ccf-psk",
                    psk_server_context(store=self.store, ccf_identity=CCF),
                    AzfApp(capif8=self.capif8),
                )
            )
        for name, ctx, app in listeners:
            ready = asyncio.get_running_loop().create_future()

            def on_ready(host: str, port: int, ready: asyncio.Future[int] = ready) -> None:
                ready.set_result(port)

            servers.append(
                asyncio.create_task(
                    serve(
                        ctx,
                        HOST,
                        0,
                        app=app,
                        handshake_timeout=TIMEOUT,
                        on_ready=on_ready,
                        stop=stop,
                    )
                )
            )
            self.ports[name] = await asyncio.wait_for(ready, TIMEOUT)

    # ---- the clients

    def rof_context(self, issued: Any) -> tls.CapifContext:
        return tls.client_context(present=_identity(issued), verify=self.verify)

    def in_channel_context(self) -> tls.CapifContext:
        return tls.client_context(present=tls.PRESENT_NO_CERTIFICATE, verify=self.verify)

    def scram(self, password: str) -> Callable[[tls.TlsPeer], HttpScramClient]:
        def make(peer: tls.TlsPeer) -> HttpScramClient:
            assert peer.channel_binding is not None
            return HttpScramClient(ScramClient("rof-b", password, peer.channel_binding))

        return make

    def in_channel_psk(self, key: bytes) -> Callable[[tls.TlsPeer], HttpPskClient]:
        credential = PskCredential(self.psk.identity, key, CCF, key_id="demo-c")

        def make(peer: tls.TlsPeer) -> HttpPskClient:
            assert peer.channel_binding is not None
            return HttpPskClient(
                InChannelPskClient(credential=credential, binding=peer.channel_binding)
            )

        return make

    def last_decision(self) -> str:
        if not self.decisions:
            return ""
        d = self.decisions[-1]
        self.decisions.clear()
        who = f"{d.side} rules, {d.peer.identity} by {d.peer.method}"
        if d.allowed:
            return f"allowed by rule {d.rule} ({who})"
        return f"denied: {d.reason.value} ({who})"


def _expect_2xx(reply: _Reply, what: str) -> str:
    if 200 <= reply.status < 300:
        return f"{reply.status}; {what}; TLS {reply.peer.version} {reply.peer.cipher}"
    cause = _problem_cause(reply)
    raise _Refused(f"HTTP {reply.status}" + (f" ({cause})" if cause else ""))


def _steps(story: _Story) -> list[_Step]:
    ports = story.ports

    async def lint_pki() -> str:
        return story.lint_pki()

    async def ccf_asks_rof(owner: str, request_id: str, ccf: Any = None) -> str:
        """The CCF (TLS client, certificate) asks ROF-A; it checks the answer it gets."""
        request = _request(request_id, owner)
        reply = await _http(
            ports["rof-a"],
            story.rof_context(ccf if ccf is not None else story.ccf_cert),
            ROF_A,
            "POST",
            REQUESTS_PATH,
            request.to_json(),
        )
        _expect_2xx(reply, "")
        response = ResourceOwnerAuthorizationResponse.from_json(reply.body)
        rof_peer = CertificateAuthenticator().authenticate(reply.peer)
        MessageGuard(story.ccf_engine).check_response(
            rof_peer, response, request, dt.datetime.now(dt.UTC)
        )
        granted = ", ".join(f"{d.api_name}:{'/'.join(d.scope or ())}" for d in response.granted)
        return (
            f"200; {rof_peer.identity} answered for {owner}: granted {granted}, until "
            f"{response.expiry:%Y-%m-%d}; the CCF checked the answer; TLS {reply.peer.version} "
            f"{reply.peer.cipher}"
        )

    async def rof_a_posts(path: str, body: bytes, what: str) -> str:
        reply = await _http(
            ports["ccf-mtls"], story.rof_context(story.rof_a_cert), CCF, "POST", path, body
        )
        return _expect_2xx(reply, what)

    def answer(owner: str, request_id: str) -> bytes:
        request = _request(request_id, owner)
        story.capif8.expect(request)
        return _owner_decides(request).to_json()

    async def rof_b(password: str, owner: str, request_id: str) -> str:
        reply = await _in_channel(
            ports["ccf-in-channel"],
            story.in_channel_context(),
            RESPONSES_PATH,
            answer(owner, request_id),
            story.scram(password),
        )
        return _expect_2xx(reply, "SCRAM-SHA-256-PLUS, server signature verified")

    async def rof_c(key: bytes) -> str:
        body = _revocation(OWNERS["c"])
        if HAS_PSK:
            from capif8sec.tls.psk import psk_client_context

            credential = PskCredential(story.psk.identity, key, CCF, key_id="demo-c")
            ctx = psk_client_context(credential=credential)
            reply = await _http(ports["ccf-psk"], ctx, CCF, "POST", REVOCATIONS_PATH, body)
            return _expect_2xx(reply, "revocation accepted; TLS 1.3 external PSK (psk_dhe_ke)")
        reply = await _in_channel(
            ports["ccf-in-channel"],
            story.in_channel_context(),
            REVOCATIONS_PATH,
            body,
            story.in_channel_psk(key),
        )
        return _expect_2xx(reply, "revocation accepted; CAPIF8-PSK proof verified both ways")

    async def non_conformant() -> str:
        broken = story.pki.breaking("ee.crl_distribution_point", "client")
        pem = serialization.Encoding.PEM
        chain = broken.cert.public_bytes(pem) + story.pki.tls_ca.cert.public_bytes(pem)
        key = broken.private_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        ctx = tls.client_context(present=tls.Identity(chain, key), verify=story.verify)
        reply = await _http(ports["ccf-mtls"], ctx, CCF, "GET", "/whoami")
        return _expect_2xx(reply, "")

    wrong_key = secrets.token_bytes(32)
    c_method = "psk (TLS)" if HAS_PSK else "psk (in-channel)"
    return [
        _Step("mint a test PKI, lint it (TS 33.310)", "-", "-", "accepted", lint_pki),
        _Step(
            f"CCF asks ROF-A for owner {OWNERS['a']}",
            "CCF -> ROF",
            "certificate",
            "accepted",
            lambda: ccf_asks_rof(OWNERS["a"], "req-a1"),
            story.last_decision,
        ),
        _Step(
            "ROF-A revokes an authorization at the CCF",
            "ROF -> CCF",
            "certificate",
            "accepted",
            lambda: rof_a_posts(REVOCATIONS_PATH, _revocation(OWNERS["a"]), "revocation accepted"),
            story.last_decision,
        ),
        _Step(
            f"ROF-B delivers an answer for owner {OWNERS['b']}",
            "ROF -> CCF",
            "password",
            "accepted",
            lambda: rof_b(story.password, OWNERS["b"], "req-b1"),
            story.last_decision,
        ),
        _Step(
            "ROF-C revokes an authorization at the CCF",
            "ROF -> CCF",
            c_method,
            "accepted",
            lambda: rof_c(story.psk.key),
            story.last_decision,
        ),
        _Step(
            "a TLS 1.1 client",
            "ROF -> CCF",
            "-",
            "refused",
            lambda: _tls11_attempt(ports["ccf-mtls"]),
        ),
        _Step(
            "an ROF certificate without a CRL distribution point",
            "ROF -> CCF",
            "certificate",
            "refused",
            non_conformant,
        ),
        _Step(
            "ROF-C with a wrong PSK",
            "ROF -> CCF",
            c_method,
            "refused",
            lambda: rof_c(wrong_key),
        ),
        _Step(
            "ROF-B with a wrong password",
            "ROF -> CCF",
            "password",
            "refused",
            lambda: rof_b(story.password + "x", OWNERS["b"], "req-b2"),
        ),
        _Step(
            f"ROF-A answers for owner {OWNERS['b']} (not its owner)",
            "ROF -> CCF",
            "certificate",
            "refused",
            lambda: rof_a_posts(RESPONSES_PATH, answer(OWNERS["b"], "req-b3"), ""),
            story.last_decision,
        ),
        _Step(
            "a CCF that ROF-A does not accept asks it",
            "CCF -> ROF",
            "certificate",
            "refused",
            lambda: ccf_asks_rof(
                OWNERS["a"],
                "req-a2",
                story.pki.server_cert("ccf-2.capif.example", eku=_both_ekus()),
            ),
            story.last_decision,
        ),
    ]


async def _play(log: _Log) -> tuple[list[Outcome], list[str]]:
    story = _Story()
    stop = asyncio.Event()
    servers: list[asyncio.Task[None]] = []
    outcomes: list[Outcome] = []
    try:
        await story.start(stop, servers)
        for step in _steps(story):
            story.decisions.clear()
            log.refusals()
            try:
                detail = await step.action()
                actual = "accepted"
            except (_Refused, Capif8secError) as exc:  # MessageRefused is a Capif8secError
                detail = str(exc) if isinstance(exc, _Refused) else f"{type(exc).__name__}: {exc}"
                actual = "refused"
            await asyncio.sleep(0)  # let the server finish logging its side
            server_side = log.refusals()
            if server_side and actual == "refused":
                detail += f"; server: {server_side[-1]}"
            outcomes.append(
                Outcome(
                    step.step,
                    step.direction,
                    step.method,
                    step.expected,
                    actual,
                    detail,
                    step.policy(),
                )
            )
    finally:
        stop.set()
        await asyncio.gather(*servers, return_exceptions=True)
    notes = [
        f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}",
        "CCF listeners: "
        + ", ".join(f"{name} on {HOST}:{port}" for name, port in story.ports.items()),
    ]
    if HAS_PSK:
        notes.append("ROF-C uses TLS-level PSK (TLS 1.3 external PSK, psk_dhe_ke).")
    else:
        notes.append(
            "TLS-level PSK needs Python >= 3.13 (the ssl module has PSK callbacks from 3.13 on); "
            f"on Python {sys.version_info.major}.{sys.version_info.minor} ROF-C proves its PSK "
            "inside the channel instead (CAPIF8-PSK over RFC 7804 headers, in a channel where the "
            "CCF authenticated by certificate, bound to it by tls-server-end-point)."
        )
    return outcomes, notes


def run_demo(fmt: str, out: TextIO) -> int:
    """Play the story, print a table (or JSON), return 0 only if all went as expected."""
    started = time.monotonic()
    with _capture_logs() as log:
        outcomes, notes = asyncio.run(_play(log))
    elapsed = time.monotonic() - started
    all_ok = all(o.ok for o in outcomes)
    if fmt == "json":
        json.dump(
            {
                "ok": all_ok,
                "seconds": round(elapsed, 2),
                "notes": notes,
                "steps": [o.as_dict() for o in outcomes],
            },
            out,
            indent=2,
        )
        out.write("\n")
    else:
        _table(outcomes, notes, out)
        verdict = "all outcomes as expected" if all_ok else "UNEXPECTED OUTCOMES"
        out.write(f"\n{verdict} ({len(outcomes)} steps, {elapsed:.1f} s)\n")
    return 0 if all_ok else 1


def _table(outcomes: Sequence[Outcome], notes: Sequence[str], out: TextIO) -> None:
    width = min(os.get_terminal_size(out.fileno()).columns, 200) if out.isatty() else 120
    step_width = max(len(o.step) for o in outcomes)
    method_width = max(len(o.method) for o in outcomes)
    cols = [
        ("step", step_width),
        ("direction", 10),
        ("method", method_width),
        ("expected", 8),
        ("actual", 8),
    ]
    out.write("  ".join(f"{name:{w}}" for name, w in cols) + "  ok\n")
    for o in outcomes:
        values = [o.step, o.direction, o.method, o.expected, o.actual]
        row = "  ".join(f"{v[:w]:{w}}" for v, (_, w) in zip(values, cols, strict=True))
        out.write(f"{row}  {'yes' if o.ok else 'NO'}\n")
        for label, text in (("policy", o.policy), ("detail", o.detail)):
            if text:
                out.write(_wrap(f"    {label}: ", text, width))
    out.write("\n" + "".join(f"note: {n}\n" for n in notes))


def _wrap(prefix: str, text: str, width: int) -> str:
    import textwrap

    return (
        textwrap.fill(text, width, initial_indent=prefix, subsequent_indent=" " * len(prefix))
        + "\n"
    )
