"""The policy engine: fast, deny-by-default decisions, run-time reloads and revocations.

How a decision is made (:meth:`PolicyEngine.decide`):

1. The peer's identity keys come from its authenticated credential only
   (:func:`~capif8sec.policy.identity.policy_keys`, R56/R57).  None: ``no-identity``.
2. The revocation list is consulted -- on every decision, nothing is cached (R62): a revoked
   identity or certificate is refused.  A revoked owner (for everyone or for this peer) turns
   what the rules would allow into ``owner-revoked`` (step 5); a refusal stays the refusal
   it is, so a peer the policy does not know is told ``unknown-identity`` whatever the owner
   it asks about (it learns nothing about owners' revocations).
3. **Precedence.**  The rules that name one of the peer's identity keys *exactly* are looked up
   in a dict.  If there is at least one, only those rules are considered: an identity named
   exactly is governed by its exact rules alone, and pattern rules never widen (or narrow) what
   they allow.  Only when no rule names the peer exactly are the pattern rules tried, in file
   order.  Among the candidate rules the first that matches every dimension wins; its id is the
   decision's ``rule``.
4. No candidate matches every dimension: denied, with the reason of the candidate that came
   closest (dimensions are checked in the order method, operation, owner, purpose, ASP,
   application).
5. Allowed by a rule, but the owner's authorization is revoked (for everyone, or for one of
   the peer's identities): ``owner-revoked``.

Cost: one dict lookup per identity key, then the candidate rules of that identity (each
dimension a set lookup, patterns only for the values that are patterns); the number of rules
that name other identities does not matter.  A rule whose identities are exact (and named by no
other rule) and whose owners are exact is also indexed by identity and owner together
(:class:`_Group`), so the usual single-identity decision is one dict lookup: same outcome, fewer
memory accesses on big policies.  Pattern identity rules are scanned linearly, so keep them few.

Reloads (:meth:`PolicyEngine.reload`) build the new index first and swap a single reference
under a lock; a decision reads that reference once, so it always sees one policy, old or new,
never a mix.  Revocations live in the engine, not in the policy: they survive reloads.

Every decision made by :meth:`~PolicyEngine.decide` (and every outcome of the message guard) is
audited: its :attr:`~capif8sec.policy.model.Decision.audit` record goes to the
``capif8sec.policy.audit`` logger at INFO (as JSON text, and as the ``audit`` attribute of the
log record) and to the optional hook.  An exception raised by the hook propagates: the caller
gets no decision (fail closed).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from attrs import frozen

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.errors import UsageError
from capif8sec.policy.identity import policy_keys
from capif8sec.policy.model import (
    ANY,
    Decision,
    DecisionDenied,
    Operation,
    Policy,
    PolicyRequest,
    Reason,
    Rule,
    canonical_owner,
    escape,
    exact_identity_key,
    is_pattern,
    literal,
)

__all__ = ["AUDIT_LOGGER", "AuditHook", "PolicyEngine", "RevocationList"]

#: The logger audit records go to.
AUDIT_LOGGER = logging.getLogger("capif8sec.policy.audit")

#: Called with every audited decision.
AuditHook = Callable[[Decision], None]

#: Exact values up to this many are kept in a tuple (faster than a set for a few values).
_TUPLE_MAX = 4


_STAR = re.compile(r"\\.|\*")


def _glob(pattern: str) -> str:
    """``*`` -> any run of characters, ``\\*`` and ``\\\\`` -> literal ``*`` and ``\\``,
    all else literal (for fullmatch).

    Linear, not backtracking: ``a*b*c`` becomes ``a(?>.*?b).*c``.  The literal segments
    between stars are fixed strings, so the leftmost match of each is always a right choice and
    the atomic group keeps it; plain ``a.*b.*c`` made a value of n characters cost O(n^stars)
    (seconds for four stars on 256 characters -- a purpose or an owner an ROF sends).
    """
    parts, start = [], 0
    for m in _STAR.finditer(pattern):
        if m.group() == "*":
            parts.append(re.escape(literal(pattern[start : m.start()])))
            start = m.end()
    parts.append(re.escape(literal(pattern[start:])))
    if len(parts) == 1:
        return parts[0]
    return parts[0] + "".join(f"(?>.*?{p})" for p in parts[1:-1]) + ".*" + parts[-1]


class _Values:
    """One restricted dimension of a compiled rule: exact values, and patterns as one regex.

    A dimension that allows any value is not a :class:`_Values` but None.
    """

    __slots__ = ("exact", "pattern")

    def __init__(self, values: tuple[str, ...]) -> None:
        if len(values) == 1 and not is_pattern(values[0]):  # the usual case, kept cheap
            self.exact: tuple[str, ...] | frozenset[str] = (literal(values[0]),)
            self.pattern: re.Pattern[str] | None = None
            return
        exact = [literal(v) for v in values if not is_pattern(v)]
        self.exact = tuple(exact) if len(exact) <= _TUPLE_MAX else frozenset(exact)
        patterns = [v for v in values if is_pattern(v)]
        self.pattern = (
            re.compile("|".join(f"(?:{_glob(p)})" for p in patterns), re.DOTALL)
            if patterns
            else None
        )

    def has(self, value: str | None) -> bool:
        if value is None:
            return False
        if value in self.exact:
            return True
        return self.pattern is not None and self.pattern.fullmatch(value) is not None


def _values(values: tuple[str, ...], cache: dict[Any, Any]) -> _Values | None:
    if ANY in values:
        return None
    if len(values) == 1 and not is_pattern(values[0]):
        return _Values(values)  # unique values (one owner per rule) are not worth caching
    found = cache.get(values)
    if found is None:
        found = cache[values] = _Values(values)
    return found


class _Compiled:
    """A rule as the engine evaluates it (None: the dimension allows any value)."""

    __slots__ = ("apps", "asps", "id", "methods", "operations", "order", "owners", "purposes")

    def __init__(self, rule: Rule, order: int, cache: dict[Any, Any]) -> None:
        self.id = rule.id
        self.order = order  # the rule's place in the policy: the first match wins
        self.methods: frozenset[str] = rule.methods
        self.operations: frozenset[Operation] = rule.operations
        # A single exact owner (the usual case) is kept as the string itself: one object less
        # to reach on every decision.
        owners = rule.owners
        self.owners: str | _Values | None = (
            literal(owners[0])
            if len(owners) == 1 and not is_pattern(owners[0])
            else _values(owners, cache)
        )
        self.purposes = _values(rule.purposes, cache)
        self.asps = _values(rule.asps, cache)
        self.apps = _values(rule.apps, cache)


#: Largest number of (identity, owner) entries one rule may add to the fast index.
_FAST_MAX_PAIRS = 4096


class _Group:
    """Rules that share every dimension but identity and owner, indexed by both at once.

    ``pairs`` maps ``identity key + NUL + owner`` to the rule id.  It holds only rules whose
    identities are all exact, named by no other rule, and whose owners are all exact, so a hit
    is exactly the one candidate the general path would find, and the decision is the same.
    It exists for speed alone: the owner is compared inside the dict lookup, and the rule
    needs no object of its own, which saves two memory accesses per decision on big policies.

    ``identities`` holds the identity keys of those rules: a peer whose identity is there and
    whose pair is not asks for an owner its only rule does not name, which is the general
    path's ``owner-not-allowed`` without its three dependent lookups (a set entry holds its
    hash and key, so a set probe costs one memory access less than a dict's).
    """

    __slots__ = ("apps", "asps", "identities", "methods", "operations", "pairs", "purposes")

    def __init__(self, compiled: _Compiled) -> None:
        self.methods = compiled.methods
        self.operations = compiled.operations
        self.purposes = compiled.purposes
        self.asps = compiled.asps
        self.apps = compiled.apps
        self.pairs: dict[str, str] = {}
        self.identities: frozenset[str] = frozenset()


class _RuleSet:
    """Exact identity keys in a dict; pattern identities as compiled regexes; fast groups.

    The dict maps a key to its one rule, or to a list when several rules name it (one object
    less to reach in the usual case).
    """

    __slots__ = ("exact", "fast", "patterns")

    def __init__(self, rules: Iterable[Rule], cache: dict[Any, Any]) -> None:
        exact: dict[str, _Compiled | list[_Compiled]] = {}
        patterns: list[tuple[re.Pattern[str], _Compiled]] = []
        compiled_rules: list[tuple[Rule, _Compiled]] = []
        for order, rule in enumerate(rules):
            compiled = _Compiled(rule, order, cache)
            compiled_rules.append((rule, compiled))
            globs = None
            for ident in rule.identities:
                if is_pattern(ident):
                    globs = [*(globs or ()), ident]
                    continue
                key = literal(ident)
                found = exact.get(key)
                if found is None:
                    exact[key] = compiled
                elif isinstance(found, list):
                    found.append(compiled)
                else:
                    exact[key] = [found, compiled]
            if globs:
                regex = "|".join(f"(?:{_glob(g)})" for g in globs)
                patterns.append((re.compile(regex, re.DOTALL), compiled))
        groups: dict[Any, _Group] = {}
        members: dict[_Group, set[str]] = {}  # each group's identity keys
        for rule, compiled in compiled_rules:
            if len(rule.identities) * len(rule.owners) > _FAST_MAX_PAIRS or any(
                is_pattern(v) for v in (*rule.identities, *rule.owners)
            ):
                continue
            idents = [literal(i) for i in rule.identities]
            owners = [literal(o) for o in rule.owners]
            if any(not isinstance(exact.get(i), _Compiled) for i in idents):  # shared
                continue
            signature = (rule.methods, rule.operations, rule.purposes, rule.asps, rule.apps)
            group = groups.get(signature)
            if group is None:
                group = groups[signature] = _Group(compiled)
            for ident in idents:
                members.setdefault(group, set()).add(ident)
                for owner in owners:
                    group.pairs[f"{ident}\x00{owner}"] = compiled.id
        for group, identities in members.items():
            group.identities = frozenset(identities)
        self.exact = exact
        self.patterns = tuple(patterns)
        self.fast = tuple(groups.values())


class _Index:
    __slots__ = ("ccf", "legacy_cn", "policy", "rof", "version")

    def __init__(self, policy: Policy) -> None:
        cache: dict[Any, Any] = {}
        self.policy = policy
        self.rof = _RuleSet(policy.rules, cache)
        self.ccf = _RuleSet(policy.ccf_rules, cache)
        self.legacy_cn = policy.legacy_cn
        self.version = policy.version


@frozen
class _Revoked:
    identities: frozenset[str] = frozenset()
    certificates: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    grants: frozenset[tuple[str, str]] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.identities or self.certificates or self.owners or self.grants)


def _fingerprint(value: str) -> str:
    text = value.replace(":", "").lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise UsageError("a certificate fingerprint is 64 hex digits (SHA-256)")
    return text


class RevocationList:
    """Revoked identities, certificates and owner authorizations (R62), thread-safe.

    Each change replaces an immutable snapshot under a lock; the engine reads the snapshot on
    every decision, so a revocation is seen by the very next decision, and a decision never
    sees half of a change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = _Revoked()
        self._empty = True

    def _change(self, name: str, value: Any, add: bool) -> None:
        with self._lock:  # read-modify-write under the lock: no revocation is lost
            old = self._snapshot
            current: frozenset[Any] = getattr(old, name)
            values = {f: getattr(old, f) for f in _FIELDS}
            values[name] = current | {value} if add else current - {value}
            new = _Revoked(**values)
            self._snapshot = new
            self._empty = new.empty

    def revoke_identity(self, identity: str) -> None:
        """Revoke a credential by its identity key, e.g. ``psk:rof-1`` or ``uri:urn:...``,
        written as a rule names it exactly (a literal ``*`` is ``\\*``, a backslash ``\\\\``;
        a pattern is refused)."""
        self._change("identities", exact_identity_key(identity), True)

    def restore_identity(self, identity: str) -> None:
        """Undo :meth:`revoke_identity`."""
        self._change("identities", exact_identity_key(identity), False)

    def revoke_certificate(self, sha256: str) -> None:
        """Revoke a certificate by its SHA-256 fingerprint (hex, colons allowed)."""
        self._change("certificates", _fingerprint(sha256), True)

    def restore_certificate(self, sha256: str) -> None:
        """Undo :meth:`revoke_certificate`."""
        self._change("certificates", _fingerprint(sha256), False)

    def revoke_owner(self, owner: str, *, identity: str | None = None) -> None:
        """Revoke a resource owner's authorization: for every peer (the owner offboarded), or
        only ``identity``'s right to act for the owner."""
        if identity is None:
            self._change("owners", canonical_owner(owner), True)
        else:
            self._change("grants", (canonical_owner(owner), exact_identity_key(identity)), True)

    def restore_owner(self, owner: str, *, identity: str | None = None) -> None:
        """Undo :meth:`revoke_owner` (with the same arguments)."""
        if identity is None:
            self._change("owners", canonical_owner(owner), False)
        else:
            self._change("grants", (canonical_owner(owner), exact_identity_key(identity)), False)

    def as_dict(self) -> dict[str, list[Any]]:
        """JSON-ready form of the current revocations (identities written as the ``revoke_*``
        and ``restore_*`` methods take them)."""
        snap = self._snapshot
        return {
            "identities": sorted(escape(i) for i in snap.identities),
            "certificates": sorted(snap.certificates),
            "owners": sorted(snap.owners),
            "grants": [[o, escape(i)] for o, i in sorted(snap.grants)],
        }

    def check(
        self, keys: tuple[str, ...], peer: AuthenticatedPeer, owner: str
    ) -> tuple[Reason, str] | None:
        """The revocation that applies to this peer (its identity keys, as
        :func:`~capif8sec.policy.identity.policy_keys` gives them) and owner, if any."""
        return self.check_peer(keys, peer) or self.check_owner(keys, owner)

    def check_owner(self, keys: tuple[str, ...], owner: str) -> tuple[Reason, str] | None:
        """The revocation of ``owner``'s authorization (any spelling of it), for everyone or
        for one of ``keys``, if any.

        :raises UsageError: ``owner`` is not a resource owner id.
        """
        return self._owner_revoked(keys, canonical_owner(owner))

    def check_peer(
        self, keys: tuple[str, ...], peer: AuthenticatedPeer
    ) -> tuple[Reason, str] | None:
        """The revocation of this peer's identity or certificate, if any."""
        if self._empty:
            return None
        snap = self._snapshot
        for key in keys:
            if key in snap.identities:
                return Reason.IDENTITY_REVOKED, f"identity {escape(key)} is revoked"
        if snap.certificates and peer.tls is not None:
            fingerprint = peer.tls.certificate_fingerprint
            if fingerprint is not None and fingerprint.lower() in snap.certificates:
                return Reason.CERTIFICATE_REVOKED, "the peer's certificate is revoked"
        return None

    def _owner_revoked(self, keys: tuple[str, ...], owner: str) -> tuple[Reason, str] | None:
        # ``owner`` in canonical form (a PolicyRequest's owner is)
        if self._empty:
            return None
        snap = self._snapshot
        if owner in snap.owners:
            return Reason.OWNER_REVOKED, f"the authorization of {owner} is revoked"
        for key in keys:
            if (owner, key) in snap.grants:
                return Reason.OWNER_REVOKED, f"{escape(key)} may no longer act for {owner}"
        return None


