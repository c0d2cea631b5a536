"""The message guard: each CAPIF-8 message checked against its authenticated sender and the
policy (R56, R59, R62) before the application sees it; every refusal has its reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from capif8_helpers import (
    NOW,
    OWNER_A,
    OWNER_B,
    REQUEST,
    RESPONSE,
    REVOCATION,
    cert_peer,
    fresh,
    psk_peer,
    scram_peer,
)

from capif8sec.capif8 import (
    MessageGuard,
    MessageRefused,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.errors import PolicyDenied, UsageError
from capif8sec.policy import Decision, Policy, PolicyEngine, Reason, Rule

ROF_A = "urn:capif:rof:rof-a"
ROF_B = "urn:capif:rof:rof-b"
CCF = "ccf.operator.example"

POLICY = Policy(
    rules=[
        Rule(
            "rof-a",
            [f"uri:{ROF_A}", "psk:rof-a", "scram:rof-a"],
            [OWNER_A],
            ["authorize", "revoke"],
            ["certificate", "psk", "password"],
            purposes=["service-assurance"],
            apps=["app-1"],
        ),
        Rule("rof-b", f"uri:{ROF_B}", OWNER_B, ["authorize", "revoke"], "certificate"),
        # Revocations carry no purpose: a rule for them leaves purposes open.
        Rule("rof-a-revokes", f"uri:{ROF_A}", OWNER_A, "revoke", "certificate", apps=["app-1"]),
        Rule("rof-c", "psk:rof-c", OWNER_A, "authorize", "psk"),  # may not revoke
    ],
    ccf_rules=[Rule("home", f"dns:{CCF}", "msisdn-4917*", "authorize", "certificate")],
    version="v1",
)


def request(**changes: Any) -> ResourceOwnerAuthorizationRequest:
    doc = fresh(REQUEST)
    doc.update(changes)
    for key in [k for k, v in doc.items() if v is None]:
        del doc[key]
    return ResourceOwnerAuthorizationRequest.from_dict(doc)


def response(**changes: Any) -> ResourceOwnerAuthorizationResponse:
    doc = fresh(RESPONSE)
    doc.update(changes)
    return ResourceOwnerAuthorizationResponse.from_dict(doc)


def revocation(**changes: Any) -> RevocationNotification:
    doc = fresh(REVOCATION)
    doc.update(changes)
    for key in [k for k, v in doc.items() if v is None]:
        del doc[key]
    return RevocationNotification.from_dict(doc)


@pytest.fixture
def audited() -> list[Decision]:
    return []


@pytest.fixture
def guard(audited: list[Decision]) -> MessageGuard:
    return MessageGuard(PolicyEngine(POLICY, audit_hook=audited.append))


def refusal(call: Any, *args: Any) -> MessageRefused:
    with pytest.raises(MessageRefused) as info:
        call(*args)
    assert isinstance(info.value, PolicyDenied)
    return info.value


# -- requests, on the ROF side ---------------------------------------------------------------


def test_a_request_from_an_accepted_ccf(guard: MessageGuard, audited: list[Decision]) -> None:
    decision = guard.check_request(cert_peer(dns=(CCF,)), request(), NOW)
    assert decision.allowed and decision.rule == "home" and decision.side == "ccf"
    assert audited == [decision]
    assert decision.audit["request"]["request_id"] == "req-0001"
    assert decision.audit["request"]["message"] == "ResourceOwnerAuthorizationRequest"


def test_a_request_from_a_ccf_the_rof_does_not_accept(
    guard: MessageGuard, audited: list[Decision]
) -> None:
    for peer in (cert_peer(dns=("ccf.other.example",)), psk_peer(CCF), cert_peer(f"uri:{CCF}")):
        err = refusal(guard.check_request, peer, request())
        assert err.reason is Reason.CCF_NOT_ACCEPTED
    assert len(audited) == 3 and not any(d.allowed for d in audited)


def test_a_request_for_an_owner_the_ccf_rule_does_not_cover(guard: MessageGuard) -> None:
    err = refusal(
        guard.check_request, cert_peer(dns=(CCF,)), request(resOwnerId="msisdn-4930111111")
    )
    assert err.reason is Reason.OWNER_NOT_ALLOWED


def test_an_expired_request(guard: MessageGuard, audited: list[Decision]) -> None:
    ccf = cert_peer(dns=(CCF,))
    late = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    err = refusal(guard.check_request, ccf, request(), late)
    assert err.reason is Reason.EXPIRED and err.decision.rule == "home"
    assert "expired" in str(err)
    assert guard.check_request(ccf, request()).allowed  # no clock given: not checked
    assert guard.check_request(ccf, request(expiry=None), late).allowed
    assert len(audited) == 3  # one audit record per check


# -- responses, on the CCF side --------------------------------------------------------------


@pytest.mark.parametrize(
    "peer", [cert_peer(ROF_A), psk_peer("rof-a"), scram_peer("rof-a")], ids=["cert", "psk", "pw"]
)
def test_a_response_from_the_rof_of_the_owner(
    guard: MessageGuard, audited: list[Decision], peer: Any
) -> None:
    decision = guard.check_response(peer, response(), request(), NOW)
    assert decision.allowed and decision.rule == "rof-a"
    assert decision.request.owner == OWNER_A and decision.request.purpose == "service-assurance"
    assert audited == [decision]


def test_an_rof_answering_for_an_owner_outside_its_set(guard: MessageGuard) -> None:
    """R59: ROF B answers about ROF A's owner, even when its response names its own owner."""
    err = refusal(guard.check_response, cert_peer(ROF_B), response(), request(), NOW)
    assert err.reason is Reason.OWNER_NOT_ALLOWED
    err = refusal(
        guard.check_response, cert_peer(ROF_B), response(resOwnerId=OWNER_B), request(), NOW
    )
    assert err.reason is Reason.OWNER_NOT_ALLOWED  # the owner comes from the CCF's request
    err = refusal(guard.check_response, cert_peer("urn:capif:rof:x"), response(), request(), NOW)
    assert err.reason is Reason.UNKNOWN_IDENTITY


