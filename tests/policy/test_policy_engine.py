"""The policy engine: deny by default (R60), every rule dimension allows and denies, exact
rules before patterns, revocations seen by the next decision (R62), audit records without
secrets."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_helpers import (
    PLANTED_SECRET,
    cert_peer,
    in_channel_peer,
    psk_peer,
    scram_peer,
    verified_cert_peer,
)

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.errors import PolicyDenied, UsageError
from capif8sec.policy import (
    AUDIT_LOGGER,
    Decision,
    DecisionDenied,
    Operation,
    Policy,
    PolicyEngine,
    PolicyRequest,
    Reason,
    RevocationList,
    Rule,
    canonical_owner,
)
from capif8sec.policy.identity import policy_keys
from capif8sec.policy.model import is_resource_owner_id

ROF_A = "uri:urn:capif:rof:rof-a"
OWNER_A = "msisdn-491700000001"
OWNER_B = "msisdn-491700000002"

RULE_A = Rule(
    "rof-a",
    [ROF_A, "psk:rof-a", "scram:rof-a-admin"],
    [OWNER_A, "extid-alice@rof-a.example"],
    ["authorize"],
    ["certificate", "psk", "password"],
    purposes=["service-assurance"],
    asps=["asp-1"],
    apps=["app-1", "app-2"],
)
CCF_RULE = Rule(
    "home-ccf",
    ["dns:ccf.operator.example"],
    ["msisdn-4917*"],
    ["authorize"],
    ["certificate"],
)


def request(
    owner: str = OWNER_A,
    *,
    operation: str = "authorize",
    purpose: str | None = "service-assurance",
    asp: str | None = "asp-1",
    app: str | None = "app-1",
) -> PolicyRequest:
    return PolicyRequest(operation, owner, purpose, asp, app)


def rof_a() -> AuthenticatedPeer:
    return cert_peer("urn:capif:rof:rof-a")


@pytest.fixture
def engine() -> PolicyEngine:
    return PolicyEngine(Policy(rules=[RULE_A], ccf_rules=[CCF_RULE], version="v1"))


# -- deny by default ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        (cert_peer("urn:capif:rof:rof-a"), Reason.UNKNOWN_IDENTITY),
        (psk_peer("rof-a"), Reason.UNKNOWN_IDENTITY),
        (scram_peer("rof-a-admin"), Reason.UNKNOWN_IDENTITY),
        (cert_peer(cn="rof-a"), Reason.NO_IDENTITY),
        (AuthenticatedPeer("rof-a", "oauth"), Reason.NO_IDENTITY),
    ],
)
def test_an_empty_policy_denies_everyone(peer: AuthenticatedPeer, reason: Reason) -> None:
    """R60: deny by default."""
    engine = PolicyEngine()
    decision = engine.decide(peer, request())
    assert not decision.allowed and not decision and decision.reason is reason
    assert decision.rule is None
    assert engine.decide_ccf(peer, request()).reason in (Reason.CCF_NOT_ACCEPTED, reason)


def test_the_rule_allows_what_it_names(engine: PolicyEngine) -> None:
    decision = engine.decide(rof_a(), request())
    assert decision.allowed and decision and decision.reason is Reason.ALLOWED
    assert decision.rule == "rof-a" and decision.side == "rof"
    assert decision.identities == (ROF_A,) and decision.policy_version == "v1"


# -- each dimension allows and denies --------------------------------------------------------


def test_identity_dimension(engine: PolicyEngine) -> None:
    """R59: only the named ROF identities; kinds apart (a PSK named like the URI is not it)."""
    assert engine.decide(psk_peer("rof-a"), request()).allowed
    assert engine.decide(scram_peer("rof-a-admin"), request()).allowed
    for other in (
        cert_peer("urn:capif:rof:rof-b"),
        psk_peer("rof-b"),
        psk_peer("urn:capif:rof:rof-a"),
        scram_peer("rof-a"),
        cert_peer(dns=("rof-a",)),
    ):
        assert engine.decide(other, request()).reason is Reason.UNKNOWN_IDENTITY


def test_owner_dimension(engine: PolicyEngine) -> None:
    """R59: an ROF answers only for its own resource owners."""
    assert engine.decide(rof_a(), request("extid-alice@rof-a.example")).allowed
    for owner in (OWNER_B, "extid-alice@rof-b.example", "extid-Alice@rof-a.example"):
        decision = engine.decide(rof_a(), request(owner))
        assert decision.reason is Reason.OWNER_NOT_ALLOWED and decision.rule is None


def test_purpose_dimension(engine: PolicyEngine) -> None:
    assert engine.decide(rof_a(), request(purpose="marketing")).reason is Reason.PURPOSE_NOT_ALLOWED
    assert engine.decide(rof_a(), request(purpose=None)).reason is Reason.PURPOSE_NOT_ALLOWED


def test_asp_and_app_dimensions(engine: PolicyEngine) -> None:
    assert engine.decide(rof_a(), request(app="app-2")).allowed
    assert engine.decide(rof_a(), request(asp="asp-2")).reason is Reason.ASP_NOT_ALLOWED
    assert engine.decide(rof_a(), request(asp=None)).reason is Reason.ASP_NOT_ALLOWED
    assert engine.decide(rof_a(), request(app="app-3")).reason is Reason.APP_NOT_ALLOWED
    assert engine.decide(rof_a(), request(app=None)).reason is Reason.APP_NOT_ALLOWED


def test_operation_dimension(engine: PolicyEngine) -> None:
    for op in ("revoke", "query"):
        decision = engine.decide(rof_a(), request(operation=op))
        assert decision.reason is Reason.OPERATION_NOT_ALLOWED


def test_method_dimension() -> None:
    """R60: a rule names the authentication methods it accepts."""
    rule = Rule("psk-only", ["psk:rof-p"], [OWNER_A], ["authorize"], ["psk"])
    engine = PolicyEngine(Policy([rule]))
    assert engine.decide(psk_peer("rof-p"), request()).allowed
    decision = engine.decide(in_channel_peer("rof-p"), request())
    assert decision.reason is Reason.METHOD_NOT_ALLOWED
    both = Rule("both", ["psk:rof-p"], [OWNER_A], ["authorize"], ["psk", "psk-in-channel"])
    assert PolicyEngine(Policy([both])).decide(in_channel_peer("rof-p"), request()).allowed


def test_ccf_identity_dimension(engine: PolicyEngine) -> None:
    """The ROF side: requests only from the CCF identities it accepts."""
    ccf = cert_peer(dns=("CCF.operator.example",))
    assert engine.decide_ccf(ccf, request("msisdn-491799999999")).allowed
    decision = engine.decide_ccf(cert_peer(dns=("ccf.evil.example",)), request())
    assert decision.reason is Reason.CCF_NOT_ACCEPTED and decision.side == "ccf"
    assert engine.decide_ccf(ccf, request("msisdn-4918000000")).reason is Reason.OWNER_NOT_ALLOWED
    assert engine.decide_ccf(psk_peer("ccf.operator.example"), request()).reason is (
        Reason.CCF_NOT_ACCEPTED
    )
    # the ROF rules and the CCF rules are separate sets
    assert engine.decide(ccf, request()).reason is Reason.UNKNOWN_IDENTITY
    assert engine.decide_ccf(rof_a(), request()).reason is Reason.CCF_NOT_ACCEPTED


def test_any_value_dimensions_accept_absent_values() -> None:
    rule = Rule("r", ["psk:a"], ["*"], ["revoke"], ["psk"])
    engine = PolicyEngine(Policy([rule]))
    assert engine.decide(
        psk_peer("a"), request(OWNER_B, operation="revoke", purpose=None, asp=None, app=None)
    ).allowed


def test_the_closest_candidate_gives_the_reason() -> None:
    rules = [
        Rule("m", ["psk:a"], [OWNER_A], ["authorize"], ["certificate"]),
        Rule("o", ["psk:a"], [OWNER_B], ["authorize"], ["psk"]),
    ]
    decision = PolicyEngine(Policy(rules)).decide(psk_peer("a"), request(purpose=None))
    assert decision.reason is Reason.OWNER_NOT_ALLOWED


# -- patterns and precedence -----------------------------------------------------------------


def test_patterns_on_identities_owners_and_texts() -> None:
    rule = Rule(
        "pattern",
        ["dns:*.rof.example", "psk:rof-*"],
        ["msisdn-4917*", "extid-*@rof.example"],
        ["authorize"],
        ["certificate", "psk"],
        purposes=["analytics-*"],
    )
    engine = PolicyEngine(Policy([rule]))
    ok = request("msisdn-491712345678", purpose="analytics-daily")
    assert engine.decide(cert_peer(dns=("A.Rof.Example",)), ok).allowed
    assert engine.decide(cert_peer(dns=("a.b.rof.example",)), ok).allowed  # '*' crosses dots
    assert engine.decide(psk_peer("rof-7"), ok).allowed
    assert engine.decide(psk_peer("rof7"), ok).reason is Reason.UNKNOWN_IDENTITY
    assert engine.decide(cert_peer(dns=("rof.example",)), ok).reason is Reason.UNKNOWN_IDENTITY
    assert engine.decide(
        psk_peer("rof-7"), request("extid-x@rof.example", purpose="analytics-")
    ).allowed
    assert (
        engine.decide(
            psk_peer("rof-7"), request("msisdn-491812345678", purpose="analytics-x")
        ).reason
        is Reason.OWNER_NOT_ALLOWED
    )
    assert (
        engine.decide(
            psk_peer("rof-7"), request("msisdn-491712345678", purpose="Analytics-x")
        ).reason
        is Reason.PURPOSE_NOT_ALLOWED
    )


def test_question_mark_is_literal_and_a_star_can_be_escaped() -> None:
    """Only ``*`` is a wildcard: a ``?`` in a URI-ID's query or an owner is that character, and
    ``\\*`` names an identity holding a star (review: ``?`` used to match any character)."""
    rule = Rule(
        "q",
        ["uri:https://rof.example/rof?id=1", "psk:rof\\*1", "psk:back\\\\slash"],
        ["extid-a?b@d.example"],
        ["authorize"],
        ["certificate", "psk"],
    )
    assert rule.identities[1:] == ("psk:rof\\*1", "psk:back\\\\slash")
    engine = PolicyEngine(Policy([rule]))
    owner = request("extid-a?b@d.example")
    assert engine.decide(cert_peer("https://rof.example/rof?id=1"), owner).allowed
    assert engine.decide(psk_peer("rof*1"), owner).allowed
    assert engine.decide(psk_peer("back\\slash"), owner).allowed
    for peer in (cert_peer("https://rof.example/rofXid=1"), psk_peer("rof-1"), psk_peer("rofX1")):
        assert engine.decide(peer, owner).reason is Reason.UNKNOWN_IDENTITY
    other = request("extid-aZb@d.example")
    assert engine.decide(psk_peer("rof*1"), other).reason is Reason.OWNER_NOT_ALLOWED
    # An escaped star beside a real one: the rule is a pattern with a literal star in it.
    glob = PolicyEngine(Policy([Rule("g", ["psk:a\\**"], ["*"], ["authorize"], ["psk"])]))
    assert glob.decide(psk_peer("a*xyz"), owner).allowed
    assert glob.decide(psk_peer("axyz"), owner).reason is Reason.UNKNOWN_IDENTITY


def test_revocations_name_identities_as_rules_do() -> None:
    """An identity copied from a policy file revokes that peer: ``\\*`` is a literal star, a
    pattern is refused, and ``as_dict`` gives identities back in that form (second review:
    the escape was taken literally and the revocation did nothing)."""
    rule = Rule("r", ["psk:rof\\*1"], ["*"], ["authorize"], ["psk"])
    engine = PolicyEngine(Policy([rule]))
    peer = psk_peer("rof*1")
    assert engine.decide(peer, request()).allowed
    engine.revocations.revoke_identity("psk:rof\\*1")
    assert engine.decide(peer, request()).reason is Reason.IDENTITY_REVOKED
    assert engine.revocations.as_dict()["identities"] == ["psk:rof\\*1"]
    for restored in engine.revocations.as_dict()["identities"]:
        engine.revocations.restore_identity(restored)
    assert engine.decide(peer, request()).allowed
    for pattern in ("psk:rof*1", "psk:rof-*"):
        with pytest.raises(UsageError, match="pattern"):
            engine.revocations.revoke_identity(pattern)
        with pytest.raises(UsageError, match="pattern"):
            engine.revocations.revoke_owner(OWNER_A, identity=pattern)


def test_revocation_checks_take_any_spelling_of_an_owner() -> None:
    revocations = RevocationList()
    revocations.revoke_owner("extid-alice@op.example")
    for spelling in ("extid-alice@OP.example.", "extid-alice@op.example"):
        found = revocations.check_owner(("psk:a",), spelling)
        assert found is not None and found[0] is Reason.OWNER_REVOKED
    with pytest.raises(UsageError):
        revocations.check_owner(("psk:a",), "bob")


def test_patterns_are_normalized_like_the_values_they_match() -> None:
    """A DNS or owner pattern loses its final dot and a CN pattern its case, as the keys and
    canonical owners do (second review: such patterns never matched)."""
    rules = [
        Rule(
            "dns", ["dns:*.ROF.example."], ["extid-*@OP.Example."], ["authorize"], ["certificate"]
        ),
        Rule("cn", ["cn:ROF Alpha*"], ["*"], ["authorize"], ["certificate"]),
        Rule("cn-exact", ["cn:ROF Beta"], ["*"], ["authorize"], ["certificate"]),
    ]
    assert rules[0].identities == ("dns:*.rof.example",)
    assert rules[0].owners == ("extid-*@op.example",)
    engine = PolicyEngine(Policy(rules, legacy_cn=True))
    for owner in ("extid-a@OP.Example.", "extid-a@op.example"):
        assert engine.decide(cert_peer(dns=("a.rof.example",)), request(owner)).rule == "dns"
    assert engine.decide(cert_peer(cn="ROF Alpha 1"), request()).rule == "cn"
    assert engine.decide(cert_peer(cn="rof beta"), request()).rule == "cn-exact"


@pytest.mark.parametrize(
    ("identities", "owners", "words"),
    [
        (["dns:*."], ["*"], "too broad"),  # was accepted as dns:* (third review)
        (["dns:*.*"], ["*"], "too broad"),
        (["uri:*:*"], ["*"], "names its scheme"),  # matched every URI-ID (fourth review)
        (["uri:**:*"], ["*"], "names its scheme"),
        (["uri:*"], ["*"], "names its scheme"),
        (["dns:*.."], ["*"], "empty label"),
        (["dns:a..*"], ["*"], "empty label"),
        (["psk:a"], ["extid-*@*.."], "empty label"),
        (["psk:a"], ["extid-*@."], "empty label"),
    ],
)
def test_patterns_are_judged_once_normalized(
    identities: list[str], owners: list[str], words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        Rule("r", identities, owners, ["authorize"], ["certificate", "psk"])


_VALUES = st.text(alphabet="*.\\aA-:@", min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["dns", "cn", "psk", "uri"]), value=_VALUES, owner=_VALUES)
def test_checking_a_checked_rule_changes_nothing(kind: str, value: str, owner: str) -> None:
    """A rule's normalized fields are accepted as they are (the loader and ``Rule`` both
    check; a value that changed on a second check could widen, as ``dns:*..`` did)."""
    try:
        rule = Rule("r", [f"{kind}:{value}"], [f"extid-{owner}@d.example"], ["authorize"], ["psk"])
    except UsageError:
        return
    again = Rule("r", rule.identities, rule.owners, rule.operations, rule.methods)
    assert (again.identities, again.owners) == (rule.identities, rule.owners)


def test_audited_identities_revoke_the_peer_they_name() -> None:
    """The audit record writes identity keys as revocations take them (third review: a key
    with a backslash copied from the audit revoked another identity)."""
    engine = PolicyEngine(Policy([Rule("r", ["psk:o*"], ["*"], ["authorize"], ["psk"])]))
    peer = psk_peer("ops\\*")  # a PSK identity with a backslash and a star in it
    decision = engine.decide(peer, request())
    assert decision.allowed
    (written,) = decision.audit["peer"]["identities"]
    assert written == "psk:ops\\\\\\*"
    engine.revocations.revoke_identity(written)
    revoked = engine.decide(peer, request())
    assert revoked.reason is Reason.IDENTITY_REVOKED
    assert written in (revoked.detail or "")


def test_identities_too_long_once_normalized_are_refused_everywhere() -> None:
    """A value within the limit as typed but over it once normalized (A-labels, case mapping)
    is refused by rules and revocations alike, so every revocation ``as_dict`` gives can be
    restored (third review: a restore after a restart failed and the ROF got access back)."""
    uri = "https://" + "bü." * 24 + "example/" + "p" * 900  # 988 characters, 1160 as A-labels
    assert len(uri) <= 1024
    cn = "cn:" + "İ" * 1000  # lower() makes two characters of each
    for text in (f"uri:{uri}", cn):
        with pytest.raises(UsageError, match="once normalized"):
            Rule("r", [text], ["*"], ["authorize"], ["certificate"])
        with pytest.raises(UsageError, match="once normalized"):
            RevocationList().revoke_identity(text)


def test_the_longest_domain_may_end_with_a_dot() -> None:
    domain = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters
    assert len(domain) == 253
    assert canonical_owner(f"extid-x@{domain}.") == f"extid-x@{domain}"
    assert not is_resource_owner_id(f"extid-x@a{domain}")


@pytest.mark.parametrize("value", ["psk:a\\b", "psk:a\\", "psk:\\?"])
def test_a_backslash_escapes_only_a_star_or_a_backslash(value: str) -> None:
    with pytest.raises(UsageError, match="backslash"):
        Rule("r", [value], ["*"], ["authorize"], ["psk"])
    with pytest.raises(UsageError, match="backslash"):
        Rule("r", ["psk:a"], ["*"], ["authorize"], ["psk"], purposes=[value])


def test_owners_are_compared_in_canonical_form() -> None:
    """An external identifier's domain is a DNS name: rules, requests, messages and
    revocations all use it in lower case without a final dot, so a revocation cannot be
    side-stepped by spelling the domain differently (R62; review)."""
    rule = Rule("x", ["psk:rof-a"], ["extid-*@OP.example"], ["authorize"], ["psk"])
    assert rule.owners == ("extid-*@op.example",)
    engine = PolicyEngine(Policy([rule]))
    engine.revocations.revoke_owner("extid-alice@op.example")
    for spelling in ("extid-alice@op.example", "extid-alice@OP.Example", "extid-alice@op.example."):
        decision = engine.decide(psk_peer("rof-a"), request(spelling))
        assert decision.reason is Reason.OWNER_REVOKED, spelling
        assert decision.request.owner == "extid-alice@op.example"
    assert engine.decide(psk_peer("rof-a"), request("extid-bob@Op.Example.")).allowed
    assert Rule("y", ["psk:b"], ["extid-A@X.ORG."], ["authorize"], ["psk"]).owners == (
        "extid-A@x.org",
    )


@pytest.mark.parametrize(
    "owner",
    [
        "extid-\ud800@x.example",  # a lone surrogate
        "extid-a\x00b@x.example",
        "extid-\x1b[31m@x.example",
        "extid-a*b@x.example",  # the wildcard
        "extid-é@x.example",
        "extid-a@x..example",
        "extid-a@-x.example",
        "extid-a@x.example..",
        "extid-a@" + "a" * 64 + ".example",
        "msisdn-1234",
        "msisdn-1234567890123456",
    ],
)
def test_malformed_owner_ids_are_refused(owner: str) -> None:
    assert not is_resource_owner_id(owner)
    with pytest.raises(UsageError):
        PolicyRequest("authorize", owner)
    if "*" not in owner:  # in a rule, that one is a pattern
        with pytest.raises(UsageError):
            Rule("r", ["psk:a"], [owner], ["authorize"], ["psk"])
    with pytest.raises(UsageError):
        RevocationList().revoke_owner(owner)


def test_a_peer_with_several_identities_gets_the_first_rule_in_the_file() -> None:
    """The first matching rule in file order wins, whichever of the peer's identities names
    it (review: the rule reported followed the order of the peer's identities)."""
    by_dns = Rule("by-dns", ["dns:rof-a.example"], ["*"], ["authorize"], ["certificate"])
    by_uri = Rule("by-uri", [ROF_A], ["*"], ["authorize"], ["certificate"])
    both = Rule("both", [ROF_A, "dns:rof-a.example"], ["*"], ["authorize"], ["certificate"])
    peer = cert_peer("urn:capif:rof:rof-a", dns=("rof-a.example",))
    assert policy_keys(peer)[0].startswith("uri:")  # the URI-ID comes first in the keys
    for rules, first in (([by_dns, by_uri], "by-dns"), ([by_uri, by_dns], "by-uri")):
        assert PolicyEngine(Policy(rules)).decide(peer, request()).rule == first
    assert PolicyEngine(Policy([both, by_dns])).decide(peer, request()).rule == "both"


def test_brackets_in_patterns_are_literal() -> None:
    rule = Rule("r", ["psk:rof-[1]*"], ["*"], ["authorize"], ["psk"])
    engine = PolicyEngine(Policy([rule]))
    assert engine.decide(psk_peer("rof-[1]x"), request()).allowed
    assert engine.decide(psk_peer("rof-1x"), request()).reason is Reason.UNKNOWN_IDENTITY


def test_exact_identity_rules_take_precedence_over_patterns() -> None:
    """An identity named exactly is governed by its exact rules alone: a broad pattern rule
    does not widen what they allow; identities no rule names exactly fall to the patterns."""
    rules = [
        Rule("everyone", ["uri:urn:capif:rof:*"], ["*"], ["authorize"], ["certificate"]),
        Rule("rof-a", [ROF_A], [OWNER_A], ["authorize"], ["certificate"]),
    ]
    engine = PolicyEngine(Policy(rules))
    assert engine.decide(rof_a(), request(OWNER_A)).rule == "rof-a"
    denied = engine.decide(rof_a(), request(OWNER_B))
    assert denied.reason is Reason.OWNER_NOT_ALLOWED
    other = engine.decide(cert_peer("urn:capif:rof:rof-b"), request(OWNER_B))
    assert other.allowed and other.rule == "everyone"


def test_first_matching_exact_rule_in_file_order_wins() -> None:
    rules = [
        Rule("first", [ROF_A], ["msisdn-4917*"], ["authorize"], ["certificate"]),
        Rule("second", [ROF_A], [OWNER_A], ["authorize"], ["certificate"]),
        Rule("third", [ROF_A], [OWNER_B], ["authorize"], ["certificate"]),
    ]
    engine = PolicyEngine(Policy(rules))
    assert engine.decide(rof_a(), request(OWNER_A)).rule == "first"
    engine.reload(Policy(rules[1:]))
    assert engine.decide(rof_a(), request(OWNER_A)).rule == "second"
    assert engine.decide(rof_a(), request(OWNER_B)).rule == "third"


def test_any_of_several_certificate_identities() -> None:
    """A certificate with several SAN identities: rules may name any of them."""
    rule = Rule("dns", ["dns:rof-a.example"], [OWNER_A], ["authorize"], ["certificate"])
    peer = cert_peer("urn:capif:rof:unknown", dns=("rof-a.example",), ips=("192.0.2.9",))
    decision = PolicyEngine(Policy([rule])).decide(peer, request())
    assert decision.allowed and decision.identities == (
        "uri:urn:capif:rof:unknown",
        "dns:rof-a.example",
        "ip:192.0.2.9",
    )


def test_legacy_cn_policy_setting() -> None:
    rule = Rule("cn", ["cn:rof-a.example"], [OWNER_A], ["authorize"], ["certificate"])
    peer = cert_peer(cn="ROF-A.example")
    assert PolicyEngine(Policy([rule])).decide(peer, request()).reason is Reason.NO_IDENTITY
    assert PolicyEngine(Policy([rule], legacy_cn=True)).decide(peer, request()).allowed
    with_san = cert_peer(dns=("x.example",), cn="rof-a.example")
    legacy = PolicyEngine(Policy([rule], legacy_cn=True))
    assert legacy.decide(with_san, request()).reason is Reason.UNKNOWN_IDENTITY  # R57


# -- the fast path agrees with a plain reading of the rules ----------------------------------

_ids = st.sampled_from(["psk:a", "psk:b", "psk:c", "psk:a?", "psk:?b", "psk:a*", "psk:a\\*"])
_owners = st.sampled_from(["msisdn-10000", "msisdn-10001", "msisdn-1000*", "*"])
_texts = st.sampled_from(["*", "p1", "p2", "p*"])
_rule = st.builds(
    lambda ids, owners, ops, methods, purposes: (ids, owners, ops, methods, purposes),
    st.lists(_ids, min_size=1, max_size=2),
    st.lists(_owners, min_size=1, max_size=2),
    st.sets(st.sampled_from(["authorize", "revoke"]), min_size=1),
    st.sets(st.sampled_from(["psk", "psk-in-channel"]), min_size=1),
    st.lists(_texts, min_size=1, max_size=2),
)


def _glob(pattern: str, value: str) -> bool:
    import re

    regex, escaped = "", False  # '*': any run; '\\x': x; anything else: itself
    for c in pattern:
        regex += re.escape(c) if escaped or c not in "*\\" else ".*" if c == "*" else ""
        escaped = not escaped and c == "\\"
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _plain(rules: list[Rule], key: str, method: str, req: PolicyRequest) -> tuple[bool, str | None]:
    def named(r: Rule) -> bool:
        return any(_glob(i, key) for i in r.identities if "*" not in i.replace("\\*", ""))

    def dim(values: tuple[str, ...], value: str | None) -> bool:
        return "*" in values or (value is not None and any(_glob(v, value) for v in values))

    candidates = [r for r in rules if named(r)] or [
        r for r in rules if any(_glob(i, key) for i in r.identities)
    ]
    for r in candidates:
        if (
            method in r.methods
            and req.operation in r.operations
            and dim(r.owners, req.owner)
            and dim(r.purposes, req.purpose)
        ):
            return True, r.id
    return False, None


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(_rule, max_size=5),
    who=st.sampled_from(["a", "b", "c", "ab", "d", "a*", "a?", "a\\"]),
    method=st.sampled_from(["psk", "psk-in-channel"]),
    owner=st.sampled_from(["msisdn-10000", "msisdn-10001", "msisdn-10002", "msisdn-20000"]),
    op=st.sampled_from(["authorize", "revoke"]),
    purpose=st.sampled_from([None, "p1", "p2", "p3"]),
)
def test_decisions_match_a_plain_reading_of_the_rules(
    specs: list[Any], who: str, method: str, owner: str, op: str, purpose: str | None
) -> None:
    """The indexes (exact dict, pattern list, the fast owner groups) change nothing."""
    rules = [
        Rule(f"r{i}", ids, owners, ops, methods, purposes)
        for i, (ids, owners, ops, methods, purposes) in enumerate(specs)
    ]
    peer = psk_peer(who) if method == "psk" else in_channel_peer(who)
    req = PolicyRequest(op, owner, purpose)
    engine = PolicyEngine(Policy(rules))
    decision = engine.decide(peer, req)
    assert (decision.allowed, decision.rule) == _plain(rules, f"psk:{who}", method, req)
    # The fast groups also give the general path's reason for a refusal.
    general = PolicyEngine(Policy(rules))
    general._index.rof.fast = ()
    assert decision[:3] == general.decide(peer, req)[:3]


