"""The message guard: a CAPIF-8 message is checked against its authenticated sender and the
policy before the application sees it.

A server does, per message::

    peer = authenticator.authenticate(check_connection(conn))   # who sent it (R56)
    response = ResourceOwnerAuthorizationResponse.from_json(body)   # MessageError -> 400
    decision = guard.check_response(peer, response, request, now)   # MessageRefused -> 403

Each check first asks the policy (the identity, method, operation, owner, purpose, ASP and
application), taking the owner, purpose, ASP and application from the message *the checking
side sent or trusts* -- for a response, the original request -- never from what the peer
claims about itself.  Then it checks the message itself.  The outcome is audited once
(:meth:`capif8sec.policy.PolicyEngine.audit`); a refusal raises :class:`MessageRefused`
carrying the :class:`~capif8sec.policy.Decision` and its reason code, an acceptance returns
the decision.

* :meth:`MessageGuard.check_request` (ROF side): the request comes from a CCF the ROF accepts
  (``ccf_rules``), for an owner, purpose, ASP and application it accepts; optionally, it has
  not expired.
* :meth:`MessageGuard.check_response` (CCF side): the ROF may answer for the owner the request
  was about (R59); the response answers that request (``requestId``, ``resOwnerId``); it grants
  nothing that was not asked (every item was requested, every granted operation was
  requested, the expiry is within the requested one); it has not expired.
* :meth:`MessageGuard.refuse_unknown_response` (CCF side): a response to no outstanding
  request is refused, by the policy where it can tell without that request, else as unknown.
* :meth:`MessageGuard.check_revocation` (CCF side): the ROF may revoke for that owner.

Expiry checks never overflow: ``expiry + clock_skew <= now`` is decided as
``now - expiry >= clock_skew`` (the difference of two aware datetimes is always a
representable :class:`~datetime.timedelta`), so instants at either end of the datetime range
and any skew give a decision, not an :class:`OverflowError`.
"""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.capif8.messages import (
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.errors import UsageError
from capif8sec.policy.engine import PolicyEngine
from capif8sec.policy.model import Decision, DecisionDenied, Operation, PolicyRequest, Reason

__all__ = ["MessageGuard", "MessageRefused", "UnknownRequest"]


class MessageRefused(DecisionDenied):
    """The guard refused a CAPIF-8 message: ``reason`` says why, ``decision`` holds the
    audited decision.  The peer is not allowed to send it: in an HTTP server, 403."""


class UnknownRequest(MessageRefused):
    """A response to no outstanding request, from a peer the policy knows
    (:meth:`MessageGuard.refuse_unknown_response`): in an HTTP server, 404.  Also a
    :class:`MessageRefused`, so code that treats every refusal alike fails closed."""


#: Refusals that do not depend on the request a response answers: the peer's credential, its
#: authentication method, and the operation (a response is always ``authorize``).  For a
#: response to an unknown ``requestId`` these are the refusals an outstanding request would get.
_PEER_REFUSALS = frozenset(
    {
        Reason.NO_IDENTITY,
        Reason.UNKNOWN_IDENTITY,
        Reason.IDENTITY_REVOKED,
        Reason.CERTIFICATE_REVOKED,
        Reason.METHOD_NOT_ALLOWED,
        Reason.OPERATION_NOT_ALLOWED,
    }
)
#: Refusals that depend on the owner alone (chosen with the owner the response names).
_OWNER_REFUSALS = frozenset({Reason.OWNER_NOT_ALLOWED, Reason.OWNER_REVOKED})


def _aware(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise UsageError("now must be a timezone-aware datetime")
    return now


class MessageGuard:
    """Checks CAPIF-8 messages against the authenticated peer and the policy.

    :param engine: the policy engine (its revocations and reloads apply at once).
    :param clock_skew: how long past its expiry a message is still accepted (default 0).
    """

    def __init__(self, engine: PolicyEngine, *, clock_skew: dt.timedelta = dt.timedelta(0)) -> None:
        if not isinstance(engine, PolicyEngine):
            raise UsageError("MessageGuard takes a PolicyEngine")
        if clock_skew < dt.timedelta(0):
            raise UsageError("clock_skew must not be negative")
        self.engine = engine
        self.clock_skew = clock_skew

    def _finish(
        self, decision: Decision, refused: type[MessageRefused] = MessageRefused
    ) -> Decision:
        self.engine.audit(decision)
        if not decision.allowed:
            raise refused(decision)
        return decision

    def _expired(self, expiry: dt.datetime, now: dt.datetime) -> bool:
        # expiry + skew <= now, without computing a datetime that may be out of range: the
        # difference of two aware datetimes is always representable, the skew is compared as is
        return now - expiry >= self.clock_skew

    def check_request(
        self,
        peer: AuthenticatedPeer,
        request: ResourceOwnerAuthorizationRequest,
        now: dt.datetime | None = None,
    ) -> Decision:
        """ROF side: accept an authorization request from the CCF ``peer``?

        With ``now``, a request whose ``expiry`` has passed is refused (``expired``).

        :raises MessageRefused: ``ccf-not-accepted``, ``owner-not-allowed``, ... or
            ``expired``.
        """
        app = request.app_service_info
        policy_request = PolicyRequest(
            Operation.AUTHORIZE,
            request.res_owner_id,
            request.purpose_of_data_processing,
            app.asp_id,
            app.app_id,
            request.request_id,
            "ResourceOwnerAuthorizationRequest",
        )
        decision = self.engine.evaluate_ccf(peer, policy_request)
        expiry = request.expiry
        if (
            decision.allowed
            and now is not None
            and expiry is not None
            and self._expired(expiry, _aware(now))
        ):
            decision = decision.refuse(
                Reason.EXPIRED, f"the request expired at {expiry.isoformat()}"
            )
        return self._finish(decision)

    def check_response(
        self,
        peer: AuthenticatedPeer,
        response: ResourceOwnerAuthorizationResponse,
        original_request: ResourceOwnerAuthorizationRequest,
        now: dt.datetime,
    ) -> Decision:
        """CCF side: accept the ROF ``peer``'s answer to ``original_request``?

        :raises MessageRefused: a policy reason (``unknown-identity``, ``owner-not-allowed``,
            ``method-not-allowed``, ...), ``message-mismatch``, ``exceeds-request`` or
            ``expired``.
        """
        now = _aware(now)
        app = original_request.app_service_info
        policy_request = PolicyRequest(
            Operation.AUTHORIZE,
            original_request.res_owner_id,
            original_request.purpose_of_data_processing,
            app.asp_id,
            app.app_id,
            original_request.request_id,
            "ResourceOwnerAuthorizationResponse",
        )
        decision = self.engine.evaluate(peer, policy_request)
        if decision.allowed:
            problem = self._response_problem(response, original_request, now)
            if problem is not None:
                decision = decision.refuse(*problem)
        return self._finish(decision)

    def _response_problem(
        self,
        response: ResourceOwnerAuthorizationResponse,
        request: ResourceOwnerAuthorizationRequest,
        now: dt.datetime,
    ) -> tuple[Reason, str] | None:
        if response.request_id != request.request_id:
            return Reason.MESSAGE_MISMATCH, "the response answers another requestId"
        if response.res_owner_id != request.res_owner_id:
            return Reason.MESSAGE_MISMATCH, "the response is about another resource owner"
        if self._expired(response.expiry, now):
            return Reason.EXPIRED, f"the response expired at {response.expiry.isoformat()}"
        if request.expiry is not None and response.expiry > request.expiry:
            return (
                Reason.EXCEEDS_REQUEST,
                "the response's expiry is later than the requested expiry",
            )
        for i, item in enumerate(response.decisions):
            asked = request.item(item.key)
            if asked is None:
                return Reason.EXCEEDS_REQUEST, f"decisions[{i}] is about an item not requested"
            if item.granted and item.scope is not None and asked.operations is not None:
                extra = sorted(set(item.scope) - set(asked.operations))
                if extra:
                    return (
                        Reason.EXCEEDS_REQUEST,
                        f"decisions[{i}] grants operations not requested: {', '.join(extra)}",
                    )
        return None

    def refuse_unknown_response(
        self,
        peer: AuthenticatedPeer,
        response: ResourceOwnerAuthorizationResponse,
        outstanding: ResourceOwnerAuthorizationRequest | None = None,
    ) -> NoReturn:
        """CCF side: refuse the ROF ``peer``'s response to a request this CCF does not have
        outstanding (its ``requestId`` is unknown), or has outstanding for another owner than
        the response names (``outstanding``: refused exactly as an unknown one, so that an ROF
        cannot probe other owners' requests; audited as ``message-mismatch``).  Never
        accepts; audited once.

        The policy is asked first, as far as it can be without the original request, so that
        a peer the policy does not know cannot tell outstanding ``requestId`` values from
        unknown ones:

        1. what depends on the peer alone -- no identity, an identity no rule names, a revoked
           identity or certificate, a method or the ``authorize`` operation no rule of the
           peer allows: that refusal, the one :meth:`check_response` gives for any
           outstanding request too (:class:`MessageRefused`);
        2. the owner the response names: a peer that may not act for it (or whose right to
           was revoked) gets that refusal (:class:`MessageRefused`).  The owner only chooses
           between refusals, it never lets anything through;
        3. otherwise the policy knows the peer, and the refusal is :class:`UnknownRequest`
           (reason ``unknown-request``, or ``message-mismatch`` with ``outstanding``; the
           audit record has the ``requestId``).

        (The engine applies an owner's revocation only to what its rules allow, so a peer no
        rule names is refused ``unknown-identity`` whatever the owner; a known peer acting for
        a revoked owner is refused ``owner-revoked``, as for an outstanding request.)

        :raises MessageRefused: as in 1 or 2 (in an HTTP server, 403).
        :raises UnknownRequest: as in 3 (in an HTTP server, 404).
        """
        claimed = PolicyRequest(
            Operation.AUTHORIZE,
            response.res_owner_id,
            None,
            None,
            None,
            response.request_id,
            "ResourceOwnerAuthorizationResponse",
        )
        if outstanding is None:
            note = f"no outstanding request has requestId {response.request_id!r}"
        else:
            note = (
                f"requestId {response.request_id!r} is outstanding for another owner "
                f"({outstanding.res_owner_id}); answered as unknown"
            )
        decision = self.engine.evaluate(peer, claimed)
        if decision.reason in _PEER_REFUSALS or decision.reason in _OWNER_REFUSALS:
            self._finish(_unknown(decision, decision.reason, note))
        # The rules may not have allowed (the response names no purpose, ASP or application),
        # so the engine did not weigh the owner's revocation: it is looked up here.
        revoked = self.engine.revocations.check_owner(decision.identities, claimed.owner)
        if revoked is not None:
            self._finish(_unknown(decision, revoked[0], f"{revoked[1]}; {note}"))
        reason = Reason.UNKNOWN_REQUEST if outstanding is None else Reason.MESSAGE_MISMATCH
        self._finish(_unknown(decision, reason, note), UnknownRequest)
        raise AssertionError("unreachable: a refusal always raises")  # pragma: no cover

    def check_revocation(
        self, peer: AuthenticatedPeer, notification: RevocationNotification
    ) -> Decision:
        """CCF side: accept the ROF ``peer``'s revocation notification?

        The owner, ASP and application come from the notification (it is the ROF's own
        statement about authorizations it gave); the rule must allow ``revoke``.  A
        notification without ``appServiceInfo`` matches only rules whose ``asps`` and
        ``apps`` allow any value.

        :raises MessageRefused: a policy reason (``owner-not-allowed``, ...).
        """
        app = notification.app_service_info
        policy_request = PolicyRequest(
            Operation.REVOKE,
            notification.res_owner_id,
            None,
            app.asp_id if app is not None else None,
            app.app_id if app is not None else None,
            None,
            "RevocationNotification",
        )
        return self._finish(self.engine.evaluate(peer, policy_request))


def _unknown(decision: Decision, reason: Reason, note: str) -> Decision:
    """``decision`` as a refusal for ``reason``, its detail followed by ``note``."""
    detail = note if decision.detail is None else f"{decision.detail}; {note}"
    return decision.refuse(reason, detail)
