"""End to end through real TLS: handshake, post-handshake check, authenticator, policy and
message guard (R56, R59).

Three ROFs authenticate to the CCF over real TLS connections on loopback: ROF A by its client
certificate (mutual TLS), ROF B by a password (SCRAM-SHA-256-PLUS bound to the channel), ROF C by
a PSK proven inside the channel (and, on Python >= 3.13, ROF D by a TLS-level PSK).  Each may
answer for its own resource owner and is refused for another's.  On the other side, the ROF
checks the CCF it reached (its certificate's DNS-ID) against its ``[[ccf]]`` rules.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from capif8_helpers import NOW, OWNER_A, REQUEST, RESPONSE, fresh

from capif8sec import tls
from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.credentials import PskCredential
from capif8sec.auth.inchannel import InChannelPskAuthenticator, InChannelPskClient
from capif8sec.auth.scram import ScramAuthenticator, ScramClient, make_verifier
from capif8sec.auth.stores import MemoryStore
from capif8sec.capif8 import (
    MessageGuard,
    MessageRefused,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
)
from capif8sec.errors import HandshakeRejected
from capif8sec.integrations import blocking
from capif8sec.policy import Policy, PolicyEngine, Reason, Rule, loads_policy
from capif8sec.testing import IssuedCert, TestPKI
from capif8sec.tls.psk import HAS_PSK, psk_client_context, psk_server_context

pytestmark = pytest.mark.timeout(60)

CCF = "ccf.capif.example"
TIMEOUT = 5.0
OWNERS = {
    "a": "msisdn-491700000001",
    "b": "msisdn-491700000002",
    "c": "msisdn-491700000003",
    "d": "msisdn-491700000004",
}
POLICY = f"""
version = "e2e"

[[rule]]
id = "rof-a"
identities = ["uri:urn:capif:rof:rof-a"]
owners = ["{OWNERS["a"]}"]
operations = ["authorize"]
methods = ["certificate"]

[[rule]]
id = "rof-b"
identities = ["scram:rof-b"]
owners = ["{OWNERS["b"]}"]
operations = ["authorize"]
methods = ["password"]

[[rule]]
id = "rof-c"
identities = ["psk:rof-c"]
owners = ["{OWNERS["c"]}"]
operations = ["authorize"]
methods = ["psk-in-channel"]

[[rule]]
id = "rof-d"
identities = ["psk:rof-d"]
owners = ["{OWNERS["d"]}"]
operations = ["authorize"]
methods = ["psk"]

[[ccf]]
id = "home-ccf"
identities = ["dns:{CCF}"]
"""


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(scope="module")
def ccf_cert(pki: TestPKI) -> IssuedCert:
    return pki.server_cert(CCF)


def _verification(pki: TestPKI) -> tls.PeerVerification:
    return tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()])


def _handshake(
    server_ctx: tls.CapifContext, client_ctx: tls.CapifContext, hostname: str = CCF
) -> tuple[tls.TlsPeer, tls.TlsPeer]:
    """One real TLS connection on loopback; (the CCF's view, the ROF's view) of the peer."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    result: list[Any] = []

    def serve() -> None:
        try:
            sock, peer = blocking.accept(listener, server_ctx, timeout=TIMEOUT)
            with sock:
                result.append(peer)
                with contextlib.suppress(OSError):
                    sock.recv(1)  # hold the connection until the client hangs up
        except BaseException as exc:  # reported below
            result.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        sock, client_peer = blocking.connect(
            "127.0.0.1", port, client_ctx, server_hostname=hostname, timeout=TIMEOUT
        )
        sock.close()
        thread.join(2 * TIMEOUT)
    finally:
        listener.close()
    (server_peer,) = result
    assert isinstance(server_peer, tls.TlsPeer), server_peer
    return server_peer, client_peer


