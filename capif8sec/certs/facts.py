"""Facts about a certificate's key and signature, computed once per lint, shared by all rules."""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509 import ObjectIdentifier

from capif8sec.certs.names import cert_layout, cert_names
from capif8sec.certs.rawfacts import (
    BasicConstraintsFacts,
    ExtensionFacts,
    KeyTuple,
    KeyUsageFacts,
    SanFacts,
    raw_facts_at,
)

__all__ = [
    "CertFacts",
    "ExtensionFacts",
    "KeyFacts",
    "crypto_extension_facts",
    "extension_facts",
    "issuer_key_facts",
    "key_facts",
    "name_string",
    "security_bits_rsa",
]

# signatureAlgorithm OID -> (signature kind, hash name).  Mapping by OID (rather than asking
# cryptography for the hash) also classifies algorithms cryptography cannot compute, like MD2.
_SIGNATURE_OIDS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.2": ("rsa-pkcs1v15", "md2"),
    "1.2.840.113549.1.1.4": ("rsa-pkcs1v15", "md5"),
    "1.2.840.113549.1.1.5": ("rsa-pkcs1v15", "sha1"),
    "1.2.840.113549.1.1.14": ("rsa-pkcs1v15", "sha224"),
    "1.2.840.113549.1.1.11": ("rsa-pkcs1v15", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa-pkcs1v15", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa-pkcs1v15", "sha512"),
    "1.2.840.113549.1.1.10": ("rsa-pss", None),  # hash comes from the parameters
    "1.2.840.10045.4.1": ("ecdsa", "sha1"),
    "1.2.840.10045.4.3.1": ("ecdsa", "sha224"),
    "1.2.840.10045.4.3.2": ("ecdsa", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa", "sha512"),
    "1.3.101.112": ("eddsa", None),
    "1.3.101.113": ("eddsa", None),
    "1.2.840.10040.4.3": ("dsa", "sha1"),
    "2.16.840.1.101.3.4.3.1": ("dsa", "sha224"),
    "2.16.840.1.101.3.4.3.2": ("dsa", "sha256"),
}


def security_bits_rsa(modulus_bits: int) -> int:
    """Comparable security strength of an RSA modulus (NIST SP 800-57 Part 1, table 2)."""
    for bits, strength in ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80)):
        if modulus_bits >= bits:
            return strength
    return 0


class KeyFacts:
    """Algorithm, size, curve and security strength of a public key."""

    __slots__ = ("bits", "curve", "exponent", "kind", "security_bits")

    def __init__(
        self, kind: str, bits: int, security_bits: int, curve: str | None, exponent: int | None
    ) -> None:
        self.kind = kind
        self.bits = bits
        self.security_bits = security_bits
        self.curve = curve
        self.exponent = exponent

    def describe(self) -> str:
        """E.g. ``RSA-2048`` or ``EC secp256r1``."""
        if self.kind == "rsa":
            return f"RSA-{self.bits}"
        if self.kind == "ec":
            return f"EC {self.curve}"
        return self.kind


