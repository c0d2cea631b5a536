"""The policy as plain Python objects: rules, requests, decisions and reason codes.

A :class:`Policy` holds two lists of :class:`Rule`:

* ``rules`` -- on the CCF side: which ROF identities may do what (answer authorization
  requests, revoke, query) for which resource owners, purposes, ASPs and applications, and
  with which authentication methods;
* ``ccf_rules`` -- on the ROF side: which CCF identities the ROF accepts requests from (and,
  optionally, for which owners, purposes, ASPs and applications).

Anything no rule allows is denied (deny by default).  The same objects come out of the TOML
loader (:mod:`capif8sec.policy.loader`) and can be built directly; every field is validated and
normalized when a :class:`Rule` is built, and a mistake raises
:class:`~capif8sec.errors.UsageError` naming the field.

Values of a rule are *exact* or *patterns*.  A pattern contains ``*`` (any run of characters,
dots included); every other character, ``?`` and ``[`` included, is literal; ``\\*`` is a
literal star and ``\\\\`` a literal backslash.  ``"*"`` alone means "any value"."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

from attrs import field, frozen

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.errors import PolicyDenied, UsageError
from capif8sec.policy.identity import IDENTITY_KINDS, identity_key

__all__ = [
    "ANY",
    "Decision",
    "DecisionDenied",
    "Operation",
    "Policy",
    "PolicyRequest",
    "Reason",
    "Rule",
    "canonical_owner",
    "escape",
    "exact_identity_key",
    "is_pattern",
    "is_resource_owner_id",
    "literal",
]

#: The pattern that matches any value.
ANY = "*"
#: The default of the optional dimensions: any value.
ANY_ONLY: tuple[str, ...] = (ANY,)
#: Longest purpose, ASP id, application id or rule id.
MAX_TEXT = 256

_T = TypeVar("_T")

# The local part of an external identifier: RFC 5322 atext and dots, without "*" (the policy's
# wildcard) -- visible ASCII only, so that every owner id is printable and one string.  The
# domain: LDH labels, compared case-insensitively (canonical form: lower case, no final dot).
_OWNER = re.compile(
    r"msisdn-[0-9]{5,15}"
    r"|extid-[A-Za-z0-9!#$%&'+./=?^_`{|}~-]{1,128}"
    r"@(?=[A-Za-z0-9.-]{1,253}\.?\Z)(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.?"
)
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")


class Operation(enum.StrEnum):
    """What the peer asks to do on CAPIF-8."""

    #: Answer a resource owner authorization information request (ROF -> CCF response), or,
    #: in a ``ccf_rules`` rule, send such a request (CCF -> ROF).
    AUTHORIZE = "authorize"
    #: Send an RO-triggered revocation (ROF -> CCF).
    REVOKE = "revoke"
    #: Read the authorizations stored for an owner (reserved for the server's endpoints).
    QUERY = "query"


class Reason(enum.StrEnum):
    """Why a decision came out the way it did (stable codes, for logs and metrics)."""

    #: A rule allowed the request.
    ALLOWED = "allowed"
    #: The peer carries no identity the policy can use (e.g. a plugin method, a certificate
    #: without usable SAN identifiers outside legacy mode).
    NO_IDENTITY = "no-identity"
    #: No ROF rule names any identity of the peer.
    UNKNOWN_IDENTITY = "unknown-identity"
    #: No CCF rule names any identity of the peer: the ROF does not accept this CCF.
    CCF_NOT_ACCEPTED = "ccf-not-accepted"
    #: Rules name the peer, but none accepts its authentication method.
    METHOD_NOT_ALLOWED = "method-not-allowed"
    #: Rules name the peer, but none allows the operation.
    OPERATION_NOT_ALLOWED = "operation-not-allowed"
    #: Rules name the peer, but none covers the resource owner (R59).
    OWNER_NOT_ALLOWED = "owner-not-allowed"
    #: ... nor the purpose of data processing.
    PURPOSE_NOT_ALLOWED = "purpose-not-allowed"
    #: ... nor the application service provider.
    ASP_NOT_ALLOWED = "asp-not-allowed"
    #: ... nor the application.
    APP_NOT_ALLOWED = "app-not-allowed"
    #: The peer's identity was revoked (R62).
    IDENTITY_REVOKED = "identity-revoked"
    #: The peer's certificate was revoked (R62).
    CERTIFICATE_REVOKED = "certificate-revoked"
    #: The resource owner's authorization was revoked, for every peer or for this one (R62).
    OWNER_REVOKED = "owner-revoked"
    #: A response does not belong to the request it claims to answer (requestId, resOwnerId).
    MESSAGE_MISMATCH = "message-mismatch"
    #: A response grants more than was asked: an item, an operation or an expiry not requested.
    EXCEEDS_REQUEST = "exceeds-request"
    #: A response or request whose expiry has passed.
    EXPIRED = "expired"
    #: A response to no outstanding request (its ``requestId`` is unknown).
    UNKNOWN_REQUEST = "unknown-request"


# -- field validation (shared with the loader, which adds file and line) ---------------------


class FieldProblem(Exception):
    """One invalid field value; ``index`` is the list element at fault, if any."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def is_pattern(value: str) -> bool:
    """Whether a rule value is a pattern: it holds a ``*`` not escaped as ``\\*``.

    ``*`` is the only wildcard (any run of characters); ``\\*`` is a literal star and
    ``\\\\`` a literal backslash in any rule value (see :func:`literal`).
    """
    if "\\" not in value:
        return "*" in value
    return "*" in value.replace("\\\\", "").replace("\\*", "")


