"""The TS 33.310 certificate profiles CAPIF-8 uses, and the deployment deviations they know.

A :class:`Profile` is data: a name, a clause, the roles it can be checked for, its rules, and its
extension criticality table.  :data:`PROFILES` maps the CLI names to them:

================== ================== ===========================================
name               clause             for
================== ================== ===========================================
tls-entity         TS 33.310 6.1.3a   CCF and ROF TLS certificates (role server|client)
sba-nf             TS 33.310 6.1.3c   SBA-style NF certificates (role server|client|both)
tls-ca             TS 33.310 6.1.4a   the TLS CA that issues the end entities
interconnection-ca TS 33.310 6.1.2    interconnection / domain CAs above the TLS CA
================== ================== ===========================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from attrs import frozen
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtensionOID

from capif8sec.certs import rules as r
from capif8sec.certs.report import Severity
from capif8sec.errors import UsageError

__all__ = [
    "CHAIN_RULES",
    "DEVIATIONS",
    "INTERCONNECTION_CA",
    "PROFILES",
    "SBA_NF",
    "TLS_CA",
    "TLS_ENTITY",
    "Profile",
    "all_rules",
    "check_deviations",
    "get_profile",
]

#: Named deviations a deployment may apply.  Every report lists the ones in force.
DEVIATIONS: Mapping[str, str] = {
    "no-crl-distribution-point": (
        "end-entity certificates may lack cRLDistributionPoints (closed lab, PSK-only "
        "deployments); their revocation is still checked when a CRL of their issuer is at hand"
    ),
    "no-revocation-check": "chain validation does not consult CRLs at all (R25 not enforced)",
    "intermediate-below-tls-ca": (
        "an end entity may be issued by an intermediate below the TLS CA (R16 not enforced)"
    ),
}

Criticality = tuple[str, str]  # ("critical" | "non-critical" | "any", clause)


def _table(
    clause: str,
    critical: tuple[ObjectIdentifier, ...],
    non_critical: tuple[ObjectIdentifier, ...],
    any_: tuple[ObjectIdentifier, ...] = (),
) -> dict[ObjectIdentifier, Criticality]:
    table: dict[ObjectIdentifier, Criticality] = {}
    table.update({oid: ("non-critical", clause) for oid in non_critical})
    table.update({oid: ("critical", clause) for oid in critical})
    table.update({oid: ("any", clause) for oid in any_})
    return table


_OPTIONAL = (
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.TLS_FEATURE,
    r.NF_TYPES_OID,
)


def _without(
    oids: tuple[ObjectIdentifier, ...], *drop: ObjectIdentifier
) -> tuple[ObjectIdentifier, ...]:
    return tuple(o for o in oids if o not in drop)


@frozen
class Profile:
    """One certificate profile: its rules and its extension criticality table."""

    name: str
    title: str
    clause: str
    roles: tuple[str, ...]
    rules: tuple[r.Rule, ...]
    criticality: Mapping[ObjectIdentifier, Criticality]
    is_ca: bool

    def check_role(self, role: str | None) -> str | None:
        """Validate a role for this profile (end-entity profiles need one; CA profiles none)."""
        if not self.roles:
            if role is not None:
                raise UsageError(f"profile {self.name} takes no role (got {role!r})")
            return None
        if role not in self.roles:
            raise UsageError(
                f"profile {self.name} needs a role, one of {', '.join(self.roles)} (got {role!r})"
            )
        return role


TLS_ENTITY = Profile(
    name="tls-entity",
    title="TLS entity (client and server) certificate",
    clause=r.C_TLS_ENTITY,
    roles=("server", "client"),
    rules=r.COMMON_RULES + r.EE_RULES + r.TLS_ENTITY_RULES,
    criticality=_table(
        r.C_TLS_ENTITY, (ExtensionOID.KEY_USAGE,), _without(_OPTIONAL, r.NF_TYPES_OID)
    ),
    is_ca=False,
)

SBA_NF = Profile(
    name="sba-nf",
    title="SBA network function certificate",
    clause=r.C_SBA,
    roles=("server", "client", "both"),
    rules=r.COMMON_RULES + r.EE_RULES + r.SBA_NF_RULES,
    criticality=_table(
        r.C_SBA,
        (ExtensionOID.KEY_USAGE, ExtensionOID.SUBJECT_ALTERNATIVE_NAME),
        _without(_OPTIONAL, ExtensionOID.SUBJECT_ALTERNATIVE_NAME),
    ),
    is_ca=False,
)

_CA_CRITICAL = (ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS)
_CA_TABLE_OPTIONAL = _without(_OPTIONAL, ExtensionOID.BASIC_CONSTRAINTS, r.NF_TYPES_OID)
# RFC 5280 requires nameConstraints to be critical; TS 33.310 6.1.1 wants optional extensions
# non-critical.  Either form is accepted on CAs.
_CA_ANY = (ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.POLICY_CONSTRAINTS)

TLS_CA = Profile(
    name="tls-ca",
    title="TLS client/server CA certificate",
    clause=r.C_TLS_CA,
    roles=(),
    rules=r.COMMON_RULES + r.CA_RULES + r.TLS_CA_RULES,
    criticality=_table(r.C_TLS_CA, _CA_CRITICAL, _CA_TABLE_OPTIONAL, _CA_ANY),
    is_ca=True,
)

INTERCONNECTION_CA = Profile(
    name="interconnection-ca",
    title="Interconnection (and domain root) CA certificate",
    clause=r.C_ICA,
    roles=(),
    rules=r.COMMON_RULES + r.CA_RULES + r.INTERCONNECTION_CA_RULES,
    criticality=_table(r.C_ICA, _CA_CRITICAL, _CA_TABLE_OPTIONAL, _CA_ANY),
    is_ca=True,
)

PROFILES: Mapping[str, Profile] = {
    p.name: p for p in (TLS_ENTITY, SBA_NF, TLS_CA, INTERCONNECTION_CA)
}


def _no_check(ctx: r.LintContext) -> Iterator[r.Violation]:  # pragma: no cover
    return iter(())  # chain rules are enforced by capif8sec.certs.chain, not by lint


#: Rules enforced by chain validation rather than by the lint of one certificate.
CHAIN_RULES: tuple[r.Rule, ...] = tuple(
    r.Rule(id_, clause, Severity.ERROR, req, summary, "certificate chains", _no_check, dev)
    for id_, clause, req, summary, dev in (
        ("chain.parse", "TS 33.310 6.1", "R11", "every element parses as X.509", None),
        (
            "chain.path",
            "TS 33.310 6.3.1 / RFC 5280 6",
            "R24",
            "a path to a configured trust anchor, checked by pyca's web-PKI verifier",
            None,
        ),
        (
            "chain.validity",
            "TS 33.310 6.3.1",
            "R24",
            "no expired or not-yet-valid certificate",
            None,
        ),
        (
            "chain.issued_by_tls_ca",
            r.C_TLS_ENTITY,
            "R16",
            "the end entity is issued directly by a TLS CA (6.1.4a profile)",
            "intermediate-below-tls-ca",
        ),
        (
            "chain.element_profile",
            "TS 33.310 6.1",
            "R11",
            "every element of the path conforms to its profile",
            None,
        ),
        (
            "chain.crl",
            "TS 33.310 6.1a",
            "R25",
            "CRLs are v2, signed by the issuer with SHA-256/384, current",
            None,
        ),
        (
            "chain.revocation",
            "TS 33.310 6.3.1",
            "R25",
            "no element is revoked; revocation status is known",
            "no-revocation-check",
        ),
    )
)


def all_rules() -> list[r.Rule]:
    """Every rule of every profile, and the chain rules, each once, sorted by id."""
    seen: dict[str, r.Rule] = {}
    for profile in PROFILES.values():
        for rule in profile.rules:
            seen.setdefault(rule.id, rule)
    for rule in CHAIN_RULES:
        seen.setdefault(rule.id, rule)
    return sorted(seen.values(), key=lambda rule: rule.id)


def get_profile(name: str | Profile) -> Profile:
    """Look a profile up by name: ``tls-entity``, ``sba-nf``, ``tls-ca``, ``interconnection-ca``."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


_NO_DEVIATIONS: frozenset[str] = frozenset()


def check_deviations(names: object) -> frozenset[str]:
    """Validate deviation names; unknown ones are a :class:`UsageError`."""
    if type(names) is tuple and not names:  # (), the default of every caller
        return _NO_DEVIATIONS
    if isinstance(names, str):
        raise UsageError("deviations must be a collection of names, not a string")
    try:
        result: frozenset[str] = frozenset(names)  # type: ignore[call-overload]
    except TypeError:
        raise UsageError("deviations must be a collection of names") from None
    unknown = sorted(str(n) for n in result - set(DEVIATIONS))
    if unknown:
        raise UsageError(
            f"unknown deviation(s) {', '.join(unknown)}; known: {', '.join(DEVIATIONS)}"
        )
    return result