_FIELDS = ("identities", "certificates", "owners", "grants")

# Module constants: reading an enum member off its class is slow on the hot path (3.11).
_ALLOWED = Reason.ALLOWED
_NO_IDENTITY = Reason.NO_IDENTITY
_OWNER_NOT_ALLOWED = Reason.OWNER_NOT_ALLOWED

_DIMENSIONS = (
    Reason.METHOD_NOT_ALLOWED,
    Reason.OPERATION_NOT_ALLOWED,
    Reason.OWNER_NOT_ALLOWED,
    Reason.PURPOSE_NOT_ALLOWED,
    Reason.ASP_NOT_ALLOWED,
    Reason.APP_NOT_ALLOWED,
)


class _LazyJson:
    __slots__ = ("record",)

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def __str__(self) -> str:
        return json.dumps(self.record, sort_keys=True, separators=(",", ":"))


class PolicyEngine:
    """Decides, from a :class:`~capif8sec.policy.model.Policy`, what authenticated peers may do.

    :param policy: the policy to start with (default: empty, which denies everything).
    :param audit_hook: called with every audited decision.
    :param clock: seconds since the epoch (default :func:`time.time`), for the audit time.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        audit_hook: AuditHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._index = _Index(policy if policy is not None else Policy())
        self._hook = audit_hook
        self._clock = clock
        self._revocations = RevocationList()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> PolicyEngine:
        """An engine for the policy in a TOML file (see :mod:`capif8sec.policy.loader`)."""
        from capif8sec.policy.loader import load_policy

        return cls(load_policy(path), **kwargs)

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._index.policy

    @property
    def revocations(self) -> RevocationList:
        """The revocation list every decision consults."""
        return self._revocations

    def reload(self, policy: Policy) -> None:
        """Put ``policy`` in force.  Decisions under way finish with the old one."""
        if not isinstance(policy, Policy):
            raise UsageError("reload takes a Policy")
        index = _Index(policy)  # built outside the lock: decisions go on meanwhile
        with self._lock:
            self._index = index

    def reload_file(self, path: str | os.PathLike[str]) -> Policy:
        """Load a TOML policy file and put it in force; on any error the old policy stays.

        :raises PolicyFileError: the file cannot be used (the old policy stays in force).
        """
        from capif8sec.policy.loader import load_policy

        policy = load_policy(path)
        self.reload(policy)
        return policy

    # -- decisions -------------------------------------------------------------------------

    def evaluate(self, peer: AuthenticatedPeer, request: PolicyRequest) -> Decision:
        """Decide against the ROF rules without auditing (the guard audits its own outcome);
        most callers want :meth:`decide`."""
        return self._evaluate(peer, request, False, False)

    def evaluate_ccf(self, peer: AuthenticatedPeer, request: PolicyRequest) -> Decision:
        """Decide against the CCF rules (the ROF side) without auditing."""
        return self._evaluate(peer, request, True, False)

    def decide(self, peer: AuthenticatedPeer, request: PolicyRequest) -> Decision:
        """May this ROF do ``request``?  Checked against the ROF rules; audited."""
        return self._evaluate(peer, request, False, True)

    def decide_ccf(self, peer: AuthenticatedPeer, request: PolicyRequest) -> Decision:
        """Does this ROF accept ``request`` from this CCF?  Checked against the CCF rules;
        audited."""
        return self._evaluate(peer, request, True, True)

    def require(self, peer: AuthenticatedPeer, request: PolicyRequest) -> Decision:
        """:meth:`decide`, raising :class:`~capif8sec.policy.model.DecisionDenied` on a
        denial."""
        decision = self.decide(peer, request)
        if not decision.allowed:
            raise DecisionDenied(decision)
        return decision

    def audit(self, decision: Decision) -> None:
        """Hand a decision's audit record to the audit logger and the hook."""
        if AUDIT_LOGGER.isEnabledFor(logging.INFO):
            record = decision.audit
            AUDIT_LOGGER.info("%s", _LazyJson(record), extra={"audit": record})
        if self._hook is not None:
            self._hook(decision)

    def _evaluate(
        self, peer: AuthenticatedPeer, request: PolicyRequest, ccf: bool, audit: bool
    ) -> Decision:
        # The hot path, kept flat on purpose: no helper call on the fast path.
        index = self._index  # read once: one consistent policy for the whole decision
        keys = policy_keys(peer, legacy_cn=index.legacy_cn)
        rule: str | None = None
        detail: str | None = None
        owner = request.owner
        revocations = self._revocations
        if not keys:
            reason = _NO_IDENTITY
        elif not revocations._empty and (found := revocations.check_peer(keys, peer)):
            reason, detail = found
        else:
            ruleset = index.ccf if ccf else index.rof
            known = False  # the identity's only rule is in a fast group that fits, see _Group
            if len(keys) == 1 and ruleset.fast:
                method = peer.method
                operation = request.operation
                key = keys[0]
                pair = f"{key}\x00{owner}"
                for g in ruleset.fast:
                    if (
                        method in g.methods
                        and operation in g.operations
                        and (g.purposes is None or g.purposes.has(request.purpose))
                        and (g.asps is None or g.asps.has(request.asp))
                        and (g.apps is None or g.apps.has(request.app))
                    ):
                        rule = g.pairs.get(pair)
                        if rule is not None or key in g.identities:
                            known = True
                            break
            if rule is not None:
                reason = _ALLOWED
            elif known:  # that rule names other owners only: what _general would answer
                reason = _OWNER_NOT_ALLOWED
            else:
                reason, rule = _general(ruleset, keys, peer, request, ccf)
            if (
                rule is not None
                and not revocations._empty
                and (found := revocations._owner_revoked(keys, owner))
            ):
                reason, detail = found
                rule = None
        decision: Decision = _new(
            Decision,
            (
                rule is not None,
                reason,
                rule,
                request,
                peer,
                keys,
                "ccf" if ccf else "rof",
                self._clock(),
                index.version,
                detail,
            ),
        )
        if audit and (self._hook is not None or AUDIT_LOGGER.isEnabledFor(logging.INFO)):
            self.audit(decision)
        return decision