def _escapes(value: str, index: int) -> None:
    """Refuse a backslash that escapes neither ``*`` nor a backslash."""
    if "\\" in value and "\\" in value.replace("\\\\", "").replace("\\*", ""):
        raise FieldProblem(
            f"{value!r}: a backslash is written \\\\ (and a literal * is \\*)", index
        )


def literal(value: str) -> str:
    """The literal text of an exact rule value: ``\\*`` -> ``*``, ``\\\\`` -> ``\\``."""
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", r"\1", value)


def escape(value: str) -> str:
    """A literal text as an exact rule value (the inverse of :func:`literal`)."""
    if "\\" not in value and "*" not in value:
        return value
    return value.replace("\\", "\\\\").replace("*", "\\*")


def is_resource_owner_id(value: str) -> bool:
    """Whether ``value`` is a resource owner id: ``msisdn-<5 to 15 digits>`` or
    ``extid-<local>@<domain>`` (the GPSI forms of TS 29.571; the format of ``resOwnerId`` is
    not fixed by the specifications read, see the spec digest section 5).  The local part is
    visible ASCII without ``*`` and ``@``; the domain, LDH labels in any case."""
    return type(value) is str and _OWNER.fullmatch(value) is not None


def canonical_owner(value: str) -> str:
    """A resource owner id in its canonical form: the domain of an external identifier in
    lower case without a final dot (a DNS name: ``extid-a@OP.example.`` is
    ``extid-a@op.example``).  Owners are compared, revoked and audited in this form.

    :raises UsageError: ``value`` is not a resource owner id.
    """
    if not is_resource_owner_id(value):
        raise UsageError(
            f"{value!r} is not a resource owner id ('msisdn-' and 5 to 15 digits, or "
            "'extid-<local>@<domain>')"
        )
    if value[0] == "m":
        return value
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower().removesuffix('.')}"


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        if not value:
            raise FieldProblem("must not be an empty string")
        return [value]
    if type(value) is tuple and len(value) == 1 and type(value[0]) is str and value[0]:
        return [value[0]]
    if not isinstance(value, (list, tuple, frozenset, set)):
        raise FieldProblem("expected a string or a list of strings")
    items = list(value)
    if not items:
        raise FieldProblem("must not be empty: a rule with no value here never matches")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise FieldProblem(f"expected a string, got {type(item).__name__}", i)
        if not item:
            raise FieldProblem("must not be an empty string", i)
    return items


def _dedupe(values: list[str]) -> tuple[str, ...]:
    return (values[0],) if len(values) == 1 else tuple(dict.fromkeys(values))


def check_rule_id(value: object) -> str:
    """A rule id: 1 to 128 characters, letters, digits and ``._:@/-``."""
    if not isinstance(value, str):
        raise FieldProblem("expected a string")
    if not _RULE_ID.fullmatch(value):
        raise FieldProblem(
            "a rule id is 1 to 128 letters, digits and ._:@/- starting with a letter or digit"
        )
    return value


