"""TS 33.310 rules as data.

Each :class:`Rule` has a stable id, the clause it comes from, a severity, the requirement number
of ``shared/reference/spec-digest.md`` it implements, what it applies to, and a check.  A check
is a plain function from a :class:`LintContext` to the violations it sees; the profiles in
:mod:`capif8sec.certs.profiles` pick the rules that apply to them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

from capif8sec.certs import names
from capif8sec.certs.facts import CertFacts, KeyFacts
from capif8sec.certs.rawfacts import BasicConstraintsFacts, KeyUsageFacts, SanFacts
from capif8sec.certs.report import Severity

if TYPE_CHECKING:  # pragma: no cover
    from capif8sec.certs.profiles import Profile

__all__ = ["NF_TYPES_OID", "LintContext", "Rule", "Violation"]

#: id-pe-nftype (RFC 9310), mandatory in the TS 33.310 6.1.3c NF profile.
NF_TYPES_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.34")

C_COMMON = "TS 33.310 6.1.1"
C_TLS_ENTITY = "TS 33.310 6.1.3a"
C_EE = "TS 33.310 6.1.3a, 6.1.3c"
C_SBA = "TS 33.310 6.1.3c"
C_TLS_CA = "TS 33.310 6.1.4a"
C_ICA = "TS 33.310 6.1.2"
C_CA = "TS 33.310 6.1.4a, 6.1.2"


@frozen
class Violation:
    """What a check reports: a message, the field concerned, and optionally a narrower clause."""

    message: str
    field: str = ""
    clause: str | None = None


class LintContext:
    """What a rule's check sees: the certificate, its parsed facts, and the lint's settings."""

    __slots__ = ("cert", "deviations", "facts", "issuer", "issuer_key", "profile", "role")

    def __init__(
        self,
        cert: x509.Certificate,
        facts: CertFacts,
        profile: Profile,
        role: str | None,
        issuer: x509.Certificate | None,
        issuer_key: KeyFacts | None,
        deviations: frozenset[str],
    ) -> None:
        self.cert = cert
        self.facts = facts
        self.profile = profile
        self.role = role
        self.issuer = issuer
        self.issuer_key = issuer_key
        self.deviations = deviations


Check = Callable[[LintContext], Iterator[Violation]]


@frozen
class Rule:
    """One profile rule."""

    id: str
    clause: str
    severity: Severity
    requirement: str
    summary: str
    applies_to: str
    check: Check
    #: The name of the deviation that switches this rule off, if any.
    deviation: str | None = None
    #: Whether the check reads extensions.  Such rules are skipped when the certificate has no
    #: decodable extensions (not v3, or ``common.extensions_decodable`` failed), which is
    #: already an error of its own.
    needs_extensions: bool = True

    def as_dict(self) -> dict[str, str]:
        """The catalogue form (for ``--list-rules`` and the docs)."""
        return {
            "rule": self.id,
            "clause": self.clause,
            "severity": self.severity.value,
            "requirement": self.requirement,
            "applies_to": self.applies_to,
            "summary": self.summary,
            "deviation": self.deviation or "",
        }


# --------------------------------------------------------------------------- helpers


def _key_usage(ctx: LintContext) -> KeyUsageFacts | None:
    return ctx.facts.exts.key_usage


def _basic_constraints(ctx: LintContext) -> BasicConstraintsFacts | None:
    return ctx.facts.exts.basic_constraints


def _eku(ctx: LintContext) -> tuple[str, ...] | None:
    return ctx.facts.exts.eku


def _san(ctx: LintContext) -> SanFacts | None:
    return ctx.facts.exts.san


def _roles(ctx: LintContext) -> tuple[str, ...]:
    if ctx.role == "both":
        return ("server", "client")
    return (ctx.role,) if ctx.role else ()


_ROLE_EKU = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH.dotted_string,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string,
}
_ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string
_ROLE_EKU_NAME = {"server": "id-kp-serverAuth", "client": "id-kp-clientAuth"}


# --------------------------------------------------------------------------- 6.1.1 common


_V3 = x509.Version.v3


def _check_version(ctx: LintContext) -> Iterator[Violation]:
    try:
        version = ctx.cert.version
    except Exception:
        yield Violation("the certificate's version field is not a known X.509 version", "version")
        return
    if version is not _V3:
        yield Violation(f"certificate is X.509 {version.name}; it must be v3", "version")


_FORBIDDEN_HASHES = {"md2", "md5", "sha1"}
_ALLOWED_HASHES = {"sha256", "sha384", "sha512"}


def _check_signature_hash(ctx: LintContext) -> Iterator[Violation]:
    kind, name = ctx.facts.signature_kind, ctx.facts.signature_hash
    if kind in ("unknown", "eddsa"):
        return  # judged by common.signature_algorithm
    if name in _FORBIDDEN_HASHES:
        yield Violation(
            f"signed with {name.upper()}, which TS 33.310 forbids (use SHA-256 or SHA-384)",
            "signatureAlgorithm",
        )
    elif name not in _ALLOWED_HASHES:
        yield Violation(
            f"signature hash {name or 'unknown'} is not SHA-256 or SHA-384", "signatureAlgorithm"
        )


def _check_signature_algorithm(ctx: LintContext) -> Iterator[Violation]:
    kind = ctx.facts.signature_kind
    if kind in ("unknown", "dsa"):
        oid = ctx.cert.signature_algorithm_oid.dotted_string
        yield Violation(f"signature algorithm {oid} is neither RSA nor ECDSA", "signatureAlgorithm")


def _check_rsa_pkcs1v15(ctx: LintContext) -> Iterator[Violation]:
    if ctx.facts.signature_kind == "rsa-pkcs1v15":
        yield Violation(
            "RSA PKCS#1 v1.5 signatures are not recommended; ECDSA is recommended for new "
            "certificates",
            "signatureAlgorithm",
        )


def _check_public_key_algorithm(ctx: LintContext) -> Iterator[Violation]:
    key = ctx.facts.key
    if key is None:
        yield Violation(
            f"the subject public key cannot be used: {ctx.facts.key_error}", "subjectPublicKeyInfo"
        )
    elif key.kind not in ("rsa", "ec", "ed25519", "ed448"):
        yield Violation(
            f"public key algorithm {key.kind} is not rsaEncryption or id-ecPublicKey",
            "subjectPublicKeyInfo",
        )


_TLS_CURVES = {"secp256r1", "secp384r1", "secp521r1"}


def _check_ec_curve(ctx: LintContext) -> Iterator[Violation]:
    key = ctx.facts.key
    if key is None or key.kind != "ec" or key.curve in _TLS_CURVES:
        return
    if key.bits < 256:
        yield Violation(
            f"EC curve {key.curve} has {key.bits} bits; groups below 256 bits shall not be used",
            "subjectPublicKeyInfo",
        )
    else:
        yield Violation(
            f"EC curve {key.curve} has no TLS signature scheme; use secp256r1 or secp384r1",
            "subjectPublicKeyInfo",
        )


def _check_ec_curve_recommended(ctx: LintContext) -> Iterator[Violation]:
    key = ctx.facts.key
    if key is not None and key.kind != "rsa" and key.curve in ("secp521r1", "ed25519", "ed448"):
        yield Violation(
            f"{key.curve} is allowed, but TS 33.310 requires secp256r1 and recommends secp384r1;"
            " peers may not support it",
            "subjectPublicKeyInfo",
        )


def _check_rsa_key_size(ctx: LintContext) -> Iterator[Violation]:
    key = ctx.facts.key
    if key is not None and key.kind == "rsa" and key.bits < 2048:
        yield Violation(
            f"RSA modulus of {key.bits} bits; at least 2048 required", "subjectPublicKeyInfo"
        )


def _check_rsa_exponent(ctx: LintContext) -> Iterator[Violation]:
    key = ctx.facts.key
    if key is not None and key.kind == "rsa" and (key.exponent or 0) < 65537:
        yield Violation(
            f"RSA public exponent {key.exponent}; at least 65537 required", "subjectPublicKeyInfo"
        )


_END_OF_2030 = dt.datetime(2030, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def _check_after_2030(ctx: LintContext) -> Iterator[Violation]:
    if ctx.cert.not_valid_after_utc <= _END_OF_2030:
        return
    key = ctx.facts.key
    if key is not None and key.kind == "rsa" and key.bits < 3072:
        yield Violation(
            f"RSA-{key.bits} in a certificate valid after 2030 (use >= 3072 bits)",
            "subjectPublicKeyInfo",
        )
    if ctx.facts.signature_kind == "rsa-pkcs1v15":
        yield Violation(
            "RSA PKCS#1 v1.5 signature on a certificate valid after 2030", "signatureAlgorithm"
        )


def _check_signer_strength(ctx: LintContext) -> Iterator[Violation]:
    key, signer = ctx.facts.key, ctx.issuer_key
    if key is None or signer is None:
        return
    if signer.security_bits < key.security_bits:
        yield Violation(
            f"signed by a weaker key ({signer.describe()}, {signer.security_bits}-bit security)"
            f" than its own ({key.describe()}, {key.security_bits}-bit)",
            "signature",
        )


def _check_extensions_decodable(ctx: LintContext) -> Iterator[Violation]:
    if ctx.facts.extension_error is not None:
        yield Violation(
            f"the extensions cannot be decoded: {ctx.facts.extension_error}", "extensions"
        )


def _check_extension_criticality(ctx: LintContext) -> Iterator[Violation]:
    table = _dotted_criticality(ctx.profile)
    for oid, critical in ctx.facts.exts.critical.items():
        expected = table.get(oid)
        if expected is None:
            if critical:
                name = _oid_name(oid)
                yield Violation(
                    f"{name} is marked critical, but this profile does not know it as critical",
                    f"extensions.{name}",
                )
            continue
        want, clause = expected
        if want == "critical" and not critical:
            name = _oid_name(oid)
            yield Violation(f"{name} must be critical", f"extensions.{name}", clause)
        elif want == "non-critical" and critical:
            name = _oid_name(oid)
            yield Violation(f"{name} must be non-critical", f"extensions.{name}", clause)


_DOTTED_TABLES: dict[int, tuple[Profile, dict[str, tuple[str, str]]]] = {}


def _dotted_criticality(profile: Profile) -> dict[str, tuple[str, str]]:
    """The profile's criticality table keyed by dotted OID (remembered per profile object)."""
    hit = _DOTTED_TABLES.get(id(profile))
    if hit is not None and hit[0] is profile:
        return hit[1]
    table = {oid.dotted_string: want for oid, want in profile.criticality.items()}
    if len(_DOTTED_TABLES) >= 64:
        _DOTTED_TABLES.clear()
    _DOTTED_TABLES[id(profile)] = (profile, table)
    return table


