"""The CCF side of the reference endpoint: a response whose requestId is not outstanding.

Review finding: the endpoint answered ``404`` before the policy ran, so an ROF the policy does
not know could tell outstanding requestIds (``403``) from unknown ones (``404``), and the
``404`` was never audited.  Now the policy runs first, as far as it can without the request.

Sans-I/O: :meth:`Capif8Endpoint.handle` with the peer the authenticator would have made.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from capif8_helpers import NOW, OWNER_A, OWNER_B, REQUEST, RESPONSE, cert_peer, fresh, psk_peer

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.capif8 import MessageGuard, ResourceOwnerAuthorizationRequest
from capif8sec.integrations.azf import RESPONSES_PATH, Capif8Endpoint
from capif8sec.policy import Decision, Policy, PolicyEngine, Rule

POLICY = Policy(
    rules=[
        Rule("rof-a", "psk:rof-a", OWNER_A, ["authorize", "revoke"], "psk"),
        Rule("rof-b", "psk:rof-b", OWNER_B, "authorize", "psk"),
        Rule("rof-d", "psk:rof-d", OWNER_A, "authorize", "psk-in-channel"),  # not TLS-PSK
        Rule("rof-e", "psk:rof-e", OWNER_A, "revoke", "psk"),  # may not answer
        Rule("rof-z", "psk:rof-z", "*", "authorize", "psk"),  # any owner, any purpose
    ],
    version="t",
)


def _endpoint() -> tuple[Capif8Endpoint, PolicyEngine, list[Decision]]:
    audited: list[Decision] = []
    engine = PolicyEngine(POLICY, audit_hook=audited.append)
    outstanding = [ResourceOwnerAuthorizationRequest.from_dict(fresh(REQUEST))]
    return Capif8Endpoint(MessageGuard(engine), outstanding, clock=lambda: NOW), engine, audited


def _post(
    endpoint: Capif8Endpoint, peer: AuthenticatedPeer, **changes: Any
) -> tuple[int, dict[str, Any], bytes]:
    raw = endpoint.handle(RESPONSES_PATH, json.dumps({**fresh(RESPONSE), **changes}).encode(), peer)
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload) if payload else {}, raw


def _audited(audited: list[Decision]) -> list[tuple[str | None, str, str]]:
    return [
        (d.audit["request"]["request_id"], d.audit["decision"], d.audit["reason"]) for d in audited
    ]


_STRANGERS = {
    "unknown-identity": psk_peer("not-in-policy"),
    "no-identity": cert_peer(),  # a certificate with no SAN identifier
    "method-not-allowed": psk_peer("rof-d"),
    "operation-not-allowed": psk_peer("rof-e"),
}


@pytest.mark.parametrize("reason", list(_STRANGERS))
def test_a_peer_refused_for_itself_cannot_tell_outstanding_from_unknown(reason: str) -> None:
    """The same 403 (byte for byte) for the outstanding req-0001 and the unknown req-0002 and
    req-0003, each audited with its requestId."""
    endpoint, _, audited = _endpoint()
    peer = _STRANGERS[reason]
    answers = [_post(endpoint, peer, requestId=rid) for rid in ("req-0001", "req-0002", "req-0003")]
    assert {raw for _, _, raw in answers} == {answers[0][2]}
    status, body, _ = answers[0]
    assert status == 403 and body["cause"] == reason
    assert _audited(audited) == [
        ("req-0001", "deny", reason),
        ("req-0002", "deny", reason),
        ("req-0003", "deny", reason),
    ]


def test_a_revoked_peer_cannot_tell_either() -> None:
    endpoint, engine, audited = _endpoint()
    engine.revocations.revoke_identity("psk:rof-a")
    first = _post(endpoint, psk_peer("rof-a"))
    second = _post(endpoint, psk_peer("rof-a"), requestId="req-0002")
    assert first[2] == second[2] and first[1]["cause"] == "identity-revoked"
    assert [r for _, _, r in _audited(audited)] == ["identity-revoked"] * 2


def test_a_revoked_owner_does_not_reveal_an_outstanding_request() -> None:
    """The engine checks an owner's revocation before the rules: an unknown ROF answering the
    outstanding request of a revoked owner got ``owner-revoked``, for an unknown request
    ``unknown-identity`` -- whichever owner the body names."""
    endpoint, engine, audited = _endpoint()
    engine.revocations.revoke_owner(OWNER_A)
    stranger = psk_peer("not-in-policy")
    answers = [
        _post(endpoint, stranger),
        _post(endpoint, stranger, requestId="req-0002"),
        _post(endpoint, stranger, requestId="req-0002", resOwnerId=OWNER_B),
    ]
    assert {raw for _, _, raw in answers} == {answers[0][2]}
    assert answers[0][1]["cause"] == "unknown-identity"
    assert [r for _, _, r in _audited(audited)] == ["unknown-identity"] * 3
    status, body, _ = _post(endpoint, psk_peer("rof-a"))  # a known ROF: as before
    assert status == 403 and body["cause"] == "owner-revoked"


def test_a_known_rof_gets_404_for_an_unknown_requestid_audited() -> None:
    """And its outstanding request as before: 204, or a 403 for what the response says."""
    endpoint, _, audited = _endpoint()
    status, _, raw = _post(endpoint, psk_peer("rof-a"))
    assert status == 204 and raw == b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    status, body, _ = _post(endpoint, psk_peer("rof-a"), expiry="2026-11-01T00:00:00Z")
    assert status == 403 and body["cause"] == "expired"
    status, body, _ = _post(endpoint, psk_peer("rof-a"), decisions="x")
    assert status == 400  # malformed: no decision, nothing audited
    assert _audited(audited) == [("req-0001", "allow", "allowed"), ("req-0001", "deny", "expired")]
    audited.clear()
    status, body, _ = _post(endpoint, psk_peer("rof-a"), requestId="req-0404")
    assert status == 404 and body == {
        "cause": "unknown-request",
        "detail": "unknown requestId",
        "status": 404,
        "title": "Not Found",
    }
    assert _audited(audited) == [("req-0404", "deny", "unknown-request")]
    record = audited[0].audit
    assert record["peer"]["identity"] == "rof-a" and record["request"]["owner"] == OWNER_A
    assert "req-0404" in (record["detail"] or "")


def test_the_owner_in_the_body_only_chooses_the_refusal() -> None:
    """ROF B may not act for owner A: 403 ``owner-not-allowed``, outstanding or not.  A rule
    open to every owner and purpose does not make a response to an unknown request pass."""
    endpoint, _, audited = _endpoint()
    outstanding = _post(endpoint, psk_peer("rof-b"))
    unknown = _post(endpoint, psk_peer("rof-b"), requestId="req-0002")
    assert outstanding[2] == unknown[2] and unknown[1]["cause"] == "owner-not-allowed"
    status, _, _ = _post(endpoint, psk_peer("rof-b"), requestId="req-0002", resOwnerId=OWNER_B)
    assert status == 404
    status, _, _ = _post(endpoint, psk_peer("rof-z"), requestId="req-0002")
    assert status == 404
    assert [d.allowed for d in audited] == [False] * 4
    assert _audited(audited)[-1] == ("req-0002", "deny", "unknown-request")


def test_a_response_naming_another_owner_is_answered_as_an_unknown_request() -> None:
    """ROF B, which serves owner B, names its own owner in answers to a request sent to ROF A
    (owner A) and to an unknown requestId: both get the same 404, so it cannot probe other
    owners' outstanding requestIds (second review: 403 owner-not-allowed against 404)."""
    endpoint, _, audited = _endpoint()
    answers = [
        _post(endpoint, psk_peer("rof-b"), requestId=rid, resOwnerId=OWNER_B)
        for rid in ("req-0001", "req-0002")
    ]
    assert answers[0][0] == answers[1][0] == 404
    assert answers[0][1] == answers[1][1]
    # the audit tells the operator what happened; the answers above are the same
    assert [reason for _, _, reason in _audited(audited)] == ["message-mismatch", "unknown-request"]
    assert "outstanding for another owner" in (audited[0].detail or "")
    # ROF A naming owner B for its own request: the same as for any unknown requestId
    status, body, _ = _post(endpoint, psk_peer("rof-a"), resOwnerId=OWNER_B)
    assert (status, body["cause"]) == (403, "owner-not-allowed")
    status, _, _ = _post(endpoint, psk_peer("rof-a"))  # and its honest answer still lands
    assert status == 204