def _domain_pattern(domain: str, item: str, index: int) -> str:
    """A domain name pattern as the names it matches are kept: lower case, no final dot."""
    domain = domain.lower().removesuffix(".")
    if not domain or domain.endswith(".") or ".." in domain:
        raise FieldProblem(f"{item!r}: a domain name has no empty label", index)
    return domain


_STARS = str.maketrans("", "", "*")
_SEPARATORS = {"dns": str.maketrans("", "", "*."), "uri": str.maketrans("", "", "*.:/")}


def check_identities(value: object) -> tuple[str, ...]:
    """Typed identities (``dns:...``, ``uri:...``, ``ip:...``, ``psk:...``, ``scram:...``,
    ``cn:...``), exact or patterns; exact ones normalized to their key form."""
    out: list[str] = []
    for i, item in enumerate(_strings(value)):
        _escapes(item, i)
        kind, sep, rest = item.partition(":")
        if not sep or kind not in IDENTITY_KINDS:
            raise FieldProblem(
                f"{item!r}: an identity starts with its kind ({', '.join(IDENTITY_KINDS)}) and "
                "a colon, e.g. 'uri:urn:capif:rof:rof-1' or 'dns:*.rof.example'",
                i,
            )
        if is_pattern(item):
            if kind == "ip":
                raise FieldProblem(f"{item!r}: IP identities are exact, not patterns", i)
            if kind == "dns":  # as the keys
                rest = _domain_pattern(rest, item, i)
            elif kind == "cn":
                rest = rest.lower()
            # Normalized first, then judged (so a value checked twice gives one answer).  Not
            # literal enough: only stars and the separators every value of the kind holds.
            if kind == "uri" and "*" in rest.partition(":")[0]:
                raise FieldProblem(f"{item!r}: a URI pattern names its scheme", i)
            if not rest.translate(_SEPARATORS.get(kind, _STARS)):
                raise FieldProblem(
                    f"{item!r}: a pattern must name part of the identity (any {kind} "
                    "identity at all is too broad to be an accident)",
                    i,
                )
            out.append(f"{kind}:{rest}")
            continue
        try:
            out.append(escape(identity_key(literal(item))))
        except UsageError as exc:
            raise FieldProblem(str(exc), i) from None
    return _dedupe(out)


def exact_identity_key(text: str) -> str:
    """The key of one identity written as a rule names it exactly (``psk:rof\\*1`` for the PSK
    identity ``rof*1``): what revocations take, so that an identity copied from a policy file
    names the same peer there.

    :raises UsageError: not an identity, a pattern, or a backslash escaping neither ``*`` nor
        a backslash.
    """
    if not isinstance(text, str):
        raise UsageError("an identity is a string such as 'psk:rof-1' or 'uri:urn:...'")
    try:
        _escapes(text, 0)
    except FieldProblem as exc:
        raise UsageError(exc.message) from None
    if is_pattern(text):
        raise UsageError(f"{text!r} is a pattern; name one identity (a literal * is \\*)")
    return identity_key(literal(text))


def check_owners(value: object) -> tuple[str, ...]:
    """Resource owner ids (``msisdn-<digits>``, ``extid-<local>@<domain>``) or patterns."""
    out: list[str] = []
    for i, item in enumerate(_strings(value)):
        _escapes(item, i)
        if is_pattern(item):
            if item != ANY and not item.startswith(("msisdn-", "extid-")):
                raise FieldProblem(
                    f"{item!r}: an owner pattern is '*' or starts with 'msisdn-' or 'extid-'", i
                )
            if not item.isascii() or not item.isprintable() or len(item) > MAX_TEXT:
                raise FieldProblem(f"{item!r}: an owner pattern is visible ASCII text", i)
            local, at, domain = item.rpartition("@")  # as canonical owners
            out.append(f"{local}@{_domain_pattern(domain, item, i)}" if at else item)
            continue
        try:
            out.append(canonical_owner(literal(item)))
        except UsageError as exc:
            raise FieldProblem(str(exc), i) from None
    return _dedupe(out)