def _oid_name(dotted: str) -> str:
    oid = ObjectIdentifier(dotted)
    if oid == NF_TYPES_OID:
        return "nfTypes"
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


# One letter per attribute type the name forms use; the forms are then plain string patterns.
_FORM_LETTERS = {
    names.COUNTRY: "C",
    names.ORGANIZATION: "O",
    names.COMMON_NAME: "N",
    names.DOMAIN_COMPONENT: "D",
    names.ORG_UNIT: "U",
}
# Form 1: (C), O, CN with O and CN as UTF8String; the NF profile also allows (C), O.
_FORM_1 = frozenset({"ON", "CON"})
_FORM_1_C_O = frozenset({"O", "CO"})
# Form 2: dc=<domain>, dc=<domain>, (ou=<servers>), cn=<hostname> (most significant first).
_FORM_2 = re.compile("DD+U?N")


_NAME_FORMS: dict[tuple[bytes, bool], bool] = {}


def _name_form_ok(name: names.RawName, allow_c_o: bool) -> bool:
    """Whether ``name`` has one of the two forms; remembered by the name's DER (issuers repeat
    in every certificate they issue)."""
    key = (name.der, allow_c_o)
    known = _NAME_FORMS.get(key)
    if known is None:
        known = _name_form(name, allow_c_o)
        if len(_NAME_FORMS) >= 1024:
            _NAME_FORMS.clear()
        _NAME_FORMS[key] = known
    return known


