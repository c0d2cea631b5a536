"""Subject and issuer names read straight from the certificate's DER.

cryptography decodes a ``Name`` lazily into Python objects, and every ``cert.subject`` access
builds them again: on the hot path of a TLS handshake check that was the largest single cost of
a lint.  capif8sec needs little of it -- the raw bytes (for issuer/subject linkage), the RDN
structure with each value's ASN.1 string type (for the TS 33.310 name-form rule), the CN (for
the legacy identity) and an RFC 4514 rendering (for reports) -- so it reads that here, once per
certificate object, strictly: a value that is not valid for its string type is a
:class:`~capif8sec._der.DerError`, which the loaders turn into a typed parse error.

:meth:`RawName.rfc4514` renders exactly what cryptography's ``Name.rfc4514_string()`` does for
the attribute types and string types used in certificates.
"""

from __future__ import annotations

import binascii
import re
import threading
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from capif8sec._der import DerError, element_bounds

__all__ = [
    "CertLayout",
    "CertNames",
    "RawAttribute",
    "RawName",
    "cert_layout",
    "cert_names",
    "crl_issuer",
    "parse_name",
]

UTF8STRING, PRINTABLESTRING, IA5STRING, BITSTRING = 0x0C, 0x13, 0x16, 0x03
_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)

#: RFC 4514 short names (cryptography's ``_NAMEOID_TO_NAME``).
_LABELS = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
COMMON_NAME, COUNTRY, ORGANIZATION, ORG_UNIT = "2.5.4.3", "2.5.4.6", "2.5.4.10", "2.5.4.11"
DOMAIN_COMPONENT = "0.9.2342.19200300.100.1.25"
X500_UNIQUE_IDENTIFIER = "2.5.4.45"


class RawAttribute(NamedTuple):
    """One AttributeTypeAndValue: dotted OID, the value's ASN.1 tag, the decoded value."""

    oid: str
    tag: int
    value: str | bytes


class RawName:
    """A Name: its exact DER and its RDNs, most significant first (as encoded)."""

    __slots__ = ("_text", "der", "rdns")

    def __init__(self, der: bytes, rdns: tuple[tuple[RawAttribute, ...], ...]) -> None:
        self.der = der
        self.rdns = rdns
        self._text: str | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawName) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"<RawName {self.rfc4514()!r}>"

    def values(self, oid: str) -> list[str | bytes]:
        """Every value of the attribute ``oid``, in encoding order."""
        return [a.value for rdn in self.rdns for a in rdn if a.oid == oid]

    def rfc4514(self) -> str:
        """RFC 4514 string, least significant RDN first (as cryptography renders it)."""
        if self._text is None:
            self._text = self._render()
        return self._text

    def _render(self) -> str:
        return ",".join(
            "+".join(f"{_LABELS.get(a.oid, a.oid)}={_escape(a.value)}" for a in rdn)
            for rdn in reversed(self.rdns)
        )


_SPECIAL = re.compile(r'[\\"+,;<>\x00]')  # what the replacements below escape


