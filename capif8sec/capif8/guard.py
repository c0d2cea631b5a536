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
* :meth:`MessageGuard.check_revocation` (CCF side): the ROF may revoke for that owner.
"""

from __future__ import annotations

import datetime as dt

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.capif8.messages import (
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.errors import UsageError
from capif8sec.policy.engine import PolicyEngine
from capif8sec.policy.model import Decision, DecisionDenied, Operation, PolicyRequest, Reason

__all__ = ["MessageGuard", "MessageRefused"]


class MessageRefused(DecisionDenied):
    """The guard refused a CAPIF-8 message: ``reason`` says why, ``decision`` holds the
    audited decision.  The peer is not allowed to send it: in an HTTP server, 403."""


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

    def _finish(self, decision: Decision) -> Decision:
        self.engine.audit(decision)
        if not decision.allowed:
            raise MessageRefused(decision)
        return decision

    def _expired(self, expiry: dt.datetime, now: dt.datetime) -> bool:
        return expiry + self.clock_skew <= now

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