# -- revocation (R62) ------------------------------------------------------------------------


def test_a_revoked_identity_is_denied_on_the_next_decision(engine: PolicyEngine) -> None:
    """R62: revocation invalidates at once; no decision is cached."""
    assert engine.decide(psk_peer("rof-a"), request()).allowed
    engine.revocations.revoke_identity("psk:rof-a")
    decision = engine.decide(psk_peer("rof-a"), request())
    assert decision.reason is Reason.IDENTITY_REVOKED and "psk:rof-a" in (decision.detail or "")
    assert engine.decide(rof_a(), request()).allowed  # the certificate identity is another one
    engine.revocations.restore_identity("psk:rof-a")
    assert engine.decide(psk_peer("rof-a"), request()).allowed


def test_a_revoked_certificate_is_denied(engine: PolicyEngine) -> None:
    """R62: a certificate revoked by fingerprint; another certificate of the same ROF is not."""
    peer = verified_cert_peer("rof-a")
    again = verified_cert_peer("rof-a")  # a second certificate, same URI-ID
    assert peer.tls is not None and peer.tls.certificate_fingerprint is not None
    fingerprint = peer.tls.certificate_fingerprint
    assert engine.decide(peer, request()).allowed
    engine.revocations.revoke_certificate(
        ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    )
    assert engine.decide(peer, request()).reason is Reason.CERTIFICATE_REVOKED
    assert engine.decide(again, request()).allowed
    assert engine.decide(peer, request()).audit["peer"]["certificate_sha256"] == fingerprint
    engine.revocations.restore_certificate(fingerprint)
    assert engine.decide(peer, request()).allowed
    with pytest.raises(UsageError):
        engine.revocations.revoke_certificate("not-hex")