def _name_form(name: names.RawName, allow_c_o: bool) -> bool:
    letters = []
    o_cn_utf8 = True
    for rdn in name.rdns:
        if len(rdn) != 1:
            return False
        for attr in rdn:
            letter = _FORM_LETTERS.get(attr.oid, "?")
            letters.append(letter)
            if (letter == "O" or letter == "N") and attr.tag != names.UTF8STRING:
                o_cn_utf8 = False
    form = "".join(letters)
    if form in _FORM_1 or (allow_c_o and form in _FORM_1_C_O):
        return o_cn_utf8
    return _FORM_2.fullmatch(form) is not None


def _check_name_form(ctx: LintContext) -> Iterator[Violation]:
    allow_c_o = ctx.profile.name == "sba-nf"
    for label, name in (("subject", ctx.facts.names.subject), ("issuer", ctx.facts.names.issuer)):
        if not _name_form_ok(name, allow_c_o and label == "subject"):
            yield Violation(
                f"{label} {name.rfc4514() or '(empty)'} is neither "
                "'(C), O, CN' (O and CN as UTF8String) nor 'cn, (ou), dc, dc'",
                label,
            )


def _check_serial_number(ctx: LintContext) -> Iterator[Violation]:
    serial = ctx.cert.serial_number
    if serial <= 0:
        yield Violation(f"serial number {serial} is not a positive integer", "serialNumber")
    elif (serial.bit_length() + 8) // 8 > 20:
        yield Violation("serial number is longer than 20 octets", "serialNumber")