def _in_channel_contexts(pki: TestPKI, ccf_cert: IssuedCert) -> tuple[Any, Any]:
    server = tls.server_context(
        present=tls.Identity(ccf_cert.chain_pem, ccf_cert.key_pem),
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
    )
    client = tls.client_context(present=tls.PRESENT_NO_CERTIFICATE, verify=_verification(pki))
    return server, client


def _run(server: Any, first: bytes, final: Callable[[bytes], bytes], verify: Any) -> None:
    """Drive a sans-I/O exchange: client-first, server-first, client-final, server-final."""
    server_first = server.receive(first)
    server_final = server.receive(final(server_first))
    verify(server_final)


def rof_a_by_certificate(
    pki: TestPKI, ccf_cert: IssuedCert, hostname: str = CCF
) -> tuple[AuthenticatedPeer, tls.TlsPeer]:
    rof = pki.client_cert("rof-a")
    server_ctx = tls.server_context(
        present=tls.Identity(ccf_cert.chain_pem, ccf_cert.key_pem), verify=_verification(pki)
    )
    client_ctx = tls.client_context(
        present=tls.Identity(rof.chain_pem, rof.key_pem), verify=_verification(pki)
    )
    server_peer, client_peer = _handshake(server_ctx, client_ctx, hostname)
    return CertificateAuthenticator().authenticate(server_peer), client_peer


def rof_b_by_password(pki: TestPKI, ccf_cert: IssuedCert) -> tuple[AuthenticatedPeer, tls.TlsPeer]:
    store = MemoryStore()
    password = secrets.token_urlsafe(16)
    store.add_scram(make_verifier("rof-b", password, iterations=4096))
    server_peer, client_peer = _handshake(*_in_channel_contexts(pki, ccf_cert))
    assert client_peer.channel_binding is not None
    server = ScramAuthenticator(store).authenticate(server_peer)
    client = ScramClient("rof-b", password, client_peer.channel_binding)
    _run(server, client.first(), client.final, client.verify)
    return server.result(), client_peer


def rof_c_by_in_channel_psk(
    pki: TestPKI, ccf_cert: IssuedCert
) -> tuple[AuthenticatedPeer, tls.TlsPeer]:
    store = MemoryStore()
    credential = PskCredential(b"rof-c", secrets.token_bytes(32), CCF, key_id="k-c")
    store.add_psk(credential)
    server_peer, client_peer = _handshake(*_in_channel_contexts(pki, ccf_cert))
    assert client_peer.channel_binding is not None
    server = InChannelPskAuthenticator(store, CCF).authenticate(server_peer)
    client = InChannelPskClient(credential=credential, binding=client_peer.channel_binding)
    _run(server, client.first(), client.final, client.verify)
    return server.result(), client_peer


ROFS = {"a": rof_a_by_certificate, "b": rof_b_by_password, "c": rof_c_by_in_channel_psk}


def _messages(owner: str) -> tuple[Any, Any]:
    request = fresh(REQUEST)
    response = fresh(RESPONSE)
    request["resOwnerId"] = response["resOwnerId"] = owner
    request.pop("expiry")
    return (
        ResourceOwnerAuthorizationRequest.from_dict(request),
        ResourceOwnerAuthorizationResponse.from_dict(response),
    )


@pytest.fixture(scope="module")
def guard() -> MessageGuard:
    return MessageGuard(PolicyEngine(loads_policy(POLICY, source="e2e.toml")))


@pytest.mark.parametrize("name", sorted(ROFS))
def test_each_rof_answers_for_its_own_owner_only(
    name: str, pki: TestPKI, ccf_cert: IssuedCert, guard: MessageGuard
) -> None:
    """R56, R59: the identity comes from the credential the TLS channel carried; the ROF may
    answer for its own owner and is refused for every other's."""
    peer, _ = ROFS[name](pki, ccf_cert)
    request, response = _messages(OWNERS[name])
    decision = guard.check_response(peer, response, request, NOW)
    assert decision.allowed and decision.rule == f"rof-{name}"
    for other, owner in OWNERS.items():
        if other == name:
            continue
        request, response = _messages(owner)
        with pytest.raises(MessageRefused) as info:
            guard.check_response(peer, response, request, NOW)
        assert info.value.reason is Reason.OWNER_NOT_ALLOWED