def test_a_revoked_owner_authorization(engine: PolicyEngine) -> None:
    """R62: an owner offboarded for everyone, or one ROF's right to act for an owner."""
    engine.revocations.revoke_owner(OWNER_A, identity="psk:rof-a")
    assert engine.decide(psk_peer("rof-a"), request()).reason is Reason.OWNER_REVOKED
    assert engine.decide(rof_a(), request()).allowed
    assert engine.decide(psk_peer("rof-a"), request("extid-alice@rof-a.example")).allowed
    engine.revocations.revoke_owner(OWNER_A)
    assert engine.decide(rof_a(), request()).reason is Reason.OWNER_REVOKED
    assert engine.revocations.as_dict() == {
        "identities": [],
        "certificates": [],
        "owners": [OWNER_A],
        "grants": [[OWNER_A, "psk:rof-a"]],
    }
    engine.revocations.restore_owner(OWNER_A)
    engine.revocations.restore_owner(OWNER_A, identity="psk:rof-a")
    assert engine.decide(psk_peer("rof-a"), request()).allowed
    with pytest.raises(UsageError):
        engine.revocations.revoke_owner("bob")
    with pytest.raises(UsageError):
        engine.revocations.revoke_identity("rof-a")


def test_an_owner_revocation_tells_a_stranger_nothing(engine: PolicyEngine) -> None:
    """R62 with no oracle: an owner's revocation refuses what the rules allow, and a refusal
    stays what it is, so a peer no rule names is told ``unknown-identity`` whether or not the
    owner it asks about is revoked (review: it was told ``owner-revoked``)."""
    stranger = psk_peer("not-in-policy")
    before = engine.decide(stranger, request())
    engine.revocations.revoke_owner(OWNER_A)
    after = engine.decide(stranger, request())
    assert before.reason is after.reason is Reason.UNKNOWN_IDENTITY
    assert engine.decide(psk_peer("rof-a"), request()).reason is Reason.OWNER_REVOKED
    # a known peer's other refusals keep their reason too
    wrong_op = engine.decide(psk_peer("rof-a"), request(operation="query"))
    assert wrong_op.reason is Reason.OPERATION_NOT_ALLOWED and not wrong_op.allowed


