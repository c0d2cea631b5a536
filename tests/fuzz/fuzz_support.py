"""Shared pieces of the parser fuzzing in ``tests/fuzz``: settings, mutations, the typed check.

The contract every property checks (issue 7): an input from the network or a file ends in a
valid result or in a :class:`~capif8sec.errors.Capif8secError`, never in another exception, and
within a bounded time per input (hypothesis ``deadline``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from capif8sec import _der
from capif8sec.errors import Capif8secError

_T = TypeVar("_T")

#: Multiplies every example count (``CAPIF8SEC_FUZZ_SCALE=20 pytest tests/fuzz`` for a long run).
SCALE = max(1, int(os.environ.get("CAPIF8SEC_FUZZ_SCALE", "1")))
#: Per-input time bound.  Generous on purpose: the machine is a noisy shared 2-core box and
#: hypothesis replays a slow example before failing; real parsers here take micro- to
#: milliseconds, a hang or a quadratic blow-up takes far longer.
DEADLINE = dt.timedelta(milliseconds=1000)

settings.register_profile(
    "capif8sec-parsers",
    max_examples=100 * SCALE,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PARSERS = settings.get_profile("capif8sec-parsers")


def examples(count: int) -> settings:
    """The ``capif8sec-parsers`` profile with ``count`` examples (times ``SCALE``)."""
    return settings(PARSERS, max_examples=count * SCALE)


def typed(call: Callable[[], _T]) -> _T | Capif8secError:
    """Run ``call``: its result, or the :class:`Capif8secError` it raised (checked to print).

    Any other exception propagates, and so fails the property.
    """
    try:
        return call()
    except Capif8secError as exc:
        error = exc
    str(error), repr(error)  # a typed error must also print
    return error


def weighted(*choices: tuple[int, st.SearchStrategy[_T]]) -> st.SearchStrategy[_T]:
    """Draw from one of ``choices`` with these integer weights (``st.one_of`` gives every
    branch the same chance, whatever is repeated): mostly-valid inputs get past the first
    check, so the checks behind it run too."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


# --------------------------------------------------------------------------- mutations

Op = tuple[str, int, int]

#: Byte-level edits: flip a bit, overwrite, insert, delete a byte, duplicate a slice, truncate.
OPS: st.SearchStrategy[list[Op]] = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "duplicate", "truncate"]),
        st.integers(0, 1 << 16),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, ops: Sequence[Op]) -> bytes:
    """``data`` after the edits in ``ops`` (positions wrap around the current length)."""
    buf = bytearray(data)
    for kind, where, value in ops:
        if not buf:
            buf.append(value)
            continue
        i = where % len(buf)
        if kind == "flip":
            buf[i] ^= 1 << (value % 8)
        elif kind == "set":
            buf[i] = value
        elif kind == "insert":
            buf.insert(i, value)
        elif kind == "delete":
            del buf[i]
        elif kind == "duplicate":
            buf[i:i] = buf[i : i + value % 32 + 1]
        else:
            del buf[i:]
    return bytes(buf)


def resign(der: bytes, ops: Sequence[Op], key: ec.EllipticCurvePrivateKey) -> bytes:
    """Mutate the TBS content of a certificate or CRL, then sign it again with ``key``: the
    signature check passes, so the profile rules, path building and CRL checks see the odd
    content."""
    outer, _ = _der.read_tlv(der)
    tbs, algorithm, _signature = _der.iter_tlvs(outer.content)
    new_tbs = _der.encode(_der.SEQUENCE, mutate(tbs.content, ops))
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    return _der.encode(
        _der.SEQUENCE,
        new_tbs + algorithm.raw + _der.encode(_der.BIT_STRING, b"\x00" + signature),
    )


#: Line-level edits of a text document: drop, repeat or swap a line, or splice text into one.
LineOp = tuple[str, int, str]
LINE_OPS_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ['"', "'", "[", "]", "[[", "]]", "=", ",", "#", "\\", '"""', "\n", "\r\n", "*", ":", "\x00"]
    ),
)
LINE_OPS: st.SearchStrategy[list[LineOp]] = st.lists(
    st.tuples(
        st.sampled_from(["drop", "repeat", "swap", "splice", "replace"]),
        st.integers(0, 1 << 12),
        LINE_OPS_TEXT,
    ),
    min_size=1,
    max_size=4,
)


def mutate_lines(text: str, ops: Sequence[LineOp]) -> str:
    """``text`` after line-level edits: structure mostly kept, so parsing reaches deep."""
    lines = text.split("\n")
    for kind, where, insert in ops:
        if not lines:
            lines = [insert]
            continue
        i = where % len(lines)
        if kind == "drop":
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "splice":
            line = lines[i]
            at = (where // 7) % (len(line) + 1)
            lines[i] = line[:at] + insert + line[at:]
        else:
            lines[i] = insert
    return "\n".join(lines)