def check_texts(value: object) -> tuple[str, ...]:
    """Purposes, ASP ids or application ids: printable text up to 256 characters, or patterns."""
    if value is ANY_ONLY:
        return ANY_ONLY
    items = _strings(value)
    for i, item in enumerate(items):
        _escapes(item, i)
        if len(item) > MAX_TEXT:
            raise FieldProblem(f"longer than {MAX_TEXT} characters", i)
        if not item.isprintable():
            raise FieldProblem(f"{item!r} holds control or unprintable characters", i)
    return _dedupe(items)


def check_operations(value: object) -> frozenset[Operation]:
    """Operation names: ``authorize``, ``revoke``, ``query``."""
    if type(value) is frozenset and value and all(type(v) is Operation for v in value):
        return value
    out: set[Operation] = set()
    for i, item in enumerate(_strings(value)):
        try:
            out.add(Operation(item))
        except ValueError:
            names = ", ".join(o.value for o in Operation)
            raise FieldProblem(f"{item!r} is not an operation ({names})", i) from None
    return frozenset(out)


def check_methods(value: object) -> frozenset[Method]:
    """Authentication method names: ``certificate``, ``psk``, ``psk-in-channel``, ``password``."""
    if type(value) is frozenset and value and all(type(v) is Method for v in value):
        return value
    out: set[Method] = set()
    for i, item in enumerate(_strings(value)):
        try:
            out.add(Method(item))
        except ValueError:
            names = ", ".join(m.value for m in Method)
            raise FieldProblem(f"{item!r} is not an authentication method ({names})", i) from None
    return frozenset(out)


def _field(name: str, check: Callable[[object], _T], value: object) -> _T:
    try:
        return check(value)
    except FieldProblem as exc:
        where = name if exc.index is None else f"{name}[{exc.index}]"
        raise UsageError(f"{where}: {exc.message}") from None


def _rule_id(value: object) -> str:
    return _field("id", check_rule_id, value)


def _identities(value: object) -> tuple[str, ...]:
    return _field("identities", check_identities, value)


def _owners(value: object) -> tuple[str, ...]:
    return _field("owners", check_owners, value)


def _operations(value: object) -> frozenset[Operation]:
    return _field("operations", check_operations, value)


def _methods(value: object) -> frozenset[Method]:
    return _field("methods", check_methods, value)


def _purposes(value: object) -> tuple[str, ...]:
    return _field("purposes", check_texts, value)


def _asps(value: object) -> tuple[str, ...]:
    return _field("asps", check_texts, value)


def _apps(value: object) -> tuple[str, ...]:
    return _field("apps", check_texts, value)


@frozen
class Rule:
    """Allows ``identities`` to perform ``operations`` for ``owners`` (deny by default).

    Every dimension must match for the rule to allow a request: one of the peer's identities
    is in ``identities``, the peer authenticated with one of ``methods``, the operation is in
    ``operations``, and the owner, purpose, ASP and application are matched by ``owners``,
    ``purposes``, ``asps`` and ``apps`` (which default to any).  A request that carries no
    purpose, ASP or application (a revocation of everything, say) matches only a rule whose
    dimension is ``"*"``.

    Strings are accepted where a list is expected and stand for a one-element list.
    """

    id: str = field(converter=_rule_id)
    identities: tuple[str, ...] = field(converter=_identities)
    owners: tuple[str, ...] = field(converter=_owners)
    operations: frozenset[Operation] = field(converter=_operations)
    methods: frozenset[Method] = field(converter=_methods)
    purposes: tuple[str, ...] = field(default=ANY_ONLY, converter=_purposes)
    asps: tuple[str, ...] = field(default=ANY_ONLY, converter=_asps)
    apps: tuple[str, ...] = field(default=ANY_ONLY, converter=_apps)
    description: str | None = None


def _rules(value: Iterable[Rule]) -> tuple[Rule, ...]:
    rules = tuple(value)
    for rule in rules:
        if not isinstance(rule, Rule):
            raise UsageError(f"expected Rule objects, got {type(rule).__name__}")
    return rules