def test_revocations_survive_a_reload(engine: PolicyEngine) -> None:
    engine.revocations.revoke_identity("uri:URN:capif:rof:rof-a")  # normalized like rules
    engine.reload(Policy([RULE_A], version="v2"))
    decision = engine.decide(rof_a(), request())
    assert decision.reason is Reason.IDENTITY_REVOKED and decision.policy_version == "v2"


# -- decisions, refusals and the audit record ------------------------------------------------


def test_require_raises_a_policy_denied_with_the_reason(engine: PolicyEngine) -> None:
    assert engine.require(rof_a(), request()).allowed
    with pytest.raises(DecisionDenied) as info:
        engine.require(rof_a(), request(OWNER_B))
    assert isinstance(info.value, PolicyDenied)
    assert info.value.reason is Reason.OWNER_NOT_ALLOWED
    assert info.value.decision.request.owner == OWNER_B
    assert str(info.value) == "denied (owner-not-allowed)"


def test_the_audit_record(engine: PolicyEngine) -> None:
    """R60: the record names the method, TLS version and suite and the identity."""
    seen: list[Decision] = []
    engine = PolicyEngine(engine.policy, audit_hook=seen.append, clock=lambda: 1795000000.25)
    decision = engine.decide(rof_a(), request())
    assert seen == [decision]
    record = decision.audit
    assert json.loads(json.dumps(record)) == record
    assert record == {
        "event": "capif8sec.policy.decision",
        "time": "2026-11-18T11:06:40.250000Z",
        "decision": "allow",
        "reason": "allowed",
        "rule": "rof-a",
        "side": "rof",
        "policy_version": "v1",
        "peer": {
            "identity": "urn:capif:rof:rof-a",
            "method": "certificate",
            "identities": [ROF_A],
            "tls_version": "TLSv1.3",
            "cipher": "TLS_AES_128_GCM_SHA256",
            "certificate_sha256": None,
        },
        "request": {
            "operation": "authorize",
            "owner": OWNER_A,
            "purpose": "service-assurance",
            "asp": "asp-1",
            "app": "app-1",
            "request_id": None,
            "message": None,
        },
        "detail": None,
    }
    engine.evaluate(rof_a(), request())  # evaluate alone does not audit
    assert len(seen) == 1


