"""The identities an end-entity certificate carries (R56, R57)."""

from __future__ import annotations

import ipaddress

from attrs import frozen
from cryptography import x509

from capif8sec.certs.facts import extension_facts
from capif8sec.certs.names import COMMON_NAME, cert_names

__all__ = ["CertificateIdentities", "identities_of", "matches_reference"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@frozen
class CertificateIdentities:
    """subjectAltName identifiers of a certificate: URI-IDs, DNS-IDs and IP-IDs.

    ``common_name`` is informational only: the policy layer uses it solely in an explicit legacy
    mode and never when any SAN identifier is present (R57).  ``san_present`` says the
    certificate has a subjectAltName extension at all: entries the tuples do not hold (an
    otherName such as an SRV-ID, an rfc822Name, an iPAddress in network form) count too.
    """

    uris: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    common_name: str | None = None
    san_present: bool = False

    @property
    def has_san_identifiers(self) -> bool:
        """True when the certificate has a subjectAltName extension, whatever its entries (the
        legacy CN is then never used, R57), or any URI, DNS or IP identifier is given."""
        return self.san_present or bool(self.uris or self.dns_names or self.ip_addresses)

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
    uris: list[str] | tuple[str, ...] = []
    dns: list[str] | tuple[str, ...] = []
    ips: list[IPAddress] = []
    san_present = False
    facts, _ = extension_facts(cert)  # read once per certificate object (a lint did it)
    if facts is not None:
        if facts.san is not None:
            san_present = True
            uris, dns = facts.san.uris, facts.san.dns
            ips = [ipaddress.ip_address(a) for a in facts.san.ips if len(a) in (4, 16)]
    else:  # pyca cannot decode the extensions: its own exception, as before
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        if san is not None:
            san_present = True
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
            dns = san.get_values_for_type(x509.DNSName)
            ips = [
                a
                for a in san.get_values_for_type(x509.IPAddress)
                if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address))
            ]
    cns = cert_names(cert).subject.values(COMMON_NAME)
    cn = cns[-1] if cns else None
    return CertificateIdentities(
        tuple(uris), tuple(dns), tuple(ips), cn if isinstance(cn, str) else None, san_present
    )


def matches_reference(
    identities: CertificateIdentities, reference: str, *, legacy_cn: bool = False
) -> bool:
    """Whether a certificate's SAN identities match a reference identity (RFC 9525 rules).

    Kept here for existing callers; the implementation (and its documentation) lives in
    :func:`capif8sec.policy.identity.matches_reference`.  The CN is never consulted unless
    ``legacy_cn=True`` and the certificate has no SAN identifier (R57).
    """
    from capif8sec.policy.identity import matches_reference as _matches_reference

    return _matches_reference(identities, reference, legacy_cn=legacy_cn)
