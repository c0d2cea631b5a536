"""Credential stores for the ROF authenticators: in memory, and persistent on SQLite.

Both implement :class:`~capif8sec.auth.credentials.CredentialStore` and add the management side
(add, revoke, list).  What they guarantee:

* R42: a PSK shorter than 16 bytes cannot be stored (:class:`PskCredential` refuses it).
* R44: one key is bound to exactly one (ROF identity, CCF identity) pair.  The same key material
  is refused under a second identity, a second CCF, or again at all -- even after a revocation,
  a retired key never comes back.  Keys are indexed by a keyed hash (HMAC-SHA-256 under a store
  secret; in the database, under a KEK-derived key), never by their bytes, and any comparison of
  key bytes is constant-time.
* R45: identities and usernames are exact bytes / exact strings: no case folding, no trimming,
  no Unicode normalization.
* R53: for passwords only the SCRAM verifier (salt, iterations, StoredKey, ServerKey) is stored.
* R62: nothing is cached.  Every lookup reads the current state, so a revocation is seen by the
  next lookup, in this thread, another thread or another process.

Rotation: add the new key beside the old one (both are returned while both are inside their
validity window), then retire the old one with :meth:`~SqliteStore.revoke` (optionally at a future
instant) or let its ``not_after`` pass.  A revocation already in effect on the wall clock is never
undone by asking about an earlier ``at``.

:class:`SqliteStore` keeps PSKs and SCRAM keys encrypted at rest with AES-256-GCM under a
deployment-provided :class:`KeyEncryptionKey`; the database file alone reveals no key.  Each
ciphertext is bound (AEAD associated data) to its row, so ciphertexts cannot be moved between rows.

Secrets (keys, the KEK, SCRAM keys) never appear in ``repr``, ``str``, exception text or logs.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import attrs
from attrs import frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from capif8sec.auth.base import Method
from capif8sec.auth.credentials import PskCredential, ScramVerifier, Validity
from capif8sec.auth.scram import MIN_ITERATIONS, MIN_SALT_BYTES
from capif8sec.errors import Capif8secError, UsageError

__all__ = [
    "CredentialConflict",
    "CredentialInfo",
    "CredentialIntegrityError",
    "CredentialStoreError",
    "KekMismatch",
    "KeyEncryptionKey",
    "MemoryStore",
    "SqliteStore",
    "display_identity",
    "parse_hex",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SCRAM_KEY_BYTES = 32  # SHA-256 output: StoredKey and ServerKey


# ----------------------------------------------------------------------------- errors


class CredentialStoreError(Capif8secError):
    """A credential store cannot do what was asked (unusable database, conflict, tampering)."""


class KekMismatch(CredentialStoreError):
    """The key-encryption key given is not the one this credential database was created with."""


class CredentialConflict(CredentialStoreError):
    """Adding the credential would break a binding rule (R44) or reuse a key id."""


class CredentialIntegrityError(CredentialStoreError):
    """A stored ciphertext failed authentication: the database was altered (rows swapped, ...)."""


# ----------------------------------------------------------------------------- the KEK


_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def parse_hex(text: str) -> bytes | None:
    """The bytes written as ``text`` (pairs of hex digits, nothing else), or None.

    Stricter than :meth:`bytes.fromhex` (no spaces, no empty string); for keys, so callers can
    refuse bad input without ever echoing it.
    """
    return bytes.fromhex(text) if _HEX.fullmatch(text) else None


class KeyEncryptionKey:
    """The 32-byte key under which :class:`SqliteStore` encrypts keys at rest.

    The deployment provides it (a file readable by the CCF only, a secret manager, an
    environment variable); it is never stored in the database.  It never appears in ``repr`` or
    ``str`` and is compared in constant time.
    """

    __slots__ = ("_material",)

    SIZE = 32

    def __init__(self, material: bytes) -> None:
        if not isinstance(material, bytes) or len(material) != self.SIZE:
            raise UsageError(f"a key-encryption key is exactly {self.SIZE} bytes")
        self._material = material

    @classmethod
    def generate(cls) -> KeyEncryptionKey:
        """A fresh random key."""
        return cls(secrets.token_bytes(cls.SIZE))

    @classmethod
    def from_hex(cls, text: str) -> KeyEncryptionKey:
        """Parse 64 hex digits (surrounding whitespace ignored).  Errors never echo the input."""
        material = parse_hex(text.strip()) if isinstance(text, str) else None
        if material is None or len(material) != cls.SIZE:
            raise UsageError(
                f"a key-encryption key is written as {2 * cls.SIZE} hex digits ({cls.SIZE} bytes)"
            )
        return cls(material)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyEncryptionKey:
        """Read a file holding the key as 64 hex digits (a trailing newline is fine)."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except OSError as exc:
            reason = exc.strerror
        except UnicodeDecodeError:
            # Raised outside this block: a UnicodeDecodeError holds the whole file (the key),
            # and even "from None" keeps it as the new error's __context__.
            reason = "not ASCII hex"
        else:
            return cls.from_hex(text)
        raise UsageError(f"cannot read the key-encryption key file {path}: {reason}")

    def _derive(self, salt: bytes, purpose: bytes) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=salt, info=b"capif8sec/" + purpose
        ).derive(self._material)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyEncryptionKey):
            return NotImplemented
        return hmac.compare_digest(self._material, other._material)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "KeyEncryptionKey(<redacted>)"

    __str__ = __repr__


