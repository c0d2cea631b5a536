"""The identities an end-entity certificate carries (R56, R57)."""

from __future__ import annotations

import ipaddress

from attrs import frozen
from cryptography import x509

__all__ = ["CertificateIdentities", "identities_of", "matches_reference"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@frozen
class CertificateIdentities:
    """subjectAltName identifiers of a certificate: URI-IDs, DNS-IDs and IP-IDs.

    ``common_name`` is informational only: the policy layer uses it solely in an explicit legacy
    mode and never when any SAN identifier is present (R57).
    """

    uris: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    common_name: str | None = None

    @property
    def has_san_identifiers(self) -> bool:
        """True when any URI, DNS or IP identifier is present."""
        return bool(self.uris or self.dns_names or self.ip_addresses)

    def primary(self, *, legacy_cn: bool = False) -> str | None:
        """The identity policy keys on: the first URI-ID, else DNS-ID, else IP-ID.

        The CN is returned only with ``legacy_cn=True`` and only when the certificate has no
        SAN identifier at all (R57).
        """
        for group in (self.uris, self.dns_names, tuple(str(a) for a in self.ip_addresses)):
            if group:
                return group[0]
        return self.common_name if legacy_cn else None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "uris": list(self.uris),
            "dns_names": list(self.dns_names),
            "ip_addresses": [str(a) for a in self.ip_addresses],
            "common_name": self.common_name,
        }


def identities_of(cert: x509.Certificate) -> CertificateIdentities:
    """Extract the SAN identities (and the CN, for legacy callers) from a certificate."""
    uris: list[str] = []
    dns: list[str] = []
    ips: list[IPAddress] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        dns = san.get_values_for_type(x509.DNSName)
        ips = [
            a
            for a in san.get_values_for_type(x509.IPAddress)
            if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address))
        ]
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = cns[-1].value if cns else None
    return CertificateIdentities(
        tuple(uris), tuple(dns), tuple(ips), cn if isinstance(cn, str) else None
    )


def _a_label(name: str) -> str:
    name = name.rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _dns_match(presented: str, reference: str) -> bool:
    presented = _a_label(presented)
    if presented == reference:
        return True
    if not presented.startswith("*."):
        return False
    suffix = presented[2:]
    if suffix.count(".") < 1 or "*" in suffix:  # no "*.com", one wildcard, left-most only
        return False
    head, _, rest = reference.partition(".")
    return bool(head) and rest == suffix


def matches_reference(identities: CertificateIdentities, reference: str) -> bool:
    """Whether a certificate's SAN identities match a reference identity (RFC 9525 rules).

    An IP reference matches only iPAddress SANs; a URI (``scheme:...``) matches a URI-ID exactly
    (scheme case-insensitive); anything else is a DNS name, compared case-insensitively as
    A-labels, where a presented wildcard may only be the whole left-most label.  The CN is never
    consulted (R57).
    """
    try:
        ip = ipaddress.ip_address(reference)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in identities.ip_addresses
    if ":" in reference:
        scheme, _, rest = reference.partition(":")
        return any(
            u.partition(":")[0].lower() == scheme.lower() and u.partition(":")[2] == rest
            for u in identities.uris
        )
    ref = _a_label(reference)
    return any(_dns_match(name, ref) for name in identities.dns_names)