def key_facts(key: object) -> KeyFacts:
    """Classify a public key object from ``cryptography``."""
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        return KeyFacts("rsa", bits, security_bits_rsa(bits), None, key.public_numbers().e)
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
        return KeyFacts("ec", bits, bits // 2, key.curve.name, None)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyFacts("ed25519", 255, 128, "ed25519", None)
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyFacts("ed448", 448, 224, "ed448", None)
    if isinstance(key, dsa.DSAPublicKey):
        bits = key.key_size
        return KeyFacts("dsa", bits, security_bits_rsa(bits), None, None)
    return KeyFacts("unknown", 0, 0, None, None)


class CertFacts:
    """Everything the rules need from one certificate, parsed once.

    Properties that can fail on malformed input (the public key, the extensions) are captured
    here; their failures become findings instead of exceptions.  When ``der`` (the exact bytes
    ``cert`` was parsed from) is given, the key and the extension values are read from it by
    :mod:`capif8sec.certs.rawfacts` where that strict reader accepts them, and from pyca's
    objects otherwise; both give the same facts.
    """

    __slots__ = (
        "_cert",
        "extension_error",
        "exts",
        "key",
        "key_error",
        "names",
        "signature_hash",
        "signature_kind",
    )

    def __init__(self, cert: x509.Certificate, der: bytes | None = None) -> None:
        self._cert = cert
        #: Subject and issuer, read from the DER once (see :mod:`capif8sec.certs.names`).
        self.names = cert_names(cert, der)
        raw_key: KeyTuple | None = None
        raw_exts: ExtensionFacts | None = None
        if der is not None:
            layout = cert_layout(cert, der)
            self.signature_kind, self.signature_hash = _signature_of(
                cert, der[layout.signature_algorithm[0] : layout.signature_algorithm[1]]
            )
            raw_key, raw_exts = raw_facts_at(der, layout.spki, layout.after_spki)
        else:
            self.signature_kind, self.signature_hash = _signature(cert)
        self.key: KeyFacts | None
        self.key_error: str | None = None
        if raw_key is not None:
            self.key = KeyFacts(*raw_key, None)
        else:
            try:
                self.key = key_facts(cert.public_key())
            except Exception as exc:  # unsupported or malformed SubjectPublicKeyInfo
                self.key = None
                self.key_error = str(exc)[:200] or type(exc).__name__
        exts, self.extension_error = extension_facts(cert, raw_exts)
        #: The extension values the rules read (empty when the extensions cannot be decoded).
        self.exts = exts if exts is not None else ExtensionFacts({})

    @property
    def extensions(self) -> dict[ObjectIdentifier, x509.Extension[x509.ExtensionType]]:
        """pyca's extension objects by OID (empty when they cannot be decoded).

        Decoded on use: the rules read :attr:`exts` instead.
        """
        if self.extension_error is not None:
            return {}
        return {ext.oid: ext for ext in self._cert.extensions}

    def ext(self, oid: ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
        """pyca's extension object with this OID, if present (see :attr:`extensions`)."""
        return self.extensions.get(oid)


_EXT_CACHE: dict[int, tuple[x509.Certificate, ExtensionFacts | None, str | None]] = {}
_EXT_CACHE_MAX = 256


def extension_facts(
    cert: x509.Certificate, raw: ExtensionFacts | None = None
) -> tuple[ExtensionFacts | None, str | None]:
    """``(facts, None)`` for the extensions of ``cert``, or ``(None, error)`` when pyca cannot
    decode them; remembered per certificate object (a function of its bytes).

    ``raw``: the facts :func:`~capif8sec.certs.rawfacts.raw_cert_facts` read from the bytes
    ``cert`` was parsed from, when it accepted them.
    """
    hit = _EXT_CACHE.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1], hit[2]
    facts: ExtensionFacts | None = raw
    error: str | None = None
    if facts is None:
        try:
            facts = crypto_extension_facts(cert.extensions)
        except Exception as exc:  # duplicate or undecodable extensions
            facts, error = None, str(exc)[:200] or type(exc).__name__
    # No lock: each dict operation is atomic, and a race can only empty the memo once more.
    if len(_EXT_CACHE) >= _EXT_CACHE_MAX:
        _EXT_CACHE.clear()
    _EXT_CACHE[id(cert)] = (cert, facts, error)
    return facts, error


def crypto_extension_facts(extensions: x509.Extensions) -> ExtensionFacts:
    """The :class:`ExtensionFacts` of pyca's extension objects."""
    facts = ExtensionFacts({})
    for ext in extensions:
        facts.critical[ext.oid.dotted_string] = ext.critical
        value = ext.value
        if isinstance(value, x509.KeyUsage):
            agreement = value.key_agreement
            facts.key_usage = KeyUsageFacts(
                value.digital_signature,
                value.content_commitment,
                value.key_encipherment,
                value.data_encipherment,
                agreement,
                value.key_cert_sign,
                value.crl_sign,
                agreement and value.encipher_only,
                agreement and value.decipher_only,
            )
        elif isinstance(value, x509.BasicConstraints):
            facts.basic_constraints = BasicConstraintsFacts(value.ca, value.path_length)
        elif isinstance(value, x509.ExtendedKeyUsage):
            facts.eku = tuple(oid.dotted_string for oid in value)
        elif isinstance(value, x509.SubjectAlternativeName):
            dns: list[str] = []
            uris: list[str] = []
            ips: list[bytes] = []
            other = 0
            for name in value:
                if isinstance(name, x509.DNSName):
                    dns.append(name.value)
                elif isinstance(name, x509.UniformResourceIdentifier):
                    uris.append(name.value)
                elif isinstance(name, x509.IPAddress):
                    ip = name.value
                    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                        ips.append(ip.packed)
                    else:  # a network (name constraints' form)
                        ips.append(ip.network_address.packed + ip.netmask.packed)
                else:
                    other += 1
            facts.san = SanFacts(tuple(dns), tuple(uris), tuple(ips), other)
        elif isinstance(value, x509.CRLDistributionPoints):
            facts.crl_uris = tuple(
                name.value
                for point in value
                for name in point.full_name or ()
                if isinstance(name, x509.UniformResourceIdentifier)
            )
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            facts.aki_key_id = value.key_identifier
    return facts


_SIGNATURES: dict[bytes, tuple[str, str | None]] = {}


def _signature_of(cert: x509.Certificate, algorithm: bytes) -> tuple[str, str | None]:
    """:func:`_signature`, remembered by the DER of the certificate's outer signatureAlgorithm
    (``algorithm``), the field pyca reads both the OID and the PSS hash from."""
    known = _SIGNATURES.get(algorithm)
    if known is None:
        known = _signature(cert)
        if len(_SIGNATURES) < 64:
            _SIGNATURES[algorithm] = known
    return known


def _signature(cert: x509.Certificate) -> tuple[str, str | None]:
    oid = cert.signature_algorithm_oid.dotted_string
    kind, hash_name = _SIGNATURE_OIDS.get(oid, ("unknown", None))
    if kind == "rsa-pss":
        try:
            algorithm = cert.signature_hash_algorithm
            hash_name = algorithm.name if algorithm is not None else None
        except Exception:
            hash_name = None
    return kind, hash_name


# Characters RFC 4514 (and cryptography's rfc4514_string) escape anywhere in a value.
_RFC4514_SPECIAL = re.compile(r'[\\"+,;<>\x00]')
_RFC4514_LABELS: dict[ObjectIdentifier, str] = {}


def name_string(name: x509.Name) -> str:
    """``name.rfc4514_string()``, the same string, computed with less work.

    Values that need no escaping (the usual case) are copied as they are and attribute labels
    are remembered per OID; anything else goes through cryptography's own
    ``NameAttribute.rfc4514_string``.
    """
    rdns = []
    for rdn in reversed(name.rdns):
        parts = []
        for attr in rdn:
            value = attr.value
            if (
                isinstance(value, str)
                and value
                and value[0] not in "# "
                and value[-1] != " "
                and _RFC4514_SPECIAL.search(value) is None
            ):
                label = _RFC4514_LABELS.get(attr.oid)
                if label is None:
                    label = attr.rfc4514_attribute_name
                    if len(_RFC4514_LABELS) < 256:  # unknown OIDs must not grow it unbounded
                        _RFC4514_LABELS[attr.oid] = label
                parts.append(f"{label}={value}")
            else:
                parts.append(attr.rfc4514_string())
        rdns.append("+".join(parts))
    return ",".join(rdns)


_ISSUER_KEYS: dict[int, tuple[x509.Certificate, KeyFacts | None]] = {}


def issuer_key_facts(cert: x509.Certificate) -> KeyFacts | None:
    """``key_facts(cert.public_key())``, None when the key is unusable; remembered per
    certificate object (issuers recur in every lint of what they issued)."""
    hit = _ISSUER_KEYS.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    try:
        facts: KeyFacts | None = key_facts(cert.public_key())
    except Exception:
        facts = None
    if len(_ISSUER_KEYS) >= 64:  # no lock, as in extension_facts
        _ISSUER_KEYS.clear()
    _ISSUER_KEYS[id(cert)] = (cert, facts)
    return facts
