"""The PSK file of ``capif8sec serve --psk-file FILE``.

One PSK per line, ``IDENTITY HEXKEY``, fields separated by spaces or tabs::

    # ROF identity      key (hex, at least 16 bytes; 32 recommended)
    rof-1.example.com   6f9c1d...          # a trailing comment is fine

* The identity is the UTF-8 bytes of the first field, exactly (R45): no case folding, no
  normalization.  It may hold any character but space and tab, and must not start with ``#``.
* Keys shorter than 16 bytes are refused (R42).
* An identity given twice, or one key given twice (R44), is refused.
* Blank lines and lines starting with ``#`` are ignored; the file is UTF-8 (a BOM is allowed).

Every refusal is a :class:`PskFileError` naming the line number, never the key.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from capif8sec.auth.credentials import MIN_PSK_BYTES, PskCredential
from capif8sec.auth.stores import _Fingerprint, parse_hex
from capif8sec.errors import UsageError

__all__ = ["PskFileError", "load_psk_file"]

_FIELD_SEP = re.compile(r"[ \t]+")


class PskFileError(UsageError):
    """A PSK file cannot be used; ``line`` is the 1-based line at fault (None: the whole file)."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


def load_psk_file(
    source: str | bytes | os.PathLike[str], *, ccf_identity: str
) -> list[PskCredential]:
    """Parse a PSK file into credentials bound to ``ccf_identity``.

    ``source`` is a path (any :class:`os.PathLike`, e.g. :class:`pathlib.Path`) or the file's
    content (``str`` or ``bytes``).  A plain ``str`` is always content, never a path.
    """
    if not isinstance(ccf_identity, str) or not ccf_identity:
        raise UsageError("ccf_identity must be a non-empty string")
    if isinstance(source, os.PathLike):
        try:
            data: str | bytes = Path(source).read_bytes()
        except OSError as exc:
            raise PskFileError(f"cannot read PSK file {source}: {exc.strerror}") from None
    else:
        data = source
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_line: int | None = data.count(b"\n", 0, exc.start) + 1
        else:
            bad_line = None
        if bad_line is not None:
            # Raised outside the except block: the UnicodeDecodeError holds the whole file (every
            # key), and even "from None" keeps it as the new error's __context__.
            raise PskFileError("not valid UTF-8", line=bad_line)
    elif isinstance(data, str):
        text = data
    else:
        raise UsageError("load_psk_file takes a path, str or bytes")
    return _parse(text.removeprefix("\ufeff"), ccf_identity)


def _parse(text: str, ccf_identity: str) -> list[PskCredential]:
    fingerprint = _Fingerprint(secrets.token_bytes(32))
    identities: dict[bytes, int] = {}
    keys: dict[bytes, int] = {}
    creds: list[PskCredential] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue
        fields = _FIELD_SEP.split(line)
        if len(fields) < 2 or (len(fields) > 2 and not fields[2].startswith("#")):
            raise PskFileError(
                "expected 'IDENTITY HEXKEY' (and an optional # comment)", line=number
            )
        name, hexkey = fields[0], fields[1]
        try:
            identity = name.encode("utf-8")
        except UnicodeEncodeError:
            raise PskFileError("the identity is not valid Unicode text", line=number) from None
        if len(identity) > 65535:
            raise PskFileError("the identity is longer than 65535 bytes (R45)", line=number)
        key = parse_hex(hexkey)
        if key is None:
            raise PskFileError("the key is not an even number of hex digits", line=number)
        if len(key) < MIN_PSK_BYTES:
            raise PskFileError(
                f"the key is shorter than {MIN_PSK_BYTES} bytes ({8 * MIN_PSK_BYTES} bits, R42)",
                line=number,
            )
        if identity in identities:
            raise PskFileError(
                f"the identity was already given on line {identities[identity]}", line=number
            )
        fp = fingerprint(key)
        if fp in keys:
            raise PskFileError(
                f"the key was already given on line {keys[fp]}; one PSK is bound to one "
                "(ROF, CCF) pair (R44)",
                line=number,
            )
        identities[identity] = keys[fp] = number
        creds.append(PskCredential(identity, key, ccf_identity))
    return creds
