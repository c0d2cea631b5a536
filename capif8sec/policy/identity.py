"""Typed identities of an authenticated peer, and RFC 9525 reference-identity matching.

Two jobs, both fed only by an authenticated credential (R56):

* :func:`identities_of_peer` turns an :class:`~capif8sec.auth.AuthenticatedPeer` into typed
  identities: :class:`UriId`, :class:`DnsId` and :class:`IpId` from the certificate's
  subjectAltName, :class:`PskIdentity` for a PSK (TLS-level or in-channel),
  :class:`ScramUsername` for a password.  The certificate CN (:class:`CnId`) appears only with
  ``legacy_cn=True`` and never when the certificate carries any SAN identifier (R57).
  Identities found in message bodies or HTTP headers never enter here.
* :func:`matches` checks a presented identity against a *reference identity* -- the name the
  checking side expected to reach (an ROF checking the CCF, a CCF checking the ROF it called) --
  by the rules of RFC 9525:

  - a DNS reference matches a DNS-ID case-insensitively, both as A-labels (a U-label reference
    is converted with IDNA2008 + UTS #46 mapping, the ``idna`` package; a trailing dot is
    ignored);
  - a presented wildcard matches only as the whole left-most label (``*.example.com``), stands
    for exactly one label, and is refused when fewer than two labels follow it (``*.com``);
    partial wildcards (``f*o.example.com``, ``*o.example.com``) and wildcards in any other
    position never match;
  - an IP reference matches only an iPAddress SAN (never a DNS-ID that spells the address);
  - a URI reference matches a URI-ID with the scheme and the host compared case-insensitively
    (the host as A-labels) and everything else (port, path, query) exactly -- stricter than
    RFC 9525, which compares only scheme and host; an ``urn:`` URI-ID has no host and is
    compared exactly after its scheme;
  - a CN is compared only in the explicit legacy mode (a :class:`CnId` is only produced then),
    exactly as a DNS name, without wildcards.

Every identity has a :attr:`~DnsId.key`, ``"<kind>:<normalized value>"`` (``dns:rof-1.example``,
``uri:urn:capif:rof:1``, ``ip:192.0.2.7``, ``psk:rof-1``, ``scram:alice``, ``cn:rof-1``): the
form policy rules name peers by.  Kinds keep namespaces apart: a SCRAM user called
``rof-1.example`` is not the certificate DNS-ID ``rof-1.example``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import ClassVar

import idna
from attrs import field, frozen

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.errors import UsageError

__all__ = [
    "IDENTITY_KINDS",
    "CnId",
    "DnsId",
    "Identity",
    "IpId",
    "PskIdentity",
    "ReferenceIdentity",
    "ScramUsername",
    "UriId",
    "identities_of_peer",
    "identity_key",
    "matches",
    "matches_any",
    "matches_reference",
    "parse_identity",
    "policy_keys",
    "reference_identity",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Plain strings: reading an enum member off its class is slow on the hot path (Python 3.11).
_CERTIFICATE = Method.CERTIFICATE.value
_PSK = Method.PSK.value
_PSK_IN_CHANNEL = Method.PSK_IN_CHANNEL.value
_PASSWORD = Method.PASSWORD.value

#: The identity kinds, as they prefix a :attr:`key`.
IDENTITY_KINDS = ("uri", "dns", "ip", "psk", "scram", "cn")

#: Longest PSK identity (RFC 8446: 1 to 2^16-1 bytes; R45).
MAX_PSK_IDENTITY_BYTES = 65535
#: Longest username or URI accepted as an identity.
MAX_IDENTITY_CHARS = 1024

_LDH_NAME = re.compile(
    r"(?=[a-z0-9.-]{1,253}\Z)(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)*(?!-)[a-z0-9-]{1,63}(?<!-)\Z"
)
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.DOTALL)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
#: A URI without authority, lower-case scheme, visible ASCII: already in normal form.
_PLAIN_URI = re.compile(r"(?=[!-~]{1,1024}\Z)[a-z][a-z0-9+.-]*:(?!//)[!-~]+\Z")
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


# -- normalization ---------------------------------------------------------------------------


# A last label an address parser would read as a number (decimal or hex: inet_aton takes
# 127.1, 0x7f.0.0.1 and 127.0.0.0x1): such a "name" is an address, never a DNS name.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _numeric_tld(name: str) -> bool:
    """Whether the last label of a lower-case name without a final dot is numeric."""
    return _NUMERIC_LABEL.fullmatch(name.rpartition(".")[2]) is not None


def _ascii_dns(name: str) -> str | None:
    """A presented ASCII DNS name, lower case, without a trailing dot; None if not LDH, or if
    its last label is numeric (it spells an address)."""
    if not name.isascii():
        return None
    name = (name[:-1] if name.endswith(".") else name).lower()
    return name if _LDH_NAME.match(name) and not _numeric_tld(name) else None


def _valid_a_labels(name: str) -> bool:
    for label in name.split("."):
        if label.startswith("xn--"):
            try:
                if idna.encode(idna.decode(label)).decode("ascii") != label:
                    return False
            except (idna.IDNAError, UnicodeError):
                return False
    return True


def _dns_reference(text: str) -> str:
    """A reference DNS name as lower-case A-labels (IDNA2008, UTS #46 mapping); UsageError."""
    if len(text) > MAX_IDENTITY_CHARS:
        raise UsageError(f"a DNS name is at most {MAX_IDENTITY_CHARS} characters")
    name = text[:-1] if text.endswith(".") else text
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise UsageError(f"{text!r} is not a valid internationalized DNS name") from None
    name = name.lower()
    if not _LDH_NAME.match(name):
        raise UsageError(f"{text!r} is not a valid DNS name (letters, digits, hyphens, dots)")
    if _numeric_tld(name):  # "192.0.2.1.", "127.1", "0x7f.0.0.0x1": an address, not a name
        raise UsageError(
            f"{text!r} is not a DNS name (its last label is numeric) nor an IP address"
        )
    if not _valid_a_labels(name):
        raise UsageError(f"{text!r} holds an invalid A-label (xn--...)")
    return name


def _host(host: str) -> str:
    """A URI host, lower case; an internationalized host as A-labels when it converts."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return host.lower()


def _normalize_uri(uri: str) -> str | None:
    """Scheme and host lower case, the rest untouched; None if this is not a usable URI."""
    if _PLAIN_URI.match(uri):  # the usual case (urn:...), already normal: one regex
        return uri
    if len(uri) > MAX_IDENTITY_CHARS or not uri.isprintable() or " " in uri:
        return None
    scheme, sep, rest = uri.partition(":")
    if not sep or not rest:
        return None
    if not rest.startswith("//"):  # no authority (urn:, mailto:, ...): only the scheme folds
        if scheme.isascii() and scheme.isalpha():
            return uri if scheme.islower() else f"{scheme.lower()}:{rest}"
        return f"{scheme.lower()}:{rest}" if _SCHEME.fullmatch(scheme) else None
    m = _URI.match(uri)
    if m is None:
        return None
    scheme, authority, rest = m.groups()
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, port = hostport[: end + 1], hostport[end + 1 :]
    else:
        host, colon, port = hostport.partition(":")
        port = colon + port
    if not host:
        return None
    return f"{scheme.lower()}://{userinfo}{at}{_host(host)}{port}{rest}"


# -- typed identities ------------------------------------------------------------------------


def _dns_value(name: str) -> str:
    name = name[:-1] if name.endswith(".") else name
    if not name.isascii():
        try:
            return idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return name.lower()
    return name.lower()


def _uri_value(uri: str) -> str:
    normalized = _normalize_uri(uri)
    if normalized is None:
        raise UsageError(f"{uri!r} is not a usable URI (scheme:rest, printable, no spaces)")
    return normalized


def _ip_value(address: IPAddress | str) -> IPAddress:
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"{address!r} is not an IP address") from None


def _nonempty(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError("an identity must be a non-empty string")
    return value


@frozen
class DnsId:
    """A DNS-ID (subjectAltName dNSName), stored lower case, A-labels, no trailing dot.

    A presented DNS-ID may be a wildcard (``*.example.com``); :func:`matches` applies the
    RFC 9525 wildcard rules, and a wildcard DNS-ID is never used as a policy identity.
    """

    kind: ClassVar[str] = "dns"
    name: str = field(converter=_dns_value)

    @property
    def key(self) -> str:
        """``dns:<name>``."""
        return f"dns:{self.name}"


@frozen
class UriId:
    """A URI-ID (subjectAltName uniformResourceIdentifier); scheme and host lower case."""

    kind: ClassVar[str] = "uri"
    uri: str = field(converter=_uri_value)

    @property
    def key(self) -> str:
        """``uri:<uri>``."""
        return f"uri:{self.uri}"


@frozen
class IpId:
    """An IP-ID (subjectAltName iPAddress)."""

    kind: ClassVar[str] = "ip"
    address: IPAddress = field(converter=_ip_value)

    @property
    def key(self) -> str:
        """``ip:<address>`` (the compressed text form)."""
        return f"ip:{self.address}"


@frozen
class CnId:
    """The subject CN, produced only in the explicit legacy mode without SAN identifiers (R57)."""

    kind: ClassVar[str] = "cn"
    name: str = field(converter=_nonempty)

    @property
    def key(self) -> str:
        """``cn:<name>``, lower case (X.520 compares a commonName ignoring case); a CN that is
        a DNS name also loses its trailing dot."""
        return f"cn:{_ascii_dns(self.name) or self.name.lower()}"


@frozen
class PskIdentity:
    """The identity of a PSK the peer proved (TLS-level or in-channel), compared exactly (R45)."""

    kind: ClassVar[str] = "psk"
    identity: str = field(converter=_nonempty)

    @property
    def key(self) -> str:
        """``psk:<identity>``, byte for byte."""
        return f"psk:{self.identity}"


@frozen
class ScramUsername:
    """The username a SCRAM exchange authenticated, compared exactly."""

    kind: ClassVar[str] = "scram"
    username: str = field(converter=_nonempty)

    @property
    def key(self) -> str:
        """``scram:<username>``."""
        return f"scram:{self.username}"


#: Any typed identity.
Identity = UriId | DnsId | IpId | CnId | PskIdentity | ScramUsername
#: What a reference identity can be: a DNS name, an IP address or a URI.
ReferenceIdentity = DnsId | IpId | UriId


def _certificate_identities(peer: AuthenticatedPeer) -> CertificateIdentities | None:
    tls = peer.tls
    if str(peer.method) != Method.CERTIFICATE or tls is None:
        return None
    if tls.authentication != "certificate":
        return None
    return tls.identities


def identities_of_peer(peer: AuthenticatedPeer, *, legacy_cn: bool = False) -> tuple[Identity, ...]:
    """The typed identities an authenticated peer proved (R56), in SAN order: URI, DNS, IP.

    * ``certificate``: the SAN identifiers of the certificate the post-handshake check
      validated (``peer.tls.identities``); DNS-IDs that are not LDH names are left out.  The CN
      only with ``legacy_cn=True`` and only when the certificate has no SAN identifier at all
      -- not even an unusable one (R57).
    * ``psk`` and ``psk-in-channel``: the PSK identity.
    * ``password``: the SCRAM username.
    * any other method (a plugin's): nothing -- the policy layer denies such peers.
    """
    method = str(peer.method)
    if method == Method.CERTIFICATE:
        ids = _certificate_identities(peer)
        if ids is None:
            return ()
        out: list[Identity] = []
        for uri in ids.uris:
            if _normalize_uri(uri) is not None:
                out.append(UriId(uri))
        for name in ids.dns_names:
            if name.isascii() and _presented_dns_ok(_dns_value(name)):
                out.append(DnsId(name))
        out.extend(IpId(a) for a in ids.ip_addresses)
        if legacy_cn and not ids.has_san_identifiers and ids.common_name:
            out.append(CnId(ids.common_name))
        return tuple(out)
    if not peer.identity:
        return ()
    if method in (Method.PSK, Method.PSK_IN_CHANNEL):
        return (PskIdentity(peer.identity),)
    if method == Method.PASSWORD:
        return (ScramUsername(peer.identity),)
    return ()


def _presented_dns_ok(name: str) -> bool:
    if name.startswith("*."):
        name = name[2:]
    return bool(_LDH_NAME.match(name)) and not _numeric_tld(name)


def policy_keys(peer: AuthenticatedPeer, *, legacy_cn: bool = False) -> tuple[str, ...]:
    """The :attr:`~DnsId.key` of each identity the policy may key on, fast path.

    The same identities as :func:`identities_of_peer`, minus wildcard DNS-IDs (a wildcard
    names a set of hosts, not a peer), as ``kind:value`` strings.
    """
    method = peer.method
    if method == _CERTIFICATE:
        tls = peer.tls
        if tls is None or tls.authentication != "certificate" or tls.identities is None:
            return ()
        ids = tls.identities
        if not ids.dns_names and not ids.ip_addresses and len(ids.uris) == 1:  # the usual case
            normalized = _normalize_uri(ids.uris[0])
            return ("uri:" + normalized,) if normalized is not None else ()
        keys: list[str] = []
        for uri in ids.uris:
            normalized = _normalize_uri(uri)
            if normalized is not None:
                keys.append("uri:" + normalized)
        for name in ids.dns_names:
            dns = _ascii_dns(name)
            if dns is not None:
                keys.append("dns:" + dns)
        for address in ids.ip_addresses:
            keys.append(f"ip:{address}")
        if legacy_cn and not ids.has_san_identifiers and ids.common_name:
            keys.append(CnId(ids.common_name).key)
        return tuple(keys)
    identity = peer.identity
    if not identity:
        return ()
    if method in (_PSK, _PSK_IN_CHANNEL):
        return ("psk:" + identity,)
    if method == _PASSWORD:
        return ("scram:" + identity,)
    return ()


def _split_identity(text: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise UsageError("an identity is a string 'kind:value'")
    kind, sep, value = text.partition(":")
    if not sep or kind not in IDENTITY_KINDS:
        raise UsageError(
            f"{text!r} does not start with an identity kind ({', '.join(IDENTITY_KINDS)}) "
            "and a colon, e.g. 'dns:rof-1.example.com'"
        )
    if not value:
        raise UsageError(f"{text!r} has an empty value")
    if kind == "psk":
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise UsageError("a PSK identity must be valid Unicode text") from None
        if size > MAX_PSK_IDENTITY_BYTES:
            raise UsageError(f"a PSK identity is at most {MAX_PSK_IDENTITY_BYTES} bytes (R45)")
    elif len(value) > MAX_IDENTITY_CHARS:
        raise UsageError(f"{kind} identity longer than {MAX_IDENTITY_CHARS} characters")
    return kind, value


def parse_identity(text: str) -> Identity:
    """An identity from its key form ``kind:value``, validated and normalized.

    DNS names must be LDH names (U-labels are converted to A-labels) without wildcards; IP
    addresses must parse; URIs must have a scheme; PSK identities are at most 65535 UTF-8
    bytes; all values are non-empty.

    :raises UsageError: unknown kind or invalid value.
    """
    kind, value = _split_identity(text)
    if kind == "dns":
        return DnsId(_dns_reference(value))
    if kind == "ip":
        return IpId(value)
    if kind == "uri":
        return UriId(value)
    if kind == "psk":
        return PskIdentity(value)
    if kind == "scram":
        return ScramUsername(value)
    return CnId(value)


def identity_key(text: str) -> str:
    """The normalized key form of ``kind:value`` (what :func:`parse_identity` gives ``.key``
    for), without building the object.

    :raises UsageError: unknown kind or invalid value.
    """
    kind, value = _split_identity(text)
    if kind in ("psk", "scram"):
        return text
    if kind == "uri":
        normalized = _normalize_uri(value)
        if normalized is None:
            raise UsageError(f"{value!r} is not a usable URI (scheme:rest, printable, no spaces)")
        key = "uri:" + normalized
    else:
        key = parse_identity(text).key
    # A key must be accepted back as written (a revocation saved and restored): A-labels and
    # case mapping can lengthen a value, so the limit holds for the normalized form too.
    if len(key) - len(kind) - 1 > MAX_IDENTITY_CHARS:
        raise UsageError(
            f"{kind} identity longer than {MAX_IDENTITY_CHARS} characters once normalized"
        )
    return key


# -- RFC 9525 matching -----------------------------------------------------------------------


def reference_identity(text: str) -> ReferenceIdentity:
    """Parse a reference identity: an IP address, a URI (``scheme:...``) or a DNS name.

    A DNS reference never contains a wildcard; a U-label reference becomes A-labels.  Results
    are memoised (a pure function of the text; a client checks the same reference on every
    connection).

    :raises UsageError: the text is none of the three.
    """
    if not isinstance(text, str) or not text:
        raise UsageError("a reference identity is a non-empty string")
    return _reference_identity(text)


@functools.lru_cache(maxsize=1024)
def _reference_identity(text: str) -> ReferenceIdentity:
    try:
        return IpId(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _SCHEME_PREFIX.match(text):
        return UriId(text)
    return DnsId(_dns_reference(text))


def _dns_match(presented: str, reference: str) -> bool:
    if presented == reference:  # the reference is a validated LDH name
        return True
    if not presented.startswith("*."):
        return False
    suffix = presented[2:]
    if "." not in suffix or not _LDH_NAME.match(suffix):  # "*.com", "*.*.example", "*.-x"
        return False
    head, dot, rest = reference.partition(".")
    return bool(head and dot) and rest == suffix


def matches(presented: Identity, reference: str | ReferenceIdentity) -> bool:
    """Whether one presented identity matches a reference identity (RFC 9525, see above).

    :raises UsageError: ``reference`` is a string that is not a valid reference identity, or
        a :class:`DnsId` holding a wildcard.
    """
    ref = reference_identity(reference) if isinstance(reference, str) else reference
    if isinstance(ref, IpId):
        return isinstance(presented, IpId) and presented.address == ref.address
    if isinstance(ref, UriId):
        return isinstance(presented, UriId) and presented.uri == ref.uri
    if "*" in ref.name:
        raise UsageError("a reference identity never contains a wildcard")
    if isinstance(presented, DnsId):
        return _dns_match(presented.name, ref.name)
    if isinstance(presented, CnId):
        cn = _ascii_dns(presented.name)
        return cn is not None and cn == ref.name
    return False


def matches_any(presented: Iterable[Identity], reference: str | ReferenceIdentity) -> bool:
    """Whether any of the presented identities matches the reference identity."""
    ref = reference_identity(reference) if isinstance(reference, str) else reference
    return any(matches(p, ref) for p in presented)


def matches_reference(
    identities: CertificateIdentities, reference: str, *, legacy_cn: bool = False
) -> bool:
    """Whether a certificate's identities match a reference identity (RFC 9525 rules).

    The CN is consulted only with ``legacy_cn=True`` and only when the certificate has no SAN
    identifier (R57).  An unusable reference (e.g. one holding a wildcard) matches nothing.
    """
    try:
        ref = reference_identity(reference)
    except UsageError:
        return False
    presented: list[Identity] = []
    for uri in identities.uris:
        if _normalize_uri(uri) is not None:
            presented.append(UriId(uri))
    presented.extend(DnsId(n) for n in identities.dns_names if n.isascii())
    presented.extend(IpId(a) for a in identities.ip_addresses)
    if legacy_cn and not identities.has_san_identifiers and identities.common_name:
        presented.append(CnId(identities.common_name))
    return any(matches(p, ref) for p in presented)