def _check_validity_order(ctx: LintContext) -> Iterator[Violation]:
    if ctx.cert.not_valid_before_utc > ctx.cert.not_valid_after_utc:
        yield Violation("notBefore is later than notAfter", "validity")


# --------------------------------------------------------------------------- end entities


def _check_key_usage_present(ctx: LintContext) -> Iterator[Violation]:
    if ctx.facts.exts.key_usage is None:
        yield Violation("keyUsage is missing", "extensions.keyUsage")


def _check_key_usage_digital_signature(ctx: LintContext) -> Iterator[Violation]:
    ku = _key_usage(ctx)
    if ku is not None and not ku.digital_signature:
        extra = (
            " (keyEncipherment alone only serves RSA key transport)"
            if (ku.key_encipherment)
            else ""
        )
        yield Violation(
            "keyUsage lacks digitalSignature, which every TS 33.210 suite needs" + extra,
            "extensions.keyUsage",
        )


def _check_eku_role(ctx: LintContext) -> Iterator[Violation]:
    eku = _eku(ctx)
    if eku is None:
        return
    for role in _roles(ctx):
        if _ROLE_EKU[role] not in eku:
            yield Violation(
                f"extendedKeyUsage lacks {_ROLE_EKU_NAME[role]} for the {role} role",
                "extensions.extendedKeyUsage",
            )


def _check_eku_any(ctx: LintContext) -> Iterator[Violation]:
    eku = _eku(ctx)
    if eku is not None and _ANY_EKU in eku:
        yield Violation("anyExtendedKeyUsage is not accepted", "extensions.extendedKeyUsage")


def _check_crl_distribution_point(ctx: LintContext) -> Iterator[Violation]:
    uris = ctx.facts.exts.crl_uris
    if uris is None:
        yield Violation("cRLDistributionPoints is missing", "extensions.cRLDistributionPoints")
        return
    for uri in uris:
        if uri.lower().startswith(_CRL_SCHEMES):
            return
    yield Violation(
        "cRLDistributionPoints holds no HTTP or LDAP URI", "extensions.cRLDistributionPoints"
    )


def crl_urls(value: x509.CRLDistributionPoints) -> list[str]:
    """The HTTP(S)/LDAP URIs of a cRLDistributionPoints extension."""
    urls = []
    for point in value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
                _CRL_SCHEMES
            ):
                urls.append(name.value)
    return urls


_CRL_SCHEMES = ("http://", "https://", "ldap://", "ldaps://")


def _check_not_ca(ctx: LintContext) -> Iterator[Violation]:
    bc = _basic_constraints(ctx)
    if bc is not None and bc.ca:
        yield Violation("an end-entity certificate asserts cA=TRUE", "extensions.basicConstraints")
    ku = _key_usage(ctx)
    if ku is not None and ku.key_cert_sign:
        yield Violation("an end-entity certificate asserts keyCertSign", "extensions.keyUsage")


def _check_san_present_for_identity(ctx: LintContext) -> Iterator[Violation]:
    san = _san(ctx)
    if san is None or not (san.dns or san.uris or san.ips):
        yield Violation(
            "no DNS, URI or IP subjectAltName: the certificate carries no identity usable for "
            "authentication and policy checks, and path validation will refuse it",
            "extensions.subjectAltName",
        )


# --------------------------------------------------------------------------- 6.1.3c SBA NF