def _general(
    ruleset: _RuleSet,
    keys: tuple[str, ...],
    peer: AuthenticatedPeer,
    request: PolicyRequest,
    ccf: bool,
) -> tuple[Reason, str | None]:
    """The general path: exact candidates (else pattern candidates), first full match wins."""
    exact = ruleset.exact
    candidates: Sequence[_Compiled]
    if len(keys) == 1:
        one = exact.get(keys[0])
        candidates = () if one is None else (one,) if isinstance(one, _Compiled) else one
    else:  # several identities: their rules in policy order, each once
        found: dict[int, _Compiled] = {}
        for k in keys:
            one = exact.get(k)
            if one is not None:
                for c in (one,) if isinstance(one, _Compiled) else one:
                    found[c.order] = c
        candidates = [found[order] for order in sorted(found)]
    if not candidates:
        candidates = [c for rx, c in ruleset.patterns if any(rx.fullmatch(k) for k in keys)]
    if not candidates:
        return (Reason.CCF_NOT_ACCEPTED if ccf else Reason.UNKNOWN_IDENTITY), None
    method = peer.method
    operation = request.operation
    owner = request.owner
    best = 0
    for c in candidates:
        if method not in c.methods:
            continue  # stage 0
        if operation not in c.operations:
            best = max(best, 1)
        elif (o := c.owners) is not None and (
            o != owner if isinstance(o, str) else not o.has(owner)
        ):
            best = max(best, 2)
        elif (v := c.purposes) is not None and not v.has(request.purpose):
            best = max(best, 3)
        elif (v := c.asps) is not None and not v.has(request.asp):
            best = max(best, 4)
        elif (v := c.apps) is not None and not v.has(request.app):
            best = 5
        else:
            return Reason.ALLOWED, c.id
    return _DIMENSIONS[best], None


_new = tuple.__new__