def _secret_peers() -> list[AuthenticatedPeer]:
    evidence = {"psk": PLANTED_SECRET, "password": PLANTED_SECRET, "key_id": PLANTED_SECRET}
    return [
        cert_peer("urn:capif:rof:rof-a", evidence=evidence),
        psk_peer("rof-a", evidence=evidence),
        scram_peer("rof-a-admin", evidence=evidence),
        AuthenticatedPeer("x", "plugin", evidence),
    ]


def test_no_secret_reaches_records_logs_reprs_or_errors(
    engine: PolicyEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Evidence values never enter an audit record, a log line, a repr or an error text."""
    hooked: list[str] = []
    engine = PolicyEngine(engine.policy, audit_hook=lambda d: hooked.append(json.dumps(d.audit)))
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER.name)
    texts: list[str] = []
    for peer in _secret_peers():
        for req in (request(), request(OWNER_B)):
            decision = engine.decide(peer, req)
            texts += [json.dumps(decision.audit), repr(decision), str(decision.audit)]
            if not decision.allowed:
                texts.append(str(DecisionDenied(decision)))
    assert len(caplog.records) == 8 and len(hooked) == 8
    for rec in caplog.records:
        texts += [rec.getMessage(), json.dumps(rec.audit)]  # type: ignore[attr-defined]
        assert json.loads(rec.getMessage())["event"] == "capif8sec.policy.decision"
    texts += [*hooked, caplog.text]
    assert all(PLANTED_SECRET not in text for text in texts)


def test_a_failing_hook_fails_closed(engine: PolicyEngine) -> None:
    def hook(_decision: Decision) -> None:
        raise RuntimeError("audit sink down")

    failing = PolicyEngine(engine.policy, audit_hook=hook)
    with pytest.raises(RuntimeError):
        failing.decide(rof_a(), request())


def test_request_objects() -> None:
    req = PolicyRequest("revoke", OWNER_A)
    assert req.operation is Operation.REVOKE
    with pytest.raises(ValueError):
        PolicyRequest("delete", OWNER_A)
    assert Method.PSK in RULE_A.methods