def test_the_purpose_and_app_come_from_the_original_request(guard: MessageGuard) -> None:
    err = refusal(
        guard.check_response,
        cert_peer(ROF_A),
        response(),
        request(purposeOfDataProcessing="marketing"),
        NOW,
    )
    assert err.reason is Reason.PURPOSE_NOT_ALLOWED
    other_app = request(appServiceInfo={"aspId": "asp-1", "appId": "app-9"})
    err = refusal(guard.check_response, cert_peer(ROF_A), response(), other_app, NOW)
    assert err.reason is Reason.APP_NOT_ALLOWED


def test_a_response_to_another_request(guard: MessageGuard, audited: list[Decision]) -> None:
    rof = cert_peer(ROF_A)
    err = refusal(guard.check_response, rof, response(requestId="req-0002"), request(), NOW)
    assert err.reason is Reason.MESSAGE_MISMATCH and "requestId" in str(err)
    err = refusal(
        guard.check_response, rof, response(resOwnerId="msisdn-491799999999"), request(), NOW
    )
    assert err.reason is Reason.MESSAGE_MISMATCH
    assert err.decision.rule == "rof-a"  # the rule that allowed the sender stays on record
    assert [d.reason for d in audited] == [Reason.MESSAGE_MISMATCH] * 2


@pytest.mark.parametrize(
    ("decisions", "expiry", "words"),
    [
        ([{"apiName": "3gpp-other-api", "granted": True}], None, "not requested"),
        ([{"apiName": "3gpp-as-session-with-qos", "granted": True}], None, "not requested"),
        (
            [{"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read", "write"]}],
            None,
            "operations not requested: write",
        ),
        (
            [{"apiName": "3gpp-monitoring-event", "granted": True}],
            "2027-01-01T00:00:00Z",
            "later than the requested expiry",
        ),
    ],
)
def test_a_response_granting_more_than_was_asked(
    guard: MessageGuard, decisions: list[Any], expiry: str | None, words: str
) -> None:
    changes: dict[str, Any] = {"decisions": decisions}
    if expiry:
        changes["expiry"] = expiry
    err = refusal(guard.check_response, cert_peer(ROF_A), response(**changes), request(), NOW)
    assert err.reason is Reason.EXCEEDS_REQUEST and words in str(err)