def test_the_methods_and_identities_that_came_through(pki: TestPKI, ccf_cert: IssuedCert) -> None:
    peers = {name: make(pki, ccf_cert)[0] for name, make in ROFS.items()}
    assert (peers["a"].method, peers["a"].identity) == (Method.CERTIFICATE, "urn:capif:rof:rof-a")
    assert (peers["b"].method, peers["b"].identity) == (Method.PASSWORD, "rof-b")
    assert (peers["c"].method, peers["c"].identity) == (Method.PSK_IN_CHANNEL, "rof-c")
    # A password user named like ROF C's PSK identity is not ROF C (kinds are apart).
    engine = PolicyEngine(loads_policy(POLICY))
    fake = AuthenticatedPeer("rof-c", Method.PASSWORD)
    request, response = _messages(OWNERS["c"])
    with pytest.raises(MessageRefused) as info:
        MessageGuard(engine).check_response(fake, response, request, NOW)
    assert info.value.reason is Reason.UNKNOWN_IDENTITY


def test_the_rof_checks_the_ccf_it_reached(
    pki: TestPKI, ccf_cert: IssuedCert, guard: MessageGuard
) -> None:
    """The ROF side: the CCF's certificate (validated by the ROF's client context) names
    ``ccf.capif.example``, which the ``[[ccf]]`` rule accepts; another CCF is refused."""
    _, ccf_seen_by_rof = rof_a_by_certificate(pki, ccf_cert)
    ccf_peer = CertificateAuthenticator().authenticate(ccf_seen_by_rof)
    request, _ = _messages(OWNER_A)
    assert guard.check_request(ccf_peer, request, NOW).rule == "home-ccf"
    other = pki.server_cert("ccf-2.capif.example")
    with pytest.raises(HandshakeRejected, match="does not match"):  # RFC 9525, in the TLS check
        rof_a_by_certificate(pki, other)
    _, seen = rof_a_by_certificate(pki, other, "ccf-2.capif.example")  # TLS fine, policy not
    with pytest.raises(MessageRefused) as info:
        guard.check_request(CertificateAuthenticator().authenticate(seen), request, NOW)
    assert info.value.reason is Reason.CCF_NOT_ACCEPTED


@pytest.mark.skipif(not HAS_PSK, reason="TLS-level PSK needs ssl PSK callbacks (Python >= 3.13)")
def test_a_tls_level_psk_rof(guard: MessageGuard) -> None:
    """ROF D by a TLS 1.3 external PSK (psk_dhe_ke): allowed for its owner only."""
    from capif8sec.auth.psk import TlsPskAuthenticator

    store = MemoryStore()
    credential = PskCredential(b"rof-d", secrets.token_bytes(32), CCF, key_id="k-d")
    store.add_psk(credential)
    server_ctx = psk_server_context(store=store, ccf_identity=CCF)
    client_ctx = psk_client_context(credential=credential)
    server_peer, _ = _handshake(server_ctx, client_ctx)
    peer = TlsPskAuthenticator().authenticate(server_peer)
    request, response = _messages(OWNERS["d"])
    assert guard.check_response(peer, response, request, NOW).rule == "rof-d"
    request, response = _messages(OWNERS["a"])
    with pytest.raises(MessageRefused):
        guard.check_response(peer, response, request, NOW)


def test_policy_objects_match_the_file() -> None:
    policy = loads_policy(POLICY)
    assert [r.id for r in policy.rules] == ["rof-a", "rof-b", "rof-c", "rof-d"]
    assert isinstance(policy, Policy) and all(isinstance(r, Rule) for r in policy.rules)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before + 1