def _check_eku_present(ctx: LintContext) -> Iterator[Violation]:
    if _eku(ctx) is None:
        yield Violation(
            "extendedKeyUsage is mandatory in the NF profile", "extensions.extendedKeyUsage"
        )


def _check_aki(ctx: LintContext) -> Iterator[Violation]:
    key_id = ctx.facts.exts.aki_key_id
    if key_id is None:
        yield Violation(
            "authorityKeyIdentifier with a keyIdentifier is mandatory",
            "extensions.authorityKeyIdentifier",
        )
        return
    if ctx.issuer is None:
        return
    expected = key_identifier(ctx.issuer)
    if expected is not None and key_id != expected:
        yield Violation(
            "authorityKeyIdentifier does not equal the issuer's subjectKeyIdentifier",
            "extensions.authorityKeyIdentifier",
        )


def key_identifier(cert: x509.Certificate) -> bytes | None:
    """The certificate's SKI, or RFC 5280 method (1) over its key when it has none."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ski.value.key_identifier
    except x509.ExtensionNotFound:
        pass
    except Exception:
        return None
    try:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:
        return None
    return hashlib.sha1(_subject_public_key_bits(spki), usedforsecurity=False).digest()


def _subject_public_key_bits(spki: bytes) -> bytes:
    from capif8sec._der import iter_tlvs, read_tlv

    outer, _ = read_tlv(spki)
    parts = list(iter_tlvs(outer.content))
    return parts[1].content[1:]  # BIT STRING minus the unused-bits octet


def _check_san_mandatory(ctx: LintContext) -> Iterator[Violation]:
    if _san(ctx) is None:
        yield Violation(
            "subjectAltName is mandatory in the NF profile", "extensions.subjectAltName"
        )


def _check_nf_types(ctx: LintContext) -> Iterator[Violation]:
    if NF_TYPES_OID.dotted_string not in ctx.facts.exts.critical:
        yield Violation("nfTypes (id-pe 34, RFC 9310) is mandatory", "extensions.nfTypes")


def _check_server_dns_id(ctx: LintContext) -> Iterator[Violation]:
    if "server" not in _roles(ctx):
        return
    san = _san(ctx)
    if san is None:
        return  # sba_nf.subject_alt_name reports it
    if not san.dns:
        yield Violation(
            "a server certificate needs a DNS-ID with its FQDN (and must not be IP-only)",
            "extensions.subjectAltName",
        )


_THREE_YEARS = dt.timedelta(days=3 * 365 + 1)


def _check_nf_validity(ctx: LintContext) -> Iterator[Violation]:
    span = ctx.cert.not_valid_after_utc - ctx.cert.not_valid_before_utc
    if span > _THREE_YEARS:
        yield Violation(f"validity of {span.days} days exceeds 3 years", "validity")


# --------------------------------------------------------------------------- CA profiles


def _check_ca_basic_constraints(ctx: LintContext) -> Iterator[Violation]:
    bc = _basic_constraints(ctx)
    if bc is None:
        yield Violation("basicConstraints is missing", "extensions.basicConstraints")
    elif not bc.ca:
        yield Violation("basicConstraints does not assert cA=TRUE", "extensions.basicConstraints")


def _check_ca_key_usage(ctx: LintContext) -> Iterator[Violation]:
    ku = _key_usage(ctx)
    if ku is None:
        yield Violation("keyUsage is missing", "extensions.keyUsage")
        return
    missing = [n for n, v in (("keyCertSign", ku.key_cert_sign), ("cRLSign", ku.crl_sign)) if not v]
    if missing:
        yield Violation(f"keyUsage lacks {' and '.join(missing)}", "extensions.keyUsage")


def _check_tls_ca_path_length(ctx: LintContext) -> Iterator[Violation]:
    bc = _basic_constraints(ctx)
    if bc is not None and bc.ca and bc.path_length != 0:
        shown = "absent" if bc.path_length is None else str(bc.path_length)
        yield Violation(
            f"pathLenConstraint is {shown}; a TLS CA must have pathLenConstraint=0",
            "extensions.basicConstraints",
        )


def _check_interconnection_path_length(ctx: LintContext) -> Iterator[Violation]:
    bc = _basic_constraints(ctx)
    if bc is not None and bc.ca and bc.path_length == 0:
        yield Violation(
            "pathLenConstraint is 0; an interconnection CA needs it absent or >= 1",
            "extensions.basicConstraints",
        )


# --------------------------------------------------------------------------- the catalogue

E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTICE
ALL = "all certificates"
EE = "end-entity certificates"


def _rule(
    id: str,
    clause: str,
    severity: Severity,
    requirement: str,
    summary: str,
    applies_to: str,
    check: Check,
    deviation: str | None = None,
    needs_extensions: bool = True,
) -> Rule:
    return Rule(
        id, clause, severity, requirement, summary, applies_to, check, deviation, needs_extensions
    )


COMMON_RULES: tuple[Rule, ...] = (
    _rule(
        "common.version",
        C_COMMON,
        E,
        "R1",
        "X.509 v3 only",
        ALL,
        _check_version,
        needs_extensions=False,
    ),
    _rule(
        "common.serial_number",
        "RFC 5280 4.1.2.2 (TS 33.310 6.1)",
        E,
        "R18",
        "serial number positive and at most 20 octets",
        ALL,
        _check_serial_number,
        needs_extensions=False,
    ),
    _rule(
        "common.validity_order",
        "RFC 5280 4.1.2.5 (TS 33.310 6.1)",
        E,
        "R24",
        "notBefore not later than notAfter",
        ALL,
        _check_validity_order,
        needs_extensions=False,
    ),
    _rule(
        "common.signature_algorithm",
        C_COMMON,
        E,
        "R3",
        "certificate signed with RSA or ECDSA",
        ALL,
        _check_signature_algorithm,
        needs_extensions=False,
    ),
    _rule(
        "common.signature_hash",
        C_COMMON,
        E,
        "R2",
        "signature hash SHA-256 or SHA-384 (MD2, MD5, SHA-1 refused)",
        ALL,
        _check_signature_hash,
        needs_extensions=False,
    ),
    _rule(
        "common.rsa_pkcs1v15",
        C_COMMON,
        W,
        "R3",
        "RSA PKCS#1 v1.5 signatures are not recommended",
        "RSA PKCS#1 v1.5 signatures",
        _check_rsa_pkcs1v15,
        needs_extensions=False,
    ),
    _rule(
        "common.public_key_algorithm",
        C_COMMON,
        E,
        "R4",
        "subject key is rsaEncryption or id-ecPublicKey",
        ALL,
        _check_public_key_algorithm,
        needs_extensions=False,
    ),
    _rule(
        "common.ec_curve",
        C_COMMON,
        E,
        "R4, R5",
        "EC keys on secp256r1, secp384r1 (or secp521r1); nothing under 256 bits",
        "EC keys",
        _check_ec_curve,
        needs_extensions=False,
    ),
    _rule(
        "common.ec_curve_recommended",
        C_COMMON,
        N,
        "R4",
        "curves other than secp256r1/secp384r1 may not interoperate",
        "EC and EdDSA keys",
        _check_ec_curve_recommended,
        needs_extensions=False,
    ),
    _rule(
        "common.rsa_key_size",
        C_COMMON,
        E,
        "R5",
        "RSA modulus at least 2048 bits",
        "RSA keys",
        _check_rsa_key_size,
        needs_extensions=False,
    ),
    _rule(
        "common.rsa_exponent",
        C_COMMON,
        E,
        "R6",
        "RSA public exponent at least 65537",
        "RSA keys",
        _check_rsa_exponent,
        needs_extensions=False,
    ),
    _rule(
        "common.strength_after_2030",
        C_COMMON,
        W,
        "R7",
        "no RSA below 3072 bits nor PKCS#1 v1.5 in certificates valid after 2030",
        "certificates valid after 2030",
        _check_after_2030,
        needs_extensions=False,
    ),
    _rule(
        "common.signer_strength",
        C_COMMON,
        E,
        "R8",
        "the signing key is at least as strong as the certified key",
        "certificates whose issuer is known",
        _check_signer_strength,
        needs_extensions=False,
    ),
    _rule(
        "common.extensions_decodable",
        C_COMMON,
        E,
        "R9, R11",
        "extensions decode (no duplicates, no malformed values)",
        ALL,
        _check_extensions_decodable,
        needs_extensions=False,
    ),
    _rule(
        "common.extension_criticality",
        "TS 33.310 6.1.1 NOTE 3",
        E,
        "R9, R13, R14, R15",
        "criticality as the profile demands; optional and unknown extensions non-critical",
        ALL,
        _check_extension_criticality,
    ),
    _rule(
        "common.name_form",
        C_COMMON,
        W,
        "R10",
        "subject and issuer as '(C), O, CN' (UTF8String) or 'cn, (ou), dc, dc'",
        ALL,
        _check_name_form,
        needs_extensions=False,
    ),
)

EE_RULES: tuple[Rule, ...] = (
    _rule(
        "ee.key_usage_present",
        C_EE,
        E,
        "R12, R18",
        "keyUsage present",
        EE,
        _check_key_usage_present,
    ),
    _rule(
        "ee.key_usage_digital_signature",
        C_EE,
        E,
        "R12, R18",
        "keyUsage asserts digitalSignature (keyEncipherment alone is not enough)",
        EE,
        _check_key_usage_digital_signature,
    ),
    _rule(
        "ee.eku_role",
        C_EE,
        E,
        "R13, R19",
        "extendedKeyUsage, when present, holds serverAuth/clientAuth for the role",
        EE,
        _check_eku_role,
    ),
    _rule("ee.eku_any", C_EE, E, "R13", "anyExtendedKeyUsage refused", EE, _check_eku_any),
    _rule(
        "ee.crl_distribution_point",
        C_EE,
        E,
        "R14, R20",
        "cRLDistributionPoints present with an HTTP or LDAP URI",
        EE,
        _check_crl_distribution_point,
        deviation="no-crl-distribution-point",
    ),
    _rule("ee.not_ca", C_EE, E, "R17", "not a CA (no cA=TRUE, no keyCertSign)", EE, _check_not_ca),
)

TLS_ENTITY_RULES: tuple[Rule, ...] = (
    _rule(
        "tls_entity.identity",
        C_TLS_ENTITY + " / RFC 9525",
        W,
        "R56, R57",
        "a DNS, URI or IP subjectAltName carries the peer identity",
        EE,
        _check_san_present_for_identity,
    ),
)

SBA_NF_RULES: tuple[Rule, ...] = (
    _rule(
        "sba_nf.extended_key_usage",
        C_SBA,
        E,
        "R19",
        "extendedKeyUsage present",
        EE,
        _check_eku_present,
    ),
    _rule(
        "sba_nf.authority_key_identifier",
        C_SBA,
        E,
        "R20",
        "authorityKeyIdentifier present and equal to the issuer's SKI",
        EE,
        _check_aki,
    ),
    _rule(
        "sba_nf.subject_alt_name",
        C_SBA,
        E,
        "R20",
        "subjectAltName present",
        EE,
        _check_san_mandatory,
    ),
    _rule("sba_nf.nf_types", C_SBA, E, "R20", "nfTypes extension present", EE, _check_nf_types),
    _rule(
        "sba_nf.server_dns_id",
        C_SBA,
        E,
        "R21",
        "server certificates carry a DNS-ID (not IP-only)",
        "server NF certificates",
        _check_server_dns_id,
    ),
    _rule(
        "sba_nf.validity", C_SBA, E, "R18", "validity of 3 years or less", EE, _check_nf_validity
    ),
)

CA_RULES: tuple[Rule, ...] = (
    _rule(
        "ca.basic_constraints",
        C_CA,
        E,
        "R22, R23",
        "basicConstraints present with cA=TRUE",
        "CA certificates",
        _check_ca_basic_constraints,
    ),
    _rule(
        "ca.key_usage",
        C_CA,
        E,
        "R22, R23",
        "keyUsage with keyCertSign and cRLSign",
        "CA certificates",
        _check_ca_key_usage,
    ),
)

TLS_CA_RULES: tuple[Rule, ...] = (
    _rule(
        "tls_ca.path_length",
        C_TLS_CA,
        E,
        "R22",
        "pathLenConstraint=0",
        "TLS CA certificates",
        _check_tls_ca_path_length,
    ),
)

INTERCONNECTION_CA_RULES: tuple[Rule, ...] = (
    _rule(
        "interconnection_ca.path_length",
        C_ICA,
        E,
        "R23",
        "pathLenConstraint absent or at least 1",
        "interconnection CA certificates",
        _check_interconnection_path_length,
    ),
)