def test_narrower_grants_are_fine(guard: MessageGuard) -> None:
    rof = cert_peer(ROF_A)
    whole = [
        {"apiName": "3gpp-monitoring-event", "granted": True},  # as requested
        {
            "apiName": "3gpp-as-session-with-qos",
            "resource": "sessions",
            "granted": True,
            "scope": ["read"],
        },
    ]
    assert guard.check_response(rof, response(decisions=whole), request(), NOW).allowed
    denied = [{"apiName": "3gpp-monitoring-event", "granted": False}]  # the rest left out
    assert guard.check_response(rof, response(decisions=denied), request(), NOW).allowed
    assert guard.check_response(
        rof, response(expiry="2027-06-01T00:00:00Z"), request(expiry=None), NOW
    ).allowed


def test_an_expired_response() -> None:
    guard = MessageGuard(PolicyEngine(POLICY))
    late = dt.datetime(2026, 12, 1, 0, 0, 30, tzinfo=dt.UTC)
    err = refusal(guard.check_response, cert_peer(ROF_A), response(), request(), late)
    assert err.reason is Reason.EXPIRED
    lenient = MessageGuard(PolicyEngine(POLICY), clock_skew=dt.timedelta(minutes=1))
    assert lenient.check_response(cert_peer(ROF_A), response(), request(), late).allowed
    with pytest.raises(UsageError):
        guard.check_response(cert_peer(ROF_A), response(), request(), dt.datetime(2026, 1, 1))
    with pytest.raises(UsageError):
        MessageGuard(PolicyEngine(POLICY), clock_skew=dt.timedelta(seconds=-1))
    with pytest.raises(UsageError):
        MessageGuard(POLICY)  # type: ignore[arg-type]


def test_a_revocation_between_request_and_response(guard: MessageGuard) -> None:
    """R62: the ROF's credential revoked after the CCF sent its request."""
    guard.engine.revocations.revoke_identity("psk:rof-a")
    err = refusal(guard.check_response, psk_peer("rof-a"), response(), request(), NOW)
    assert err.reason is Reason.IDENTITY_REVOKED
    assert guard.check_response(cert_peer(ROF_A), response(), request(), NOW).allowed
    guard.engine.revocations.revoke_owner(OWNER_A)
    err = refusal(guard.check_response, cert_peer(ROF_A), response(), request(), NOW)
    assert err.reason is Reason.OWNER_REVOKED


# -- RO-triggered revocations, on the CCF side -----------------------------------------------


def test_a_revocation_from_the_rof_of_the_owner(guard: MessageGuard) -> None:
    decision = guard.check_revocation(cert_peer(ROF_A), revocation())
    assert decision.allowed and decision.request.operation == "revoke"
    assert decision.rule == "rof-a-revokes"  # "rof-a" names purposes; revocations have none
    assert decision.audit["request"]["message"] == "RevocationNotification"
    err = refusal(guard.check_revocation, psk_peer("rof-a"), revocation())
    assert err.reason is Reason.PURPOSE_NOT_ALLOWED


def test_a_revocation_from_an_rof_not_allowed_for_that_owner(guard: MessageGuard) -> None:
    err = refusal(guard.check_revocation, cert_peer(ROF_B), revocation())
    assert err.reason is Reason.OWNER_NOT_ALLOWED
    err = refusal(guard.check_revocation, psk_peer("rof-c"), revocation())
    assert err.reason is Reason.OPERATION_NOT_ALLOWED  # rof-c may answer, not revoke
    err = refusal(guard.check_revocation, cert_peer("urn:capif:rof:x"), revocation())
    assert err.reason is Reason.UNKNOWN_IDENTITY


def test_a_revocation_outside_the_rule_s_applications(guard: MessageGuard) -> None:
    everything = revocation(appServiceInfo=None, items=None, allItems=True)
    err = refusal(guard.check_revocation, cert_peer(ROF_A), everything)
    assert err.reason is Reason.APP_NOT_ALLOWED  # rof-a's rule is limited to app-1
    assert guard.check_revocation(
        cert_peer(ROF_B), everything.__class__(OWNER_B, "gone", all_items=True)
    ).allowed
