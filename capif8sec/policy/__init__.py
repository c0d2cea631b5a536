"""Identity-to-policy checks for CAPIF-8 (R56 to R62).

- :mod:`capif8sec.policy.identity` -- typed identities of an authenticated peer and RFC 9525
  reference-identity matching;
- :mod:`capif8sec.policy.model` -- rules, policies, requests, decisions and reason codes, as
  plain Python objects;
- :mod:`capif8sec.policy.loader` -- the TOML policy file, with located errors;
- :mod:`capif8sec.policy.engine` -- deny-by-default decisions, reloads, revocations, audit.

::

    engine = PolicyEngine.from_file("policy.toml")
    decision = engine.decide(peer, PolicyRequest("authorize", owner="msisdn-491701234567"))
    if not decision.allowed:
        ...  # decision.reason says why; decision.audit was logged
"""

from capif8sec.policy.engine import AUDIT_LOGGER, AuditHook, PolicyEngine, RevocationList
from capif8sec.policy.identity import (
    CnId,
    DnsId,
    Identity,
    IpId,
    PskIdentity,
    ReferenceIdentity,
    ScramUsername,
    UriId,
    identities_of_peer,
    matches,
    matches_any,
    matches_reference,
    parse_identity,
    policy_keys,
    reference_identity,
)
from capif8sec.policy.loader import PolicyFileError, PolicyIssue, load_policy, loads_policy
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
)

__all__ = [
    "ANY",
    "AUDIT_LOGGER",
    "AuditHook",
    "CnId",
    "Decision",
    "DecisionDenied",
    "DnsId",
    "Identity",
    "IpId",
    "Operation",
    "Policy",
    "PolicyEngine",
    "PolicyFileError",
    "PolicyIssue",
    "PolicyRequest",
    "PskIdentity",
    "Reason",
    "ReferenceIdentity",
    "RevocationList",
    "Rule",
    "ScramUsername",
    "UriId",
    "canonical_owner",
    "identities_of_peer",
    "load_policy",
    "loads_policy",
    "matches",
    "matches_any",
    "matches_reference",
    "parse_identity",
    "policy_keys",
    "reference_identity",
]