# ----------------------------------------------------------------------------- listing


@frozen
class CredentialInfo:
    """What a store can say about a stored credential: everything but the secret.

    ``identity`` is the PSK identity (``bytes``) for :attr:`Method.PSK`, the username (``str``)
    for :attr:`Method.PASSWORD`.  ``ccf_identity`` is None for passwords, ``iterations`` None for
    PSKs.
    """

    method: Method
    identity: bytes | str
    key_id: str
    validity: Validity
    added_at: dt.datetime
    ccf_identity: str | None = None
    iterations: int | None = None

    def state(self, at: dt.datetime) -> str:
        """``active``, ``revoked``, ``expired`` or ``pending`` (not yet valid) at ``at``."""
        v = self.validity
        if v.revoked_at is not None and v.revoked_at <= at:
            return "revoked"
        if v.not_after is not None and at >= v.not_after:
            return "expired"
        if v.not_before is not None and at < v.not_before:
            return "pending"
        return "active"

    def as_dict(self, at: dt.datetime | None = None) -> dict[str, object]:
        """JSON-ready form (identities as text when valid UTF-8, else ``hex:...``)."""

        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "method": self.method.value,
            "identity": display_identity(self.identity),
            "ccf_identity": self.ccf_identity,
            "key_id": self.key_id,
            "not_before": iso(self.validity.not_before),
            "not_after": iso(self.validity.not_after),
            "revoked_at": iso(self.validity.revoked_at),
            "added_at": iso(self.added_at),
            "iterations": self.iterations,
            "state": self.state(at or _now()),
        }


def display_identity(identity: bytes | str) -> str:
    """A printable form of an identity: the text if printable UTF-8, else ``hex:`` + hex."""
    raw = identity.encode("utf-8", "surrogatepass") if isinstance(identity, str) else identity
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + raw.hex()
    return text if text.isprintable() and not text.startswith("hex:") else "hex:" + raw.hex()


# ----------------------------------------------------------------------------- shared checks


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