@frozen
class Policy:
    """A complete policy: ROF rules, CCF rules and settings.  Immutable; swap it whole.

    ``version`` is free text that every audit record carries (e.g. a date or a commit), so a
    decision can be traced to the policy that made it.  ``legacy_cn`` lets a certificate's CN
    serve as its identity when it has no SAN identifier at all (R57).
    """

    rules: tuple[Rule, ...] = field(default=(), converter=_rules)
    ccf_rules: tuple[Rule, ...] = field(default=(), converter=_rules)
    version: str | None = None
    legacy_cn: bool = False
    #: Where the policy was loaded from, if from a file.
    source: str | None = None

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for rule in (*self.rules, *self.ccf_rules):
            if rule.id in seen:
                raise UsageError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)


@frozen
class PolicyRequest:
    """What the peer asks, as the policy sees it (taken from messages the guard checked).

    ``request_id`` and ``message`` only feed the audit record.
    """

    operation: Operation = field(converter=Operation)
    #: Put in canonical form (:func:`canonical_owner`); not a resource owner id: UsageError.
    owner: str = field(converter=canonical_owner)
    purpose: str | None = None
    asp: str | None = None
    app: str | None = None
    request_id: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {
            "operation": self.operation.value,
            "owner": self.owner,
            "purpose": self.purpose,
            "asp": self.asp,
            "app": self.app,
            "request_id": self.request_id,
            "message": self.message,
        }


def _iso(epoch: float) -> str:
    stamp = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Decision(NamedTuple):
    """The outcome of one policy check (an immutable value).

    ``allowed`` and ``reason`` say what and why; ``rule`` is the id of the rule that allowed
    the request (None when denied, except for the guard's refusals of a message a rule had
    allowed, which keep the rule).  :attr:`audit` is the structured, JSON-serializable audit
    record; the peer's evidence never enters it.  ``bool(decision)`` is ``decision.allowed``.

    (A named tuple rather than an attrs class: it is made on every decision, and a tuple is
    built several times faster than a frozen attrs instance.)
    """

    allowed: bool
    reason: Reason
    rule: str | None
    request: PolicyRequest
    peer: AuthenticatedPeer
    #: The identity keys the policy looked at (``kind:value``).
    identities: tuple[str, ...] = ()
    #: ``rof`` (ROF rules, checked by a CCF) or ``ccf`` (CCF rules, checked by an ROF).
    side: str = "rof"
    #: Seconds since the epoch when the decision was made.
    time: float = 0.0
    policy_version: str | None = None
    #: Extra explanation for a refusal (no secrets: names, ids, times).
    detail: str | None = None

    def __bool__(self) -> bool:
        return self.allowed

    def __repr__(self) -> str:  # no peer evidence in reprs either
        return (
            f"Decision(allowed={self.allowed!r}, reason={self.reason.value!r}, "
            f"rule={self.rule!r}, identities={self.identities!r}, side={self.side!r}, "
            f"detail={self.detail!r})"
        )

    def refuse(self, reason: Reason, detail: str) -> Decision:
        """This decision turned into a refusal for ``reason`` (keeps the rule, for audit)."""
        return self._replace(allowed=False, reason=reason, detail=detail)

    @property
    def audit(self) -> dict[str, Any]:
        """The audit record: time, peer, request, decision, reason, rule; no secrets.

        The peer appears by its identity, method, identity keys, TLS version and suite and
        certificate fingerprint; the authenticator's ``evidence`` mapping is never read.
        """
        peer = self.peer
        tls = peer.tls
        return {
            "event": "capif8sec.policy.decision",
            "time": _iso(self.time),
            "decision": "allow" if self.allowed else "deny",
            "reason": self.reason.value,
            "rule": self.rule,
            "side": self.side,
            "policy_version": self.policy_version,
            "peer": {
                "identity": peer.identity,
                "method": str(peer.method),
                # written as rules and revocations take them (a literal * is \\*)
                "identities": [escape(key) for key in self.identities],
                "tls_version": tls.version if tls is not None else None,
                "cipher": tls.cipher if tls is not None else None,
                "certificate_sha256": tls.certificate_fingerprint if tls is not None else None,
            },
            "request": self.request.as_dict(),
            "detail": self.detail,
        }


class DecisionDenied(PolicyDenied):
    """A refusal carrying its :class:`Decision` (``decision``) and reason code (``reason``)."""

    def __init__(self, decision: Decision) -> None:
        text = f"denied ({decision.reason.value})"
        if decision.detail:
            text += f": {decision.detail}"
        super().__init__(text)
        self.decision = decision
        self.reason = decision.reason
