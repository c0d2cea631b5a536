"""A minimal DER TLV reader and writer.

Only what capif8sec needs and cryptography does not expose: reading the version field of a CRL,
and (in :mod:`capif8sec.testing`) re-encoding certificates that cryptography's builder refuses to
make (v1 certificates, SHA-1 signatures).  Definite lengths only; every read is bounds-checked and
raises :class:`DerError` on malformed input.
"""

from __future__ import annotations

from collections.abc import Iterator

from attrs import frozen

__all__ = [
    "DerError",
    "Tlv",
    "element_bounds",
    "encode",
    "encode_integer",
    "encode_oid",
    "iter_tlvs",
    "read_tlv",
]

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
NULL = 0x05
OID = 0x06
IA5STRING = 0x16


class DerError(ValueError):
    """Malformed DER."""


@frozen
class Tlv:
    """One decoded element: its tag byte, its content, and the exact encoded bytes."""

    tag: int
    content: bytes
    raw: bytes


def read_tlv(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the element at ``offset``; return it and the offset just past it."""
    tag, pos, end = element_bounds(data, offset)
    return Tlv(tag, data[pos:end], data[offset:end]), end


def element_bounds(data: bytes, offset: int = 0, limit: int | None = None) -> tuple[int, int, int]:
    """The tag, content start and end of the element at ``offset``, copying nothing.

    The element must end by ``limit`` (default: the end of ``data``), as if ``data`` were cut
    there; the checks are those of :func:`read_tlv`.
    """
    if limit is None:
        limit = len(data)
    if offset + 2 > limit:
        raise DerError("truncated DER header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:  # short form, the usual case: answered at once
        if pos + first > limit:
            raise DerError("DER length runs past the end of the input")
        return tag, pos, pos + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise DerError("unsupported DER length form")
    if pos + count > limit:
        raise DerError("truncated DER length")
    length = int.from_bytes(data[pos : pos + count], "big")
    pos += count
    end = pos + length
    if end > limit:
        raise DerError("DER length runs past the end of the input")
    return tag, pos, end


def iter_tlvs(content: bytes) -> Iterator[Tlv]:
    """Iterate over the consecutive elements inside a constructed element's content."""
    offset = 0
    while offset < len(content):
        tlv, offset = read_tlv(content, offset)
        yield tlv


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(tag: int, content: bytes) -> bytes:
    """Encode one element."""
    return bytes([tag]) + _length(len(content)) + content


def encode_integer(value: int) -> bytes:
    """Encode an INTEGER (two's complement, minimal)."""
    size = max(1, (value.bit_length() + 8) // 8)
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def encode_oid(dotted: str) -> bytes:
    """Encode an OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return encode(OID, bytes(out))