def _escape(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return "#" + binascii.hexlify(value).decode("ascii")
    if not value:
        return ""
    if value[0] not in "# " and value[-1] != " " and _SPECIAL.search(value) is None:
        return value  # nothing to escape (the usual case)
    for char, escaped in (
        ("\\", "\\\\"),
        ('"', '\\"'),
        ("+", "\\+"),
        (",", "\\,"),
        (";", "\\;"),
        ("<", "\\<"),
        (">", "\\>"),
        ("\0", "\\00"),
    ):
        value = value.replace(char, escaped)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


_OID_CACHE: dict[bytes, str] = {}


def _oid(body: bytes) -> str:
    cached = _OID_CACHE.get(body)
    if cached is not None:
        return cached
    if not body or body[-1] & 0x80:
        raise DerError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for i, byte in enumerate(body):
        if value == 0 and byte == 0x80 and (i == 0 or not body[i - 1] & 0x80):
            raise DerError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    dotted = ".".join(map(str, (first, arcs[0] - 40 * first, *arcs[1:])))
    if len(_OID_CACHE) < 1024:
        _OID_CACHE[body] = dotted
    return dotted


def _value(tag: int, body: bytes) -> str | bytes:
    try:
        if tag == UTF8STRING:
            return body.decode("utf-8")
        if tag == PRINTABLESTRING:
            if not _PRINTABLE.issuperset(body):
                raise DerError("PrintableString with characters outside its set")
            return body.decode("ascii")
        if tag in (IA5STRING, 0x1A, 0x12):  # IA5String, VisibleString, NumericString
            return body.decode("ascii")
        if tag == 0x14:  # T61String, read as Latin-1 (as cryptography does)
            return body.decode("latin-1")
        if tag == 0x1E:  # BMPString
            return body.decode("utf-16-be")
        if tag == 0x1C:  # UniversalString
            return body.decode("utf-32-be")
    except UnicodeDecodeError:
        raise DerError("a name value is not valid for its string type") from None
    if tag == BITSTRING:
        if not body:
            raise DerError("empty BIT STRING name value")
        return body[1:]
    raise DerError(f"unsupported name value type 0x{tag:02x}")


def parse_name(der: bytes, start: int = 0, end: int | None = None) -> RawName:
    """Parse the Name whose full encoding is ``der[start:end]`` (default: all of ``der``)."""
    tag, pos, stop = element_bounds(der, start, len(der) if end is None else end)
    if tag != 0x30:
        raise DerError("a Name is not a SEQUENCE")
    raw = der[start:stop]
    known = _NAMES.get(raw)  # issuers repeat in every certificate they issue
    if known is not None:
        return known
    rdns = []
    texts = []
    while pos < stop:
        set_tag, set_pos, set_end = element_bounds(der, pos, stop)
        if set_tag != 0x31 or set_pos == set_end:
            raise DerError("an RDN is not a non-empty SET")
        raw_rdn = der[pos:set_end]
        known_rdn = _RDNS.get(raw_rdn)  # C=, O= repeat in every certificate of one PKI
        if known_rdn is None:
            known_rdn = _parse_rdn(der, set_pos, set_end)
            if len(_RDNS) >= _NAMES_MAX:
                _RDNS.clear()
            _RDNS[raw_rdn] = known_rdn
        rdns.append(known_rdn[0])
        texts.append(known_rdn[1])
        pos = set_end
    name = RawName(raw, tuple(rdns))
    texts.reverse()
    name._text = ",".join(texts)  # what _render() gives
    with _lock:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[raw] = name
    return name


def _parse_rdn(der: bytes, set_pos: int, set_end: int) -> tuple[tuple[RawAttribute, ...], str]:
    """The attributes of the RDN whose SET content is ``der[set_pos:set_end]``, and its
    RFC 4514 rendering."""
    attrs = []
    while set_pos < set_end:
        seq_tag, a_pos, a_end = element_bounds(der, set_pos, set_end)
        if seq_tag != 0x30:
            raise DerError("an AttributeTypeAndValue is not a SEQUENCE")
        oid_tag, o_pos, o_end = element_bounds(der, a_pos, a_end)
        if oid_tag != 0x06:
            raise DerError("an attribute type is not an OBJECT IDENTIFIER")
        v_tag, v_pos, v_end = element_bounds(der, o_end, a_end)
        if v_end != a_end:
            raise DerError("trailing data in an AttributeTypeAndValue")
        oid = _oid(der[o_pos:o_end])
        if (v_tag == BITSTRING) != (oid == X500_UNIQUE_IDENTIFIER):
            raise DerError("only x500UniqueIdentifier is a BIT STRING")  # as cryptography
        attrs.append(RawAttribute(oid, v_tag, _value(v_tag, der[v_pos:v_end])))
        set_pos = a_end
    text = "+".join(f"{_LABELS.get(a.oid, a.oid)}={_escape(a.value)}" for a in attrs)
    return tuple(attrs), text


#: Parsed RDNs (attributes, RFC 4514 text) by the exact DER of their SET (bounded).
_RDNS: dict[bytes, tuple[tuple[RawAttribute, ...], str]] = {}
#: Parsed names by their exact DER (a pure function of the bytes; bounded).
_NAMES: dict[bytes, RawName] = {}
_NAMES_MAX = 4096


class CertNames(NamedTuple):
    """A certificate's subject and issuer."""

    subject: RawName
    issuer: RawName


def _fields(der: bytes, pos: int, end: int, count: int) -> list[tuple[int, int, int]]:
    """(start, tag, end) of up to ``count`` consecutive elements from ``pos``."""
    out: list[tuple[int, int, int]] = []
    while pos < end and len(out) < count:
        tag, _, stop = element_bounds(der, pos, end)
        out.append((pos, tag, stop))
        pos = stop
    return out


class CertLayout(NamedTuple):
    """Where a certificate's parts are in its DER (start, end offsets of whole elements)."""

    #: the outer signatureAlgorithm AlgorithmIdentifier
    signature_algorithm: tuple[int, int]
    #: whether the outer signature BIT STRING has 0 unused bits (see capif8sec.certs.parse)
    signature_aligned: bool
    #: the SubjectPublicKeyInfo
    spki: tuple[int, int]
    #: the TBSCertificate fields after the SubjectPublicKeyInfo (unique ids, extensions)
    after_spki: tuple[int, int]


def _layout(cert_der: bytes) -> tuple[CertNames, CertLayout]:
    """Subject, issuer and the layout of a certificate's DER, in one walk."""
    _, pos, end = element_bounds(cert_der)
    _, tbs_pos, tbs_end = element_bounds(cert_der, pos, end)  # TBSCertificate
    try:
        outer = _fields(cert_der, pos, end, 4)
    except DerError:  # signature fields: judged by signature_aligned, not a names error
        outer = []
    fields = _fields(cert_der, tbs_pos, tbs_end, 6)
    if fields and fields[0][1] == 0xA0:  # explicit version
        fields = fields[1:]
    if len(fields) < 5:
        raise DerError("truncated TBSCertificate")
    (i_start, _, i_end), (s_start, _, s_end) = fields[2], fields[4]
    names = CertNames(parse_name(cert_der, s_start, s_end), parse_name(cert_der, i_start, i_end))
    aligned = len(outer) == 3 and outer[2][2] == end and _aligned(cert_der, outer[2])
    signature_algorithm = (outer[1][0], outer[1][2]) if len(outer) > 1 else (end, end)
    try:  # the SubjectPublicKeyInfo, after the subject (not a names error either)
        spki_end = element_bounds(cert_der, s_end, tbs_end)[2]
    except DerError:  # the raw reader then declines and pyca decides
        return names, CertLayout(signature_algorithm, aligned, (end, end), (end, end))
    return names, CertLayout(signature_algorithm, aligned, (s_end, spki_end), (spki_end, tbs_end))


def _aligned(der: bytes, part: tuple[int, int, int]) -> bool:
    start, tag, stop = part
    _, content, _ = element_bounds(der, start, stop)
    return tag == 0x03 and content < stop and der[content] == 0


def names_from_der(cert_der: bytes) -> CertNames:
    """Subject and issuer from a certificate's DER (Certificate -> TBSCertificate fields)."""
    return _layout(cert_der)[0]


_lock = threading.Lock()
_cache: dict[int, tuple[x509.Certificate, CertNames, CertLayout | None]] = {}
_CACHE_MAX = 256


def cert_names(cert: x509.Certificate, der: bytes | None = None) -> CertNames:
    """The subject and issuer of ``cert``, parsed once per certificate object.

    ``der`` is the encoding ``cert`` was parsed from, when the caller has it (saves a
    re-encoding).  Raises :class:`~capif8sec._der.DerError` for malformed names.
    """
    hit = _cache.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    names, layout = _layout(der if der is not None else cert.public_bytes(Encoding.DER))
    with _lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[id(cert)] = (cert, names, layout if der is not None else None)
    return names


def cert_layout(cert: x509.Certificate, der: bytes) -> CertLayout:
    """The layout of ``der``, the exact encoding ``cert`` was parsed from (remembered with its
    names when :func:`cert_names` read them from ``der``)."""
    hit = _cache.get(id(cert))
    if hit is not None and hit[0] is cert and hit[2] is not None:
        return hit[2]
    return _layout(der)[1]


def crl_issuer(crl: x509.CertificateRevocationList) -> RawName:
    """The issuer Name of a CRL (TBSCertList: [version], signature, issuer, ...)."""
    der = crl.public_bytes(Encoding.DER)
    _, pos, end = element_bounds(der)
    _, pos, end = element_bounds(der, pos, end)  # TBSCertList
    fields = _fields(der, pos, end, 3)
    if fields and fields[0][1] == 0x02:  # version
        fields = fields[1:]
    if len(fields) < 2:
        raise DerError("truncated TBSCertList")
    start, _, stop = fields[1]
    return parse_name(der, start, stop)