_NO_LIMITS = Validity()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise UsageError(f"{what} must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)


def _checked_validity(validity: Validity) -> Validity:
    if validity == _NO_LIMITS:
        return validity
    nb = _aware(validity.not_before, "not_before")
    na = _aware(validity.not_after, "not_after")
    if nb is not None and na is not None and na <= nb:
        raise UsageError("not_after must be later than not_before")
    return Validity(nb, na, _aware(validity.revoked_at, "revoked_at"))


def _text(value: object, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise UsageError(f"{what} must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} must be valid Unicode text (no lone surrogates)") from None
    return value


def _key_id(value: str, prefix: str) -> str:
    _text(value, "key_id", empty=True)
    return value or f"{prefix}-{secrets.token_hex(8)}"


def _checked_psk(cred: PskCredential) -> PskCredential:
    if not isinstance(cred, PskCredential):
        raise UsageError("add_psk takes a PskCredential")
    _text(cred.ccf_identity, "ccf_identity")
    key_id, validity = _key_id(cred.key_id, "psk"), _checked_validity(cred.validity)
    if key_id == cred.key_id and validity == cred.validity:
        return cred  # the common case of a bulk import: nothing to change
    return attrs.evolve(cred, key_id=key_id, validity=validity)


def _checked_scram(verifier: ScramVerifier) -> ScramVerifier:
    if not isinstance(verifier, ScramVerifier):
        raise UsageError("add_scram takes a ScramVerifier")
    _text(verifier.username, "username")
    if not isinstance(verifier.iterations, int) or verifier.iterations < MIN_ITERATIONS:
        raise UsageError(f"SCRAM iterations must be at least {MIN_ITERATIONS} (R53)")
    if not isinstance(verifier.salt, bytes) or len(verifier.salt) < MIN_SALT_BYTES:
        raise UsageError(f"a SCRAM salt is at least {MIN_SALT_BYTES} bytes (R53)")
    for key in (verifier.stored_key, verifier.server_key):
        if not isinstance(key, bytes) or len(key) != _SCRAM_KEY_BYTES:
            raise UsageError(f"StoredKey and ServerKey are {_SCRAM_KEY_BYTES} bytes each")
    validity = _checked_validity(verifier.validity)
    return verifier if validity == verifier.validity else attrs.evolve(verifier, validity=validity)


def _lookup_time(at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``at`` in UTC, and the revocation cut-off: a revocation in effect now stays in effect."""
    checked = _aware(at, "at")
    assert checked is not None
    return checked, max(checked, _now())


def _usable(validity: Validity, at: dt.datetime, cut: dt.datetime) -> bool:
    revoked = validity.revoked_at is not None and validity.revoked_at <= cut
    return not revoked and validity.active(at)


def _selector(identity: bytes | None, key_id: str | None, username: str | None) -> None:
    given = sum(x is not None for x in (identity, key_id, username))
    if given != 1:
        raise UsageError("revoke takes exactly one of identity, key_id or username")
    if identity is not None and not isinstance(identity, bytes):
        raise UsageError("a PSK identity is bytes (R45)")


class _Fingerprint:
    """A keyed hash of key material: equal keys give equal fingerprints, nothing else leaks."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, material: bytes) -> bytes:
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "_Fingerprint(<redacted>)"


_R44 = (
    "this key material is already registered in the store; one PSK is bound to exactly one "
    "(ROF identity, CCF identity) pair (R44)"
)


# ----------------------------------------------------------------------------- MemoryStore


@attrs.define
class _Entry:
    method: Method
    name: bytes | str
    key_id: str
    credential: PskCredential | ScramVerifier = attrs.field(repr=False)
    added_at: dt.datetime

    def info(self) -> CredentialInfo:
        cred = self.credential
        return CredentialInfo(
            method=self.method,
            identity=self.name,
            key_id=self.key_id,
            validity=cred.validity,
            added_at=self.added_at,
            ccf_identity=cred.ccf_identity if isinstance(cred, PskCredential) else None,
            iterations=cred.iterations if isinstance(cred, ScramVerifier) else None,
        )


class MemoryStore:
    """A thread-safe credential store in memory (tests, or credentials loaded from a PSK file).

    Keys are fingerprinted under a random per-store secret for the R44 checks.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._fingerprint = _Fingerprint(secrets.token_bytes(32))
        self._by_fingerprint: dict[bytes, PskCredential] = {}
        self._psks: dict[bytes, builtins.list[_Entry]] = {}
        self._scram: dict[str, builtins.list[_Entry]] = {}
        self._by_key_id: dict[str, _Entry] = {}
        self._order: builtins.list[_Entry] = []

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._order)} credentials)"

    # -- lookups (CredentialStore)

    def psk_credentials(self, identity: bytes, *, at: dt.datetime) -> Sequence[PskCredential]:
        """The active PSKs of ``identity`` (exact bytes), newest first."""
        at, cut = _lookup_time(at)
        with self._lock:
            entries = self._psks.get(identity, ()) if isinstance(identity, bytes) else ()
            found = [e.credential for e in reversed(entries)]
        return [c for c in found if isinstance(c, PskCredential) and _usable(c.validity, at, cut)]

    def scram_verifier(self, username: str, *, at: dt.datetime) -> ScramVerifier | None:
        """The newest active SCRAM verifier of ``username`` (exact string), or None."""
        at, cut = _lookup_time(at)
        with self._lock:
            entries = self._scram.get(username, ()) if isinstance(username, str) else ()
            found = [e.credential for e in reversed(entries)]
        for cred in found:
            if isinstance(cred, ScramVerifier) and _usable(cred.validity, at, cut):
                return cred
        return None

    # -- management

    def add_psk(self, credential: PskCredential) -> CredentialInfo:
        """Store a PSK (a key id is made up when it has none); says what was stored."""
        return self.add_psks([credential])[0]

    def add_psks(self, credentials: Iterable[PskCredential]) -> builtins.list[CredentialInfo]:
        """Store several PSKs, all or none."""
        checked = [_checked_psk(c) for c in credentials]
        with self._lock:
            seen: dict[bytes, PskCredential] = {}
            ids: set[str] = set()
            for cred in checked:
                fp = self._fingerprint(cred.key)
                other = self._by_fingerprint.get(fp) or seen.get(fp)
                # The keyed hashes matched; confirm on the keys themselves, in constant time.
                if other is not None and hmac.compare_digest(other.key, cred.key):
                    raise CredentialConflict(_R44)
                if cred.key_id in self._by_key_id or cred.key_id in ids:
                    raise CredentialConflict(f"key id {cred.key_id!r} is already in use")
                seen[fp] = cred
                ids.add(cred.key_id)
            now = _now()
            added = []
            for fp, cred in seen.items():
                self._by_fingerprint[fp] = cred
                added.append(self._index(_Entry(Method.PSK, cred.identity, cred.key_id, cred, now)))
                _log.info("added PSK identity=%r key_id=%s", cred.identity, cred.key_id)
        return added

    def add_scram(self, verifier: ScramVerifier, *, key_id: str = "") -> CredentialInfo:
        """Store a SCRAM verifier (R53: never a password); the newest active one is used."""
        checked = _checked_scram(verifier)
        kid = _key_id(key_id, "pw")
        with self._lock:
            if kid in self._by_key_id:
                raise CredentialConflict(f"key id {kid!r} is already in use")
            info = self._index(_Entry(Method.PASSWORD, checked.username, kid, checked, _now()))
        _log.info("added SCRAM verifier username=%r key_id=%s", checked.username, kid)
        return info

    def _index(self, entry: _Entry) -> CredentialInfo:
        if isinstance(entry.name, bytes):
            self._psks.setdefault(entry.name, []).append(entry)
        else:
            self._scram.setdefault(entry.name, []).append(entry)
        self._by_key_id[entry.key_id] = entry
        self._order.append(entry)
        return entry.info()

    def revoke(
        self,
        *,
        identity: bytes | None = None,
        key_id: str | None = None,
        username: str | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        """Revoke every credential of a PSK identity, one key id, or every verifier of a user.

        The revocation takes effect at ``at`` (default: now); the next lookup sees it.  Returns
        how many credentials were newly revoked (0: nothing matched, or all were revoked).
        """
        _selector(identity, key_id, username)
        when = _aware(at, "at") or _now()
        with self._lock:
            if identity is not None:
                entries = builtins.list(self._psks.get(identity, ()))
            elif username is not None:
                entries = builtins.list(self._scram.get(username, ()))
            else:
                entry = self._by_key_id.get(key_id or "")
                entries = [entry] if entry is not None else []
            count = 0
            for entry in entries:
                v = entry.credential.validity
                if v.revoked_at is None or v.revoked_at > when:
                    entry.credential = attrs.evolve(
                        entry.credential, validity=attrs.evolve(v, revoked_at=when)
                    )
                    count += 1
        _log.info("revoked %d credential(s)", count)
        return count

    def list(self) -> builtins.list[CredentialInfo]:
        """Every stored credential, oldest first, without secrets."""
        with self._lock:
            return [e.info() for e in self._order]


# ----------------------------------------------------------------------------- SqliteStore


_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE psk (
    id INTEGER PRIMARY KEY,
    identity BLOB NOT NULL,
    ccf_identity TEXT NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    fingerprint BLOB NOT NULL UNIQUE,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    not_before INTEGER,
    not_after INTEGER,
    revoked_at INTEGER,
    added_at INTEGER NOT NULL
);
CREATE INDEX psk_by_identity ON psk (identity);
CREATE TABLE scram (
    id INTEGER PRIMARY KEY,
    username BLOB NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    salt BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    not_before INTEGER,
    not_after INTEGER,
    revoked_at INTEGER,
    added_at INTEGER NOT NULL
);
CREATE INDEX scram_by_username ON scram (username);
"""

_BULK_ROWS = 10_000
_PSK_AAD = b"capif8sec/psk-row/v1"
_SCRAM_AAD = b"capif8sec/scram-row/v1"
_CHECK_LABEL = b"capif8sec credential database key check"


def _us(value: dt.datetime) -> int:
    return (value - _EPOCH) // _US


def _opt_us(value: dt.datetime | None) -> int | None:
    return None if value is None else _us(value)


def _at(value: int) -> dt.datetime:
    try:
        return _EPOCH + value * _US
    except OverflowError:
        raise CredentialIntegrityError(
            "a stored time is out of range: the credential database was altered"
        ) from None


def _dt(value: int | None) -> dt.datetime | None:
    return None if value is None else _at(value)


_INT_OR_NULL = (int, type(None))
#: The types of the rows the store reads back (SQLite hands back bytes, str, int or None).
_PSK_ROW = (str, str, bytes, bytes, _INT_OR_NULL, _INT_OR_NULL, _INT_OR_NULL)
_SCRAM_ROW = (str, bytes, int, bytes, bytes, _INT_OR_NULL, _INT_OR_NULL, _INT_OR_NULL)
_PSK_INFO_ROW = (bytes, str, str, _INT_OR_NULL, _INT_OR_NULL, _INT_OR_NULL, int)
_SCRAM_INFO_ROW = (bytes, str, int, _INT_OR_NULL, _INT_OR_NULL, _INT_OR_NULL, int)


def _typed(row: Sequence[Any], kinds: tuple[type | tuple[type, ...], ...]) -> Sequence[Any]:
    """``row`` if its values have the types ``kinds`` gives.  SQLite does not enforce column
    types, so a file altered outside capif8sec can hold any value in any column: refuse it here,
    before the value reaches the associated data, the AEAD or a datetime."""
    if len(row) != len(kinds) or not all(map(isinstance, row, kinds)):
        raise CredentialIntegrityError(
            "a stored credential has a value of the wrong type: the credential database was altered"
        )
    return row


def _username(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialIntegrityError(
            "a stored username is not UTF-8: the credential database was altered"
        ) from None


def _aad(tag: bytes, *fields: bytes | str | int | None) -> bytes:
    """Unambiguous encoding of a row's identifying fields (type, length, value each)."""
    out = [tag]
    for f in fields:
        if f is None:
            out.append(b"\x00")
            continue
        if isinstance(f, int):
            kind, data = b"\x03", f.to_bytes(8, "big", signed=True)
        elif isinstance(f, str):
            kind, data = b"\x02", f.encode("utf-8")
        else:
            kind, data = b"\x01", f
        out.append(kind + struct.pack(">I", len(data)) + data)
    return b"".join(out)


class _DbErrors:
    """Turns :mod:`sqlite3` errors into :class:`CredentialStoreError` (a cheap context manager:
    it wraps every lookup).  SQLite messages name tables and columns, never bound values."""

    __slots__ = ("_path", "_timeout")

    def __init__(self, path: Path, timeout: float) -> None:
        self._path, self._timeout = path, timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        if isinstance(exc, UnicodeDecodeError):  # a damaged file: text that is not UTF-8
            raise CredentialStoreError(
                f"{self._path}: credential database error: a text value is not UTF-8"
            ) from None
        if not isinstance(exc, sqlite3.Error):
            return
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise CredentialStoreError(
                f"{self._path}: the credential database stayed busy for {self._timeout:g} s"
            ) from None
        raise CredentialStoreError(f"{self._path}: credential database error: {exc}") from None


class _Conn:
    """One thread's connection, tagged with the process that opened it."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()


# Connections inherited through fork() must be neither used nor closed by the child (SQLite's
# rule); they are parked here so that dropping them does not close them.
_inherited: builtins.list[sqlite3.Connection] = []


class _Insert(NamedTuple):
    """One table's bulk insert: the newest row id, the INSERT, the cross-table key-id check."""

    last_id: str
    insert: str
    clash: str


_PSK_INSERT = _Insert(
    "SELECT COALESCE(MAX(id), 0) FROM psk",
    "INSERT INTO psk (identity, ccf_identity, key_id, fingerprint, nonce, ciphertext,"
    " not_before, not_after, revoked_at, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "SELECT psk.key_id FROM psk JOIN scram ON scram.key_id = psk.key_id WHERE psk.id > ? LIMIT 1",
)
_SCRAM_INSERT = _Insert(
    "SELECT COALESCE(MAX(id), 0) FROM scram",
    "INSERT INTO scram (username, key_id, salt, iterations, nonce, ciphertext,"
    " not_before, not_after, revoked_at, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "SELECT scram.key_id FROM scram JOIN psk ON psk.key_id = scram.key_id"
    " WHERE scram.id > ? LIMIT 1",
)


def _insert(
    conn: sqlite3.Connection,
    statements: _Insert,
    rows: builtins.list[tuple[Any, ...]],
    checked: Sequence[PskCredential],
) -> None:
    """Insert ``rows`` inside the caller's write transaction; refuse duplicates (R44) and a key
    id already used by the other kind of credential."""
    last = conn.execute(statements.last_id).fetchone()[0]
    try:
        conn.executemany(statements.insert, rows)
    except sqlite3.IntegrityError as exc:
        raise _conflict(exc, checked) from None
    clash = conn.execute(statements.clash, (last,)).fetchone()
    if clash is not None:
        raise CredentialConflict(f"key id {clash[0]!r} is already in use")


class SqliteStore:
    """A persistent credential store in one SQLite file (stdlib :mod:`sqlite3`).

    * PSKs and SCRAM keys are encrypted with AES-256-GCM under keys derived (HKDF-SHA-256, with a
      per-database random salt) from ``kek``; each ciphertext's associated data binds it to its
      row (identity or username, key id, CCF identity, validity bounds).  A check value tells a
      wrong KEK apart from a damaged database (:class:`KekMismatch`).
    * R44 is enforced by a UNIQUE index on a keyed hash of the key (HMAC under a KEK-derived key),
      atomically, across threads and processes.
    * Safe for concurrent use from threads and processes: WAL journal, a busy timeout, one
      connection per thread (opened lazily, reopened after ``fork``), ``BEGIN IMMEDIATE`` for
      every write.  Lookups are single indexed ``SELECT`` statements (identity / username).
    * The file is created with mode 0600.

    ``create=False`` refuses a missing file instead of creating it.  ``timeout`` is how long a
    write waits for another writer (seconds).  ``mmap_size`` (bytes; 0: off) lets lookups read
    the file through a memory map, which keeps them flat as the database grows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        kek: KeyEncryptionKey,
        *,
        create: bool = True,
        timeout: float = 30.0,
        mmap_size: int = 1 << 30,
    ) -> None:
        if not isinstance(kek, KeyEncryptionKey):
            raise UsageError("SqliteStore needs a KeyEncryptionKey")
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise UsageError("SqliteStore needs a file path (use MemoryStore for memory)")
        self._path = Path(text)
        self._timeout = timeout
        self._mmap_size = int(mmap_size)
        self._errors = _DbErrors(self._path, timeout)
        self._local = threading.local()
        self._conns: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._closed = False
        if not self._path.exists():
            if not create:
                raise CredentialStoreError(f"no credential database at {self._path}")
            try:
                os.close(os.open(self._path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise CredentialStoreError(f"cannot create {self._path}: {exc.strerror}") from None
        try:
            salt, check = self._initialise(kek)
            if not hmac.compare_digest(kek._derive(salt, b"kek-check"), check):
                raise KekMismatch(
                    f"the key-encryption key does not match the credential database {self._path}"
                )
        except BaseException:
            self.close()
            raise
        self._aead = AESGCM(kek._derive(salt, b"aead"))
        self._fingerprint = _Fingerprint(kek._derive(salt, b"psk-fingerprint"))

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    # -- connections and transactions

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            if mode is None or str(mode[0]).lower() != "wal":
                raise CredentialStoreError(f"{self._path}: cannot switch to WAL journal mode")
            conn.execute("PRAGMA synchronous = FULL")  # a committed revocation survives a crash
            conn.execute("PRAGMA trusted_schema = OFF")
            # Lookups read pages through the OS page cache without a copy or a system call:
            # what keeps them flat as the file grows.  0 turns it off.
            conn.execute(f"PRAGMA mmap_size = {self._mmap_size}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _retry_busy(self, step: Callable[[], _T]) -> _T:
        """Run ``step``, retrying while SQLite says "locked" without waiting (it does so when
        several processes switch a new file to WAL at once), until the timeout."""
        deadline, delay = time.monotonic() + self._timeout, 0.001
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(2 * delay, 0.05)

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise CredentialStoreError("the credential store is closed")
        holder: _Conn | None = getattr(self._local, "holder", None)
        if holder is not None and holder.pid == os.getpid():
            return holder.conn
        if holder is not None:  # inherited through fork(): never touch it
            _inherited.append(holder.conn)
        holder = _Conn(self._connect())
        self._local.holder = holder
        with self._conns_lock:
            self._conns.add(holder)
        return holder.conn

    @contextmanager
    def _write(self, rows: int = 1) -> Iterator[sqlite3.Connection]:
        with self._errors:
            conn = self._conn()
            if rows >= _BULK_ROWS:  # random-order index inserts need room: 256 MiB, for now
                conn.execute("PRAGMA cache_size = -262144")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if rows >= _BULK_ROWS:
                    conn.execute("PRAGMA cache_size = -2000")  # SQLite's default

    def _initialise(self, kek: KeyEncryptionKey) -> tuple[bytes, bytes]:
        with self._errors:
            try:
                meta = self._meta(self._conn())
            except sqlite3.OperationalError:
                raise  # busy: reported as such by self._errors
            except sqlite3.DatabaseError:
                raise CredentialStoreError(
                    f"{self._path} is not a capif8sec credential database"
                ) from None
            if meta is None:
                with self._write() as conn:
                    meta = self._meta(conn)  # another process may have won the race
                    if meta is None:
                        salt = secrets.token_bytes(32)
                        meta = salt, kek._derive(salt, b"kek-check")
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute("INSERT INTO schema_version VALUES (?)", (_SCHEMA_VERSION,))
                        conn.executemany(
                            "INSERT INTO meta VALUES (?, ?)",
                            [("salt", meta[0]), ("kek_check", meta[1])],
                        )
            return meta

    def _meta(self, conn: sqlite3.Connection) -> tuple[bytes, bytes] | None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables:
            if tables:
                raise CredentialStoreError(f"{self._path} is not a capif8sec credential database")
            return None
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None or row[0] != _SCHEMA_VERSION:
            raise CredentialStoreError(
                f"{self._path}: unsupported credential database schema version "
                f"{row[0] if row else None} (this capif8sec reads version {_SCHEMA_VERSION})"
            )
        values = dict(conn.execute("SELECT name, value FROM meta"))
        if "salt" not in values or "kek_check" not in values:
            raise CredentialStoreError(f"{self._path}: the credential database has no key check")
        salt, check = values["salt"], values["kek_check"]
        if not isinstance(salt, bytes) or not isinstance(check, bytes):
            raise CredentialStoreError(
                f"{self._path}: the credential database's key check is damaged"
            )
        return salt, check

    def close(self) -> None:
        """Close every connection the store opened (call it from one thread, at shutdown)."""
        self._closed = True
        with self._conns_lock:
            holders = builtins.list(self._conns)
            self._conns.clear()
        for holder in holders:
            if holder.pid == os.getpid():
                holder.conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encryption

    def _seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = secrets.token_bytes(12)
        return nonce, self._aead.encrypt(nonce, plaintext, aad)

    def _open(self, nonce: bytes, ciphertext: bytes, aad: bytes, key_id: str) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            _log.error("stored credential key_id=%s failed its integrity check", key_id)
            raise CredentialIntegrityError(
                f"the stored credential with key id {key_id!r} failed its integrity check: the "
                "credential database was altered"
            ) from None

    # -- lookups (CredentialStore)

    def psk_credentials(self, identity: bytes, *, at: dt.datetime) -> Sequence[PskCredential]:
        """The active PSKs of ``identity`` (exact bytes), newest first.  Reads the database."""
        at, cut = _lookup_time(at)
        if not isinstance(identity, bytes):
            return []
        at_us, cut_us = _us(at), _us(cut)
        with self._errors:
            rows = (
                self._conn()
                .execute(
                    "SELECT key_id, ccf_identity, nonce, ciphertext, not_before, not_after,"
                    " revoked_at FROM psk WHERE identity = ?"
                    " AND (not_before IS NULL OR not_before <= ?)"
                    " AND (not_after IS NULL OR not_after > ?)"
                    " AND (revoked_at IS NULL OR revoked_at > ?)"
                    " ORDER BY id DESC",
                    (identity, at_us, at_us, cut_us),
                )
                .fetchall()
            )
        found = []
        for key_id, ccf, nonce, ciphertext, nb, na, revoked in (_typed(r, _PSK_ROW) for r in rows):
            aad = _aad(_PSK_AAD, identity, key_id, ccf, nb, na)
            key = self._open(nonce, ciphertext, aad, key_id)
            validity = Validity(_dt(nb), _dt(na), _dt(revoked))
            try:
                found.append(PskCredential(identity, key, ccf, key_id, validity))
            except UsageError:  # e.g. a key below the R42 floor written by other software
                raise CredentialIntegrityError(
                    f"the stored PSK with key id {key_id!r} is not a usable PSK (R42)"
                ) from None
        return found

    def scram_verifier(self, username: str, *, at: dt.datetime) -> ScramVerifier | None:
        """The newest active SCRAM verifier of ``username`` (exact string), or None."""
        at, cut = _lookup_time(at)
        try:
            name = username.encode("utf-8")
        except (AttributeError, UnicodeEncodeError):
            return None
        at_us, cut_us = _us(at), _us(cut)
        with self._errors:
            row = (
                self._conn()
                .execute(
                    "SELECT key_id, salt, iterations, nonce, ciphertext, not_before, not_after,"
                    " revoked_at FROM scram WHERE username = ?"
                    " AND (not_before IS NULL OR not_before <= ?)"
                    " AND (not_after IS NULL OR not_after > ?)"
                    " AND (revoked_at IS NULL OR revoked_at > ?)"
                    " ORDER BY id DESC LIMIT 1",
                    (name, at_us, at_us, cut_us),
                )
                .fetchone()
            )
        if row is None:
            return None
        key_id, salt, iterations, nonce, ciphertext, nb, na, revoked = _typed(row, _SCRAM_ROW)
        aad = _aad(_SCRAM_AAD, name, key_id, salt, iterations, nb, na)
        keys = self._open(nonce, ciphertext, aad, key_id)
        return ScramVerifier(
            username,
            salt,
            iterations,
            keys[:_SCRAM_KEY_BYTES],
            keys[_SCRAM_KEY_BYTES:],
            Validity(_dt(nb), _dt(na), _dt(revoked)),
        )

    # -- management

    def add_psk(self, credential: PskCredential) -> CredentialInfo:
        """Store a PSK (a key id is made up when it has none); says what was stored."""
        return self.add_psks([credential])[0]

    def add_psks(self, credentials: Iterable[PskCredential]) -> builtins.list[CredentialInfo]:
        """Store several PSKs in one transaction, all or none (fast bulk import)."""
        checked = [_checked_psk(c) for c in credentials]
        now = _us(_now())
        rows = []
        for c in checked:
            nb, na = _opt_us(c.validity.not_before), _opt_us(c.validity.not_after)
            aad = _aad(_PSK_AAD, c.identity, c.key_id, c.ccf_identity, nb, na)
            nonce, ct = self._seal(c.key, aad)
            revoked, fp = _opt_us(c.validity.revoked_at), self._fingerprint(c.key)
            rows.append((c.identity, c.ccf_identity, c.key_id, fp, nonce, ct, nb, na, revoked, now))
        with self._write(len(rows)) as conn:
            _insert(conn, _PSK_INSERT, rows, checked)
        for c in checked:
            _log.info("added PSK identity=%r key_id=%s", c.identity, c.key_id)
        return [
            CredentialInfo(
                Method.PSK, c.identity, c.key_id, c.validity, _at(now), ccf_identity=c.ccf_identity
            )
            for c in checked
        ]

    def add_scram(self, verifier: ScramVerifier, *, key_id: str = "") -> CredentialInfo:
        """Store a SCRAM verifier (R53: never a password); the newest active one is used."""
        return self.add_scram_verifiers([(verifier, key_id)])[0]

    def add_scram_verifiers(
        self, verifiers: Iterable[ScramVerifier | tuple[ScramVerifier, str]]
    ) -> builtins.list[CredentialInfo]:
        """Store several SCRAM verifiers (optionally with key ids) in one transaction."""
        now = _us(_now())
        checked: builtins.list[CredentialInfo] = []
        rows = []
        for item in verifiers:
            verifier, kid = item if isinstance(item, tuple) else (item, "")
            v = _checked_scram(verifier)
            kid = _key_id(kid, "pw")
            name = v.username.encode("utf-8")
            nb, na = _opt_us(v.validity.not_before), _opt_us(v.validity.not_after)
            aad = _aad(_SCRAM_AAD, name, kid, v.salt, v.iterations, nb, na)
            nonce, ciphertext = self._seal(v.stored_key + v.server_key, aad)
            revoked = _opt_us(v.validity.revoked_at)
            rows.append((name, kid, v.salt, v.iterations, nonce, ciphertext, nb, na, revoked, now))
            checked.append(
                CredentialInfo(
                    Method.PASSWORD, v.username, kid, v.validity, _at(now), iterations=v.iterations
                )
            )
        with self._write(len(rows)) as conn:
            _insert(conn, _SCRAM_INSERT, rows, [])
        for info in checked:
            _log.info("added SCRAM verifier username=%r key_id=%s", info.identity, info.key_id)
        return checked

    def revoke(
        self,
        *,
        identity: bytes | None = None,
        key_id: str | None = None,
        username: str | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        """Revoke every credential of a PSK identity, one key id, or every verifier of a user.

        The revocation takes effect at ``at`` (default: now) and is committed before this
        returns: the next lookup, in any thread or process, sees it.  Returns how many
        credentials were newly revoked (0: nothing matched, or all were revoked already).
        """
        _selector(identity, key_id, username)
        when = _us(_aware(at, "at") or _now())
        targets: builtins.list[tuple[str, str, bytes | str | None]]
        if username is not None:
            targets = [("scram", "username", _text(username, "username").encode("utf-8"))]
        elif identity is not None:
            targets = [("psk", "identity", identity)]
        else:
            targets = [("psk", "key_id", key_id), ("scram", "key_id", key_id)]
        count = 0
        with self._write() as conn:
            for table, column, value in targets:
                count += conn.execute(
                    f"UPDATE {table} SET revoked_at = ? WHERE {column} = ?"  # noqa: S608 -- fixed names
                    " AND (revoked_at IS NULL OR revoked_at > ?)",
                    (when, value, when),
                ).rowcount
        _log.info("revoked %d credential(s)", count)
        return count

    def list(self) -> builtins.list[CredentialInfo]:
        """Every stored credential, oldest first (PSKs, then SCRAM verifiers), without secrets."""
        with self._errors:
            conn = self._conn()
            conn.execute("BEGIN")  # one snapshot for both tables
            try:
                psks = conn.execute(
                    "SELECT identity, ccf_identity, key_id, not_before, not_after, revoked_at,"
                    " added_at FROM psk ORDER BY id"
                ).fetchall()
                scram = conn.execute(
                    "SELECT username, key_id, iterations, not_before, not_after, revoked_at,"
                    " added_at FROM scram ORDER BY id"
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        out = [
            CredentialInfo(
                Method.PSK,
                bytes(ident),
                kid,
                Validity(_dt(nb), _dt(na), _dt(rv)),
                _at(added),
                ccf_identity=ccf,
            )
            for ident, ccf, kid, nb, na, rv, added in (_typed(r, _PSK_INFO_ROW) for r in psks)
        ]
        out.extend(
            CredentialInfo(
                Method.PASSWORD,
                _username(user),
                kid,
                Validity(_dt(nb), _dt(na), _dt(rv)),
                _at(added),
                iterations=its,
            )
            for user, kid, its, nb, na, rv, added in (_typed(r, _SCRAM_INFO_ROW) for r in scram)
        )
        return out


def _conflict(exc: sqlite3.IntegrityError, checked: Sequence[PskCredential]) -> CredentialConflict:
    text = str(exc)
    if "fingerprint" in text:
        return CredentialConflict(_R44)
    if "key_id" in text:
        if len(checked) == 1:
            return CredentialConflict(f"key id {checked[0].key_id!r} is already in use")
        return CredentialConflict("a key id is already in use")
    return CredentialConflict(f"the credential conflicts with a stored one ({text})")
