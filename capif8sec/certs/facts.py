"""Facts about a certificate's key and signature, computed once per lint, shared by all rules."""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509 import ObjectIdentifier

from capif8sec.certs.names import cert_names

__all__ = ["CertFacts", "KeyFacts", "key_facts", "name_string", "security_bits_rsa"]

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
    here; their failures become findings instead of exceptions.
    """

    __slots__ = (
        "extension_error",
        "extensions",
        "key",
        "key_error",
        "names",
        "signature_hash",
        "signature_kind",
    )

    def __init__(self, cert: x509.Certificate, der: bytes | None = None) -> None:
        #: Subject and issuer, read from the DER once (see :mod:`capif8sec.certs.names`).
        self.names = cert_names(cert, der)
        self.signature_kind, self.signature_hash = _signature(cert)
        self.key: KeyFacts | None
        self.key_error: str | None = None
        try:
            self.key = key_facts(cert.public_key())
        except Exception as exc:  # unsupported or malformed SubjectPublicKeyInfo
            self.key = None
            self.key_error = str(exc)[:200] or type(exc).__name__
        self.extensions: dict[ObjectIdentifier, x509.Extension[x509.ExtensionType]] = {}
        self.extension_error: str | None = None
        try:
            for ext in cert.extensions:
                self.extensions[ext.oid] = ext
        except Exception as exc:  # duplicate or undecodable extensions
            self.extension_error = str(exc)[:200] or type(exc).__name__

    def ext(self, oid: ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
        """The extension with this OID, if present."""
        return self.extensions.get(oid)


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
