"""The message guard: each CAPIF-8 message checked against its authenticated sender and the
policy (R56, R59, R62) before the application sees it; every refusal has its reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
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
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capif8sec.capif8 import (
    MessageGuard,
    MessageRefused,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.capif8.guard import UnknownRequest
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


# -- expiry at the ends of the datetime range ------------------------------------------------

_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
_SKEWS = [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(days=4_000_000), dt.timedelta.max]
_US = dt.timedelta(microseconds=1)


def _micros(instant: dt.datetime) -> int:
    """An aware instant as whole microseconds (Python ints: no range to overflow)."""
    offset = instant.utcoffset()
    assert offset is not None
    return (instant.replace(tzinfo=None) - dt.datetime.min) // _US - offset // _US


def _expired(expiry: dt.datetime, skew: dt.timedelta, now: dt.datetime) -> bool:
    """The specification, in integers: expired when ``expiry + skew <= now``."""
    return _micros(expiry) + skew // _US <= _micros(now)


def _check_expiry(which: str, expiry: dt.datetime, skew: dt.timedelta, now: dt.datetime) -> Reason:
    """The outcome of ``which`` check for a message expiring at ``expiry``: a reason code,
    ``allowed`` or ``expired``, never an exception of another type."""
    guard = MessageGuard(PolicyEngine(POLICY), clock_skew=skew)
    try:
        if which == "request":
            decision = guard.check_request(
                cert_peer(dns=(CCF,)), attrs.evolve(request(), expiry=expiry), now
            )
        else:
            answer = attrs.evolve(response(), expiry=expiry)
            decision = guard.check_response(cert_peer(ROF_A), answer, request(expiry=None), now)
    except MessageRefused as exc:
        return exc.reason
    return decision.reason


@pytest.mark.parametrize("which", ["request", "response"])
@pytest.mark.parametrize("text", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
@pytest.mark.parametrize("now", [NOW, _EARLIEST, _LATEST], ids=["now", "min", "max"])
def test_an_expiry_at_the_ends_of_the_range(which: str, text: str, now: dt.datetime) -> None:
    """Review finding: ``expiry + clock_skew`` overflowed (OverflowError, a 500 in a server)
    for an expiry the message parser accepts; now, with a skew of 0, 1 s or a large one, a
    decision: allowed or ``expired``."""
    expiry = ResourceOwnerAuthorizationResponse.from_dict(
        {**fresh(RESPONSE), "expiry": text}
    ).expiry
    outcomes = {skew: _check_expiry(which, expiry, skew, now) for skew in _SKEWS}
    assert outcomes == {
        skew: Reason.EXPIRED if _expired(expiry, skew, now) else Reason.ALLOWED for skew in _SKEWS
    }


def test_the_ends_of_the_range_decided_as_expected() -> None:
    """The cases above, spelled out: the last instant has not expired at any time before it,
    the first one has expired at once unless the skew covers the whole range."""
    late = ResourceOwnerAuthorizationResponse.from_dict(
        {**fresh(RESPONSE), "expiry": "9999-12-31T23:59:59Z"}
    ).expiry
    for skew in _SKEWS:
        assert _check_expiry("response", late, skew, NOW) is Reason.ALLOWED
        assert _check_expiry("request", late, skew, NOW) is Reason.ALLOWED
    assert _check_expiry("response", _EARLIEST, dt.timedelta(0), NOW) is Reason.EXPIRED
    assert _check_expiry("request", _EARLIEST, dt.timedelta(seconds=1), NOW) is Reason.EXPIRED
    assert _check_expiry("response", _EARLIEST, dt.timedelta.max, NOW) is Reason.ALLOWED
    assert _check_expiry("request", _EARLIEST, dt.timedelta.max, _LATEST) is Reason.ALLOWED
    assert _check_expiry("response", _LATEST, dt.timedelta(0), _LATEST) is Reason.EXPIRED


_OFFSETS = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    which=st.sampled_from(["request", "response"]),
    expiry=st.datetimes(timezones=st.just(dt.UTC)),  # messages hold their expiry in UTC
    now=st.datetimes(timezones=_OFFSETS),
    skew=st.timedeltas(min_value=dt.timedelta(0)),
)
@example(which="response", expiry=_LATEST, now=NOW, skew=dt.timedelta(seconds=1))
@example(which="request", expiry=_LATEST, now=_LATEST, skew=dt.timedelta.max)
@example(which="response", expiry=_EARLIEST, now=_EARLIEST, skew=dt.timedelta(0))
@example(
    which="request",
    expiry=_EARLIEST,
    now=dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=-23))),
    skew=dt.timedelta(hours=22),
)
def test_expiry_over_the_whole_datetime_range(
    which: str, expiry: dt.datetime, now: dt.datetime, skew: dt.timedelta
) -> None:
    """Any expiry, any clock (any UTC offset) and any skew: the guard decides exactly
    ``expiry + skew <= now`` (in unbounded integers), and never raises anything but a
    refusal."""
    expected = Reason.EXPIRED if _expired(expiry, skew, now) else Reason.ALLOWED
    assert _check_expiry(which, expiry, skew, now) is expected


# -- a response to no outstanding request (the CCF side's unknown requestId) ----------------


def test_an_unknown_requestid_from_a_known_rof(
    guard: MessageGuard, audited: list[Decision]
) -> None:
    """Only a peer the policy knows is told the requestId is unknown; the refusal is audited
    with that requestId."""
    with pytest.raises(UnknownRequest) as info:
        guard.refuse_unknown_response(psk_peer("rof-a"), response(requestId="req-9999"))
    err = info.value
    assert isinstance(err, MessageRefused)  # a refusal like any other for generic callers
    assert err.reason is Reason.UNKNOWN_REQUEST and "req-9999" in str(err)
    assert audited == [err.decision] and not err.decision.allowed
    assert err.decision.audit["request"]["request_id"] == "req-9999"
    assert err.decision.audit["decision"] == "deny"


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        (cert_peer("urn:capif:rof:x"), Reason.UNKNOWN_IDENTITY),
        (psk_peer("not-in-policy"), Reason.UNKNOWN_IDENTITY),
        (cert_peer(), Reason.NO_IDENTITY),  # a certificate with no SAN identifier
    ],
    ids=["cert", "psk", "none"],
)
def test_an_unknown_requestid_from_a_peer_the_policy_does_not_know(
    guard: MessageGuard, audited: list[Decision], peer: Any, reason: Reason
) -> None:
    """The refusal it gets for an outstanding request, not an 'unknown requestId'."""
    outstanding = refusal(guard.check_response, peer, response(), request(), NOW)
    unknown = refusal(guard.refuse_unknown_response, peer, response(requestId="req-9999"))
    assert not isinstance(unknown, UnknownRequest)
    assert outstanding.reason is unknown.reason is reason
    assert [d.audit["request"]["request_id"] for d in audited] == ["req-0001", "req-9999"]
    assert [d.reason for d in audited] == [reason, reason]


def test_a_peer_refusal_comes_before_an_owner_revocation(guard: MessageGuard) -> None:
    """A peer the policy does not know is told ``unknown-identity``, whatever the owner (so the
    answer does not depend on which request, or whether one, is outstanding; the engine weighs
    an owner's revocation only against what its rules allow).  A known peer gets
    ``owner-revoked``."""
    guard.engine.revocations.revoke_owner(OWNER_A)
    stranger = psk_peer("not-in-policy")
    err = refusal(guard.check_response, stranger, response(), request(), NOW)
    assert err.reason is Reason.UNKNOWN_IDENTITY
    assert err.decision.request.owner == OWNER_A  # audited with the request's owner
    err = refusal(guard.refuse_unknown_response, stranger, response(requestId="req-9999"))
    assert err.reason is Reason.UNKNOWN_IDENTITY
    err = refusal(guard.check_response, psk_peer("rof-a"), response(), request(), NOW)
    assert err.reason is Reason.OWNER_REVOKED
    err = refusal(guard.refuse_unknown_response, psk_peer("rof-a"), response(requestId="r-9"))
    assert err.reason is Reason.OWNER_REVOKED and not isinstance(err, UnknownRequest)


def test_the_owner_named_only_chooses_the_refusal(guard: MessageGuard) -> None:
    """ROF B may not act for owner A: a response naming A is refused for that, outstanding or
    not; nothing the body says makes a response to an unknown request acceptable."""
    rof_b = cert_peer(ROF_B)
    err = refusal(guard.refuse_unknown_response, rof_b, response(requestId="req-9999"))
    assert err.reason is Reason.OWNER_NOT_ALLOWED and not isinstance(err, UnknownRequest)
    with pytest.raises(UnknownRequest):  # its own owner: known peer, unknown request
        guard.refuse_unknown_response(rof_b, response(requestId="req-9999", resOwnerId=OWNER_B))
    open_policy = Policy(rules=[Rule("any", "psk:rof-z", "*", "authorize", "psk")])
    with pytest.raises(UnknownRequest) as info:
        MessageGuard(PolicyEngine(open_policy)).refuse_unknown_response(
            psk_peer("rof-z"), response(requestId="req-9999")
        )
    assert not info.value.decision.allowed and info.value.decision.rule == "any"
