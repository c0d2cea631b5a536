"""The facts the lint rules need from a certificate's extensions and key, read from its DER.

pyca/cryptography turns every extension and the public key into Python objects; for a lint that
is most of the cost, and the rules need only a few values of a few extensions.  This module
reads those values straight from the DER the certificate was parsed from -- but only for the
common, canonical case, and never as a second authority:

* it is **strict and narrow**: a short whitelist of extensions (keyUsage, basicConstraints,
  extendedKeyUsage, subjectAltName with DNS/URI/IP names, cRLDistributionPoints with URI full
  names, subjectKeyIdentifier, authorityKeyIdentifier with a key identifier only) and named-curve
  P-256/P-384 keys, each in its one DER form (minimal lengths and integers, no encoded
  defaults, BIT STRINGs without trailing zero bits, printable ASCII names, a non-empty
  sequence wherever RFC 5280 says SIZE (1..MAX));
* anything else -- an extension outside the whitelist, a duplicate, any non-canonical or merely
  unusual encoding, an RSA key -- raises :class:`~capif8sec._der.DerError` inside, the reader
  declines (returns None for the key or the extensions), and the caller falls back to
  pyca/cryptography, which then decides alone (and its verdict, including an undecodable
  extension or an unusable key, is what the lint reports);
* what it accepts it must decode exactly as pyca does: ``tests/certs/test_rawfacts.py`` checks
  on generated certificates, and on mutated DER, that whenever this reader returns facts,
  pyca decodes the same certificate without error to equal facts.

So the raw reader can make a lint faster but cannot change its outcome.  EC points are checked
to lie on the curve (with coordinates below the field prime), as OpenSSL does when pyca loads
the key; P-256 and P-384 have cofactor 1, so that is also the subgroup check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from capif8sec._der import DerError

__all__ = [
    "BasicConstraintsFacts",
    "ExtensionFacts",
    "KeyUsageFacts",
    "SanFacts",
    "raw_cert_facts",
    "raw_facts_at",
]

# Dotted OIDs of the extensions the reader knows, by the content octets of their OID.
KEY_USAGE = "2.5.29.15"
BASIC_CONSTRAINTS = "2.5.29.19"
EXTENDED_KEY_USAGE = "2.5.29.37"
SUBJECT_ALTERNATIVE_NAME = "2.5.29.17"
CRL_DISTRIBUTION_POINTS = "2.5.29.31"
SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"
_KNOWN: dict[bytes, str] = {
    b"\x55\x1d\x0f": KEY_USAGE,
    b"\x55\x1d\x13": BASIC_CONSTRAINTS,
    b"\x55\x1d\x25": EXTENDED_KEY_USAGE,
    b"\x55\x1d\x11": SUBJECT_ALTERNATIVE_NAME,
    b"\x55\x1d\x1f": CRL_DISTRIBUTION_POINTS,
    b"\x55\x1d\x0e": SUBJECT_KEY_IDENTIFIER,
    b"\x55\x1d\x23": AUTHORITY_KEY_IDENTIFIER,
}


class KeyUsageFacts(NamedTuple):
    """The nine keyUsage bits, named as cryptography names them."""

    digital_signature: bool
    content_commitment: bool
    key_encipherment: bool
    data_encipherment: bool
    key_agreement: bool
    key_cert_sign: bool
    crl_sign: bool
    encipher_only: bool
    decipher_only: bool


class BasicConstraintsFacts(NamedTuple):
    """cA and pathLenConstraint."""

    ca: bool
    path_length: int | None


class SanFacts(NamedTuple):
    """subjectAltName: DNS-IDs, URI-IDs, IP addresses (packed), and how many other names."""

    dns: tuple[str, ...]
    uris: tuple[str, ...]
    ips: tuple[bytes, ...]
    other: int


class ExtensionFacts:
    """What the rules read from the extensions, whichever decoder produced it.

    ``critical`` maps each extension's dotted OID to its critical flag, in encoding order.
    The other attributes are None when their extension is absent.
    """

    __slots__ = (
        "aki_key_id",
        "basic_constraints",
        "critical",
        "crl_uris",
        "eku",
        "key_usage",
        "san",
    )

    def __init__(
        self,
        critical: dict[str, bool],
        key_usage: KeyUsageFacts | None = None,
        basic_constraints: BasicConstraintsFacts | None = None,
        eku: tuple[str, ...] | None = None,
        san: SanFacts | None = None,
        crl_uris: tuple[str, ...] | None = None,
        aki_key_id: bytes | None = None,
    ) -> None:
        self.critical = critical
        self.key_usage = key_usage
        self.basic_constraints = basic_constraints
        self.eku = eku
        self.san = san
        #: every URI full name of the cRLDistributionPoints, in order (None: no such extension)
        self.crl_uris = crl_uris
        #: the authorityKeyIdentifier's keyIdentifier (None: absent, or no keyIdentifier)
        self.aki_key_id = aki_key_id

    def _tuple(self) -> tuple[object, ...]:
        return (
            list(self.critical.items()),
            self.key_usage,
            self.basic_constraints,
            self.eku,
            self.san,
            self.crl_uris,
            self.aki_key_id,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtensionFacts) and self._tuple() == other._tuple()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ExtensionFacts{self._tuple()!r}"


# --------------------------------------------------------------------------- strict TLV


def _tlv(d: bytes, p: int, end: int) -> tuple[int, int, int]:
    """Tag, content start and end of the element at ``p``; DER lengths only, minimal."""
    if p + 2 > end:
        raise DerError("truncated element")
    tag = d[p]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tag")
    n = d[p + 1]
    if n < 0x80:
        s = p + 2
    elif n == 0x81:
        if p + 3 > end:
            raise DerError("truncated length")
        n = d[p + 2]
        if n < 0x80:
            raise DerError("non-minimal length")
        s = p + 3
    elif n == 0x82:
        if p + 4 > end:
            raise DerError("truncated length")
        n = (d[p + 2] << 8) | d[p + 3]
        if n < 0x100:
            raise DerError("non-minimal length")
        s = p + 4
    else:
        raise DerError("unsupported length form")
    e = s + n
    if e > end:
        raise DerError("element runs past its container")
    return tag, s, e


def _expect(d: bytes, p: int, end: int, tag: int) -> tuple[int, int]:
    t, s, e = _tlv(d, p, end)
    if t != tag:
        raise DerError(f"expected tag 0x{tag:02x}, found 0x{t:02x}")
    return s, e


_OIDS: dict[bytes, str] = {}


def _oid(body: bytes) -> str:
    """Dotted form of an OID's content octets: minimal arcs of at most 56 bits, 1..32 octets."""
    dotted = _OIDS.get(body)
    if dotted is not None:
        return dotted
    if not 0 < len(body) <= 32 or body[-1] & 0x80:
        raise DerError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    width = 0
    for byte in body:
        if width == 0 and byte == 0x80:
            raise DerError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (byte & 0x7F)
        width += 1
        if width > 8:
            raise DerError("OBJECT IDENTIFIER arc too large")
        if not byte & 0x80:
            arcs.append(value)
            value = width = 0
    first = min(arcs[0] // 40, 2)
    dotted = ".".join(map(str, (first, arcs[0] - 40 * first, *arcs[1:])))
    if len(_OIDS) < 512:
        _OIDS[body] = dotted
    return dotted


def _small_uint(d: bytes, s: int, e: int) -> int:
    """A non-negative INTEGER below 2**31, minimally encoded."""
    if not 0 < e - s <= 4:
        raise DerError("INTEGER length out of range")
    if d[s] & 0x80:
        raise DerError("negative INTEGER")
    if e - s > 1 and d[s] == 0 and not d[s + 1] & 0x80:
        raise DerError("non-minimal INTEGER")
    return int.from_bytes(d[s:e], "big")


def _ascii(d: bytes, s: int, e: int) -> str:
    """A non-empty IA5String value of printable ASCII, no spaces."""
    if s >= e:
        raise DerError("empty name")
    value = d[s:e]
    if not _PRINTABLE_ASCII.issuperset(value):
        raise DerError("name outside printable ASCII")
    return value.decode("ascii")


_PRINTABLE_ASCII = frozenset(range(0x21, 0x7F))

# --------------------------------------------------------------------------- extensions


def _key_usage(d: bytes, s: int, e: int) -> KeyUsageFacts:
    bs, be = _expect(d, s, e, 0x03)
    if be != e or not 2 <= be - bs <= 3:  # unused-bits octet, then one or two octets of bits
        raise DerError("keyUsage is not one BIT STRING of 1 to 9 bits")
    unused = d[bs]
    last = d[be - 1]
    if unused > 7 or last & ((1 << unused) - 1) or not last & (1 << unused):
        raise DerError("keyUsage BIT STRING is not in its minimal DER form")
    bits = int.from_bytes(d[bs + 1 : be], "big") << (8 * (3 - (be - bs)))  # as 16 bits
    if bits & 0x7F:  # bits 9 to 15: not keyUsage bits
        raise DerError("keyUsage bit beyond decipherOnly")
    flags = [bool(bits & (0x8000 >> i)) for i in range(9)]
    if flags[7] or flags[8]:  # encipherOnly / decipherOnly: left to cryptography
        raise DerError("keyUsage encipherOnly/decipherOnly")
    return KeyUsageFacts(*flags)


def _basic_constraints(d: bytes, s: int, e: int) -> BasicConstraintsFacts:
    ss, se = _expect(d, s, e, 0x30)
    if se != e:
        raise DerError("trailing data after basicConstraints")
    if ss == se:
        return BasicConstraintsFacts(False, None)
    bs, be = _expect(d, ss, se, 0x01)
    if be - bs != 1 or d[bs] != 0xFF:  # DER: cA FALSE is omitted, TRUE is 0xFF
        raise DerError("basicConstraints cA is not an encoded TRUE")
    if be == se:
        return BasicConstraintsFacts(True, None)
    is_, ie = _expect(d, be, se, 0x02)
    if ie != se:
        raise DerError("trailing data in basicConstraints")
    return BasicConstraintsFacts(True, _small_uint(d, is_, ie))


def _eku(d: bytes, s: int, e: int) -> tuple[str, ...]:
    ss, se = _expect(d, s, e, 0x30)
    if se != e or ss == se:
        raise DerError("extendedKeyUsage is not one non-empty SEQUENCE")
    out = []
    p = ss
    while p < se:
        os_, oe = _expect(d, p, se, 0x06)
        out.append(_oid(d[os_:oe]))
        p = oe
    return tuple(out)


def _san(d: bytes, s: int, e: int) -> SanFacts:
    ss, se = _expect(d, s, e, 0x30)
    if se != e or ss == se:
        raise DerError("subjectAltName is not one non-empty SEQUENCE")
    dns: list[str] = []
    uris: list[str] = []
    ips: list[bytes] = []
    p = ss
    while p < se:
        tag, vs, ve = _tlv(d, p, se)
        if tag == 0x82:
            dns.append(_ascii(d, vs, ve))
        elif tag == 0x86:
            uris.append(_ascii(d, vs, ve))
        elif tag == 0x87 and ve - vs in (4, 16):
            ips.append(d[vs:ve])
        else:
            raise DerError("subjectAltName name other than a DNS name, URI or IP address")
        p = ve
    return SanFacts(tuple(dns), tuple(uris), tuple(ips), 0)


def _crl_distribution_points(d: bytes, s: int, e: int) -> tuple[str, ...]:
    ss, se = _expect(d, s, e, 0x30)
    if se != e or ss == se:
        raise DerError("cRLDistributionPoints is not one non-empty SEQUENCE")
    uris: list[str] = []
    p = ss
    while p < se:
        # DistributionPoint ::= SEQUENCE { distributionPoint [0] { fullName [0] GeneralNames } }
        ps, pe = _expect(d, p, se, 0x30)
        ns, ne = _expect(d, ps, pe, 0xA0)
        fs, fe = _expect(d, ns, ne, 0xA0)
        if ne != pe or fe != ne or fs == fe:
            raise DerError("distribution point other than a non-empty fullName alone")
        q = fs
        while q < fe:
            us, ue = _expect(d, q, fe, 0x86)
            uris.append(_ascii(d, us, ue))
            q = ue
        p = pe
    return tuple(uris)


def _subject_key_identifier(d: bytes, s: int, e: int) -> None:
    os_, oe = _expect(d, s, e, 0x04)
    if oe != e or os_ == oe:
        raise DerError("subjectKeyIdentifier is not one non-empty OCTET STRING")


def _authority_key_identifier(d: bytes, s: int, e: int) -> bytes:
    ss, se = _expect(d, s, e, 0x30)
    ks, ke = _expect(d, ss, se, 0x80)
    if se != e or ke != se or ks == ke:
        raise DerError("authorityKeyIdentifier other than a keyIdentifier alone")
    return d[ks:ke]


# Which ExtensionFacts argument each extension fills (-1: none), and its decoder.
_SLOTS: dict[str, tuple[int, Callable[[bytes, int, int], object]]] = {
    KEY_USAGE: (0, _key_usage),
    BASIC_CONSTRAINTS: (1, _basic_constraints),
    EXTENDED_KEY_USAGE: (2, _eku),
    SUBJECT_ALTERNATIVE_NAME: (3, _san),
    CRL_DISTRIBUTION_POINTS: (4, _crl_distribution_points),
    AUTHORITY_KEY_IDENTIFIER: (5, _authority_key_identifier),
    SUBJECT_KEY_IDENTIFIER: (-1, _subject_key_identifier),
}
# Extensions whose encoding differs in every certificate: not worth remembering.
_UNIQUE = frozenset({SUBJECT_ALTERNATIVE_NAME, SUBJECT_KEY_IDENTIFIER})

Decoded = tuple[str, bool, int, object]
#: Decoded extensions by their exact encoding (Extension TLV): the keyUsage, EKU, CDP, AKI...
#: of one CA's certificates are the same bytes in every certificate it issues.  Bounded.
_DECODED: dict[bytes, Decoded] = {}
_DECODED_MAX = 1024


def _extension(d: bytes, xs: int, xe: int) -> Decoded:
    """One Extension's content: (dotted OID, critical, ExtensionFacts slot, decoded value)."""
    os_, oe = _expect(d, xs, xe, 0x06)
    oid = _KNOWN.get(d[os_:oe])
    if oid is None:
        raise DerError("extension outside the raw reader's whitelist")
    tag, vs, ve = _tlv(d, oe, xe)
    is_critical = False
    if tag == 0x01:
        if ve - vs != 1 or d[vs] != 0xFF:  # DER: FALSE (the default) is omitted
            raise DerError("critical flag is not an encoded TRUE")
        is_critical = True
        tag, vs, ve = _tlv(d, ve, xe)
    if tag != 0x04 or ve != xe:
        raise DerError("extnValue is not the last element, an OCTET STRING")
    slot, decode = _SLOTS[oid]
    return oid, is_critical, slot, decode(d, vs, ve)


def _extensions(d: bytes, s: int, e: int) -> ExtensionFacts:
    """The content of the TBSCertificate's [3] field: one non-empty SEQUENCE OF Extension."""
    ss, se = _expect(d, s, e, 0x30)
    if se != e or ss == se:
        raise DerError("extensions are not one non-empty SEQUENCE")
    critical: dict[str, bool] = {}
    values: list[object] = [None] * 6
    decoded = _DECODED
    p = ss
    while p < se:
        xs, xe = _expect(d, p, se, 0x30)
        raw = d[p:xe]
        hit = decoded.get(raw)
        if hit is None:
            hit = _extension(d, xs, xe)
            if hit[0] not in _UNIQUE:
                if len(decoded) >= _DECODED_MAX:
                    decoded.clear()
                decoded[raw] = hit
        oid, is_critical, slot, value = hit
        if oid in critical:
            raise DerError("duplicate extension")
        critical[oid] = is_critical
        if slot >= 0:
            values[slot] = value
        p = xe
    return ExtensionFacts(critical, *values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- public key

# (p, b) of the short Weierstrass curves y^2 = x^3 - 3x + b over GF(p) (SEC 2, FIPS 186-4)
_P256 = (
    2**256 - 2**224 + 2**192 + 2**96 - 1,
    0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
)
_P384 = (
    2**384 - 2**128 - 2**96 + 2**32 - 1,
    0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
)
# (AlgorithmIdentifier DER, BIT STRING header, (p, b), key facts: kind, bits, security, curve)
_EC_SPKIS = (
    (
        bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107"),
        b"\x03\x42\x00\x04",
        _P256,
        ("ec", 256, 128, "secp256r1"),
    ),
    (
        bytes.fromhex("301006072a8648ce3d020106052b81040022"),
        b"\x03\x62\x00\x04",
        _P384,
        ("ec", 384, 192, "secp384r1"),
    ),
)


def _ec_key(d: bytes, s: int, e: int) -> KeyTuple:
    """A named-curve P-256/P-384 SubjectPublicKeyInfo with an uncompressed point on the curve."""
    for algorithm, head, (prime, b), facts in _EC_SPKIS:
        if d.startswith(algorithm, s):
            p = s + len(algorithm)
            size = facts[1] // 8
            if e != p + len(head) + 2 * size or not d.startswith(head, p):
                raise DerError("EC public key is not an uncompressed point")
            p += len(head)
            x = int.from_bytes(d[p : p + size], "big")
            y = int.from_bytes(d[p + size : e], "big")
            if x >= prime or y >= prime or (y * y - (x * x * x - 3 * x + b)) % prime:
                raise DerError("EC point is not on the curve")
            return facts
    raise DerError("public key other than a named-curve P-256/P-384 key")


# --------------------------------------------------------------------------- certificate


KeyTuple = tuple[str, int, int, str]


def raw_cert_facts(der: bytes) -> tuple[KeyTuple | None, ExtensionFacts | None]:
    """(key facts, extension facts) of a DER certificate; None where the raw reader declines
    (it raised :class:`~capif8sec._der.DerError`) and pyca must decide.

    ``der`` must be the exact bytes pyca parsed the certificate from (its outer structure is
    then known to be well-formed; this walk checks what it relies on anyway).  The key facts
    are (kind, bits, security bits, curve) as :class:`~capif8sec.certs.facts.KeyFacts` has them.
    """
    end = len(der)
    try:
        cs, ce = _expect(der, 0, end, 0x30)
        ts, te = _expect(der, cs, ce, 0x30)
        p = ts
        tag, _, e = _tlv(der, p, te)
        if tag == 0xA0:  # version
            p = e
        for _ in range(5):  # serialNumber, signature, issuer, validity, subject
            p = _tlv(der, p, te)[2]
        ke = _tlv(der, p, te)[2]
    except DerError:
        return None, None
    return raw_facts_at(der, (p, ke), (ke, te))


def raw_facts_at(
    der: bytes, spki: tuple[int, int], after_spki: tuple[int, int]
) -> tuple[KeyTuple | None, ExtensionFacts | None]:
    """:func:`raw_cert_facts` with the SubjectPublicKeyInfo element at ``der[spki[0]:spki[1]]``
    and the TBSCertificate fields after it at ``der[after_spki[0]:after_spki[1]]`` (from a walk
    already made, see :func:`capif8sec.certs.names.cert_layout`)."""
    # Declines return None rather than the exception: an exception kept in a local of the
    # frame its traceback holds is a reference cycle, garbage for the cyclic collector.
    key: KeyTuple | None
    try:
        ks, ke = _expect(der, spki[0], spki[1], 0x30)
        key = _ec_key(der, ks, ke) if ke == spki[1] else None
    except DerError:
        key = None
    start, end = after_spki
    if start == end:
        return key, None  # no extensions field: v1/v2, or a v3 without extensions
    exts: ExtensionFacts | None
    try:
        tag, xs, xe = _tlv(der, start, end)
        exts = _extensions(der, xs, xe) if tag == 0xA3 and xe == end else None
    except DerError:
        exts = None
    return key, exts
