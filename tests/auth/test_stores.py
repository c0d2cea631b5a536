"""Credential stores (R42, R44, R45, R53, R62): MemoryStore and SqliteStore.

The behaviour both stores share runs against each; the SQLite file's properties (encryption at
rest, AAD binding, wrong KEK, concurrency across threads and processes) are tested on the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import multiprocessing
import multiprocessing.pool
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import pytest

from capif8sec.auth import CredentialStore, PskCredential, ScramVerifier, Validity
from capif8sec.auth.scram import make_verifier
from capif8sec.auth.stores import (
    CredentialConflict,
    CredentialIntegrityError,
    CredentialStoreError,
    KekMismatch,
    KeyEncryptionKey,
    MemoryStore,
    SqliteStore,
)
from capif8sec.errors import Capif8secError, UsageError

Store = MemoryStore | SqliteStore
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
ITERATIONS = 4096  # the R53 floor: keeps the tests fast


def secret_forms(secret: bytes) -> list[bytes]:
    """The raw bytes and the usual printable encodings of a secret."""
    b64 = base64.b64encode(secret)
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def assert_no_secret(haystack: str | bytes, *secrets_: bytes) -> None:
    data = haystack.encode("utf-8", "surrogateescape") if isinstance(haystack, str) else haystack
    for secret in secrets_:
        for form in secret_forms(secret):
            assert form not in data, "a secret leaked"


def psk(
    identity: bytes, *, ccf: str = "ccf.example", key_id: str = "", **validity: dt.datetime
) -> PskCredential:
    return PskCredential(identity, os.urandom(32), ccf, key_id, Validity(**validity))


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.generate()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "credentials.db"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, db: Path, kek: KeyEncryptionKey) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with SqliteStore(db, kek) as s:
        yield s


# ----------------------------------------------------------------------------- both stores


def test_implements_the_store_protocol(store: Store) -> None:
    assert isinstance(store, CredentialStore)


def test_add_then_look_up(store: Store) -> None:
    cred = psk(b"rof-1", key_id="k1")
    info = store.add_psk(cred)
    assert (info.identity, info.key_id, info.ccf_identity) == (b"rof-1", "k1", "ccf.example")
    (found,) = store.psk_credentials(b"rof-1", at=NOW)
    assert (found.identity, found.key, found.ccf_identity, found.key_id) == (
        b"rof-1",
        cred.key,
        "ccf.example",
        "k1",
    )
    assert store.psk_credentials(b"rof-2", at=NOW) == []


def test_key_ids_are_made_up_when_missing_and_unique(store: Store) -> None:
    a, b = store.add_psk(psk(b"rof-1")), store.add_psk(psk(b"rof-1"))
    assert a.key_id and b.key_id and a.key_id != b.key_id
    with pytest.raises(CredentialConflict, match="key id"):
        store.add_psk(psk(b"rof-2", key_id=a.key_id))


def test_r45_identities_are_exact_bytes(store: Store) -> None:
    keys = {}
    for identity in (b"rof-1", b"ROF-1", b"rof-1 ", b" rof-1", b"rof-\xc3\xa9", b"rof-e\xcc\x81"):
        cred = psk(identity)
        store.add_psk(cred)
        keys[identity] = cred.key
    for identity, key in keys.items():
        assert [c.key for c in store.psk_credentials(identity, at=NOW)] == [key]
    for unknown in (b"rof-1\x00", b"rof-", b"Rof-1", b"rof-1  "):
        assert store.psk_credentials(unknown, at=NOW) == []
    assert store.psk_credentials("rof-1", at=NOW) == []  # type: ignore[arg-type]


def test_r45_usernames_are_exact(store: Store) -> None:
    store.add_scram(make_verifier("alice", "pencil", iterations=ITERATIONS))
    assert store.scram_verifier("alice", at=NOW) is not None
    for other in ("Alice", "alice ", "ALICE", "al\u0131ce"):
        assert store.scram_verifier(other, at=NOW) is None


def test_r44_same_key_under_a_second_identity_is_refused(store: Store) -> None:
    first = psk(b"rof-1")
    store.add_psk(first)
    for clone in (
        PskCredential(b"rof-2", first.key, "ccf.example"),  # another ROF
        PskCredential(b"rof-1", first.key, "ccf-2.example"),  # another CCF
        PskCredential(b"rof-1", first.key, "ccf.example"),  # the same pair again
    ):
        with pytest.raises(CredentialConflict, match="R44") as info:
            store.add_psk(clone)
        assert_no_secret(str(info.value), first.key)
    assert [c.identity for c in store.psk_credentials(b"rof-1", at=NOW)] == [b"rof-1"]
    assert store.psk_credentials(b"rof-2", at=NOW) == []


def test_r44_a_revoked_key_never_comes_back(store: Store) -> None:
    first = psk(b"rof-1")
    store.add_psk(first)
    store.revoke(identity=b"rof-1")
    with pytest.raises(CredentialConflict):
        store.add_psk(PskCredential(b"rof-9", first.key, "ccf.example"))


def test_r44_batches_are_all_or_nothing(store: Store) -> None:
    a = psk(b"rof-1")
    with pytest.raises(CredentialConflict):
        store.add_psks([a, psk(b"rof-2"), PskCredential(b"rof-3", a.key, "ccf.example")])
    assert store.list() == []
    assert store.psk_credentials(b"rof-1", at=NOW) == []


def test_r42_short_keys_cannot_reach_a_store() -> None:
    with pytest.raises(UsageError, match="R42") as info:
        PskCredential(b"rof-1", b"k" * 15, "ccf.example")
    assert "k" * 15 not in str(info.value)
    PskCredential(b"rof-1", b"k" * 16, "ccf.example")


def test_rotation_overlap_then_retirement(store: Store) -> None:
    old = psk(b"rof-1", key_id="old", not_after=NOW + 2 * HOUR)
    new = psk(b"rof-1", key_id="new", not_before=NOW + HOUR)
    store.add_psk(old)
    store.add_psk(new)

    def ids(at: dt.datetime) -> list[str]:
        return [c.key_id for c in store.psk_credentials(b"rof-1", at=at)]

    assert ids(NOW) == ["old"]
    assert ids(NOW + HOUR) == ["new", "old"]  # both during the overlap, newest first
    assert ids(NOW + 2 * HOUR) == ["new"]  # not_after is exclusive
    assert ids(NOW + 100 * HOUR) == ["new"]
    # Retiring the old key early ends the overlap at once.
    assert store.revoke(key_id="old") == 1
    assert ids(NOW + HOUR) == ["new"]


def test_r62_revocation_is_seen_by_the_next_lookup(store: Store) -> None:
    store.add_psk(psk(b"rof-1"))
    store.add_psk(psk(b"rof-2"))
    store.add_scram(make_verifier("alice", "pencil", iterations=ITERATIONS))
    now = dt.datetime.now(dt.UTC)
    assert store.psk_credentials(b"rof-1", at=now)
    assert store.revoke(identity=b"rof-1") == 1
    assert store.psk_credentials(b"rof-1", at=now) == []  # `at` is before the revocation
    assert store.psk_credentials(b"rof-1", at=now - 1000 * HOUR) == []
    assert store.psk_credentials(b"rof-2", at=now)  # the other ROF is untouched
    assert store.revoke(username="alice") == 1
    assert store.scram_verifier("alice", at=now) is None
    assert store.revoke(identity=b"rof-1") == 0  # already revoked
    assert store.revoke(key_id="nope") == 0
    assert store.revoke(identity=b"nobody") == 0


def test_a_revocation_can_be_scheduled(store: Store) -> None:
    store.add_psk(psk(b"rof-1", key_id="k"))
    later = dt.datetime.now(dt.UTC) + HOUR
    assert store.revoke(key_id="k", at=later) == 1
    assert store.psk_credentials(b"rof-1", at=later - dt.timedelta(seconds=1))
    assert store.psk_credentials(b"rof-1", at=later) == []
    assert store.revoke(key_id="k") == 1  # bring it forward to now
    assert store.psk_credentials(b"rof-1", at=later - dt.timedelta(seconds=1)) == []


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"identity": b"a", "key_id": "b"}, {"key_id": "a", "username": "b"}, {"identity": "text"}],
)
def test_revoke_takes_exactly_one_selector(store: Store, kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        store.revoke(**kwargs)  # type: ignore[arg-type]


def test_scram_newest_active_verifier_wins(store: Store) -> None:
    first = make_verifier(
        "alice", "one", iterations=ITERATIONS, validity=Validity(not_after=NOW + HOUR)
    )
    second = make_verifier("alice", "two", iterations=ITERATIONS, validity=Validity(not_before=NOW))
    store.add_scram(first, key_id="pw-1")
    store.add_scram(second)
    found = store.scram_verifier("alice", at=NOW)
    assert found is not None and found.stored_key == second.stored_key
    found = store.scram_verifier("alice", at=NOW - HOUR)
    assert found is not None and found.stored_key == first.stored_key
    assert (found.salt, found.iterations, found.server_key) == (
        first.salt,
        first.iterations,
        first.server_key,
    )
    assert store.revoke(key_id="pw-1") == 1
    assert store.scram_verifier("alice", at=NOW - HOUR) is None


@pytest.mark.parametrize(
    "change",
    [
        {"iterations": 4095},
        {"salt": b"s" * 15},
        {"stored_key": b"k" * 31},
        {"server_key": b"k" * 33},
        {"username": ""},
        {"username": "\udc80"},
    ],
)
def test_r53_weak_verifiers_are_refused(store: Store, change: dict[str, object]) -> None:
    fields = {
        "username": "alice",
        "salt": b"s" * 16,
        "iterations": 4096,
        "stored_key": b"k" * 32,
        "server_key": b"k" * 32,
    }
    fields.update(change)
    with pytest.raises(UsageError):
        store.add_scram(ScramVerifier(**fields))  # type: ignore[arg-type]


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(UsageError, match="timezone"):
        store.add_psk(psk(b"rof-1", not_after=dt.datetime(2030, 1, 1)))
    with pytest.raises(UsageError, match="timezone"):
        store.psk_credentials(b"rof-1", at=dt.datetime(2030, 1, 1))
    with pytest.raises(UsageError, match="later"):
        store.add_psk(psk(b"rof-1", not_before=NOW, not_after=NOW))


def test_list_shows_everything_but_secrets(store: Store) -> None:
    cred = psk(b"rof-1", key_id="k1", not_after=NOW + HOUR)
    verifier = make_verifier("alice", "pencil", iterations=ITERATIONS)
    store.add_psk(cred)
    store.add_scram(verifier, key_id="pw-a")
    store.revoke(key_id="k1")
    entries = store.list()
    assert [(e.method.value, e.identity, e.key_id) for e in entries] == [
        ("psk", b"rof-1", "k1"),
        ("password", "alice", "pw-a"),
    ]
    assert entries[0].state(dt.datetime.now(dt.UTC)) == "revoked"
    assert entries[1].iterations == ITERATIONS and entries[1].state(NOW) == "active"
    text = repr(entries) + str([e.as_dict() for e in entries])
    assert_no_secret(text, cred.key, verifier.stored_key, verifier.server_key, verifier.salt)


def test_secrets_never_reach_repr_errors_or_debug_logs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cred = psk(b"rof-1", key_id="k1")
    verifier = make_verifier("alice", "pencil", iterations=ITERATIONS)
    texts = [repr(store), str(store)]
    texts.append(repr(store.add_psk(cred)))
    texts.append(repr(store.add_scram(verifier)))
    texts.append(repr(store.psk_credentials(b"rof-1", at=NOW)))
    texts.append(repr(store.scram_verifier("alice", at=NOW)))
    with pytest.raises(Capif8secError) as info:
        store.add_psk(PskCredential(b"rof-2", cred.key, "ccf.example"))
    texts += [str(info.value), repr(info.value)]
    store.revoke(identity=b"rof-1")
    texts.append(repr(store.list()))
    secrets_ = (cred.key, verifier.stored_key, verifier.server_key)
    assert caplog.records, "the store logs its changes"
    assert_no_secret(caplog.text + "\n".join(texts), *secrets_)
    assert_no_secret("\n".join(str(r.args) for r in caplog.records), *secrets_)


# ----------------------------------------------------------------------------- the KEK


def test_kek_is_never_shown(tmp_path: Path) -> None:
    kek = KeyEncryptionKey.generate()
    material = kek._material
    assert repr(kek) == str(kek) == "KeyEncryptionKey(<redacted>)"
    hexkey = material.hex()
    assert KeyEncryptionKey.from_hex(hexkey) == kek
    assert KeyEncryptionKey.from_hex(f"  {hexkey.upper()}\n") == kek
    assert KeyEncryptionKey.from_hex(hexkey) != KeyEncryptionKey.generate()
    path = tmp_path / "kek"
    path.write_text(hexkey + "\n")
    assert KeyEncryptionKey.from_file(path) == kek
    for bad in (hexkey[:-1], hexkey + "00", hexkey[:-1] + "g", "", "0x" + hexkey[2:]):
        with pytest.raises(UsageError) as info:
            KeyEncryptionKey.from_hex(bad)
        assert_no_secret(str(info.value), material)
    with pytest.raises(UsageError):
        KeyEncryptionKey(material[:31])
    with pytest.raises(UsageError, match="cannot read"):
        KeyEncryptionKey.from_file(tmp_path / "missing")


# ----------------------------------------------------------------------------- SQLite file


def _db_files(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def _all_values(db: Path) -> list[object]:
    conn = sqlite3.connect(db)
    try:
        values: list[object] = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                values.extend(row)
        return values
    finally:
        conn.close()


def test_the_database_alone_reveals_no_key(db: Path, kek: KeyEncryptionKey) -> None:
    creds = [psk(b"rof-%d" % i) for i in range(20)]
    verifier = make_verifier("alice", "correct horse", iterations=ITERATIONS)
    secrets_ = [c.key for c in creds] + [verifier.stored_key, verifier.server_key, kek._material]
    store = SqliteStore(db, kek)
    store.add_psks(creds)
    store.add_scram(verifier)
    assert_no_secret(_db_files(db), *secrets_, b"correct horse")  # while open (WAL)
    store.close()
    assert_no_secret(_db_files(db), *secrets_, b"correct horse")  # after the checkpoint
    values = _all_values(db)
    assert len(values) > 100
    for value in values:
        if isinstance(value, bytes | str):
            assert_no_secret(value, *secrets_)
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    # ... and with the KEK, everything comes back.
    with SqliteStore(db, kek, create=False) as again:
        assert [c.key for c in again.psk_credentials(b"rof-7", at=NOW)] == [creds[7].key]
        found = again.scram_verifier("alice", at=NOW)
        assert found is not None and found.stored_key == verifier.stored_key


def test_wrong_kek_is_a_typed_error(db: Path, kek: KeyEncryptionKey) -> None:
    SqliteStore(db, kek).close()
    other = KeyEncryptionKey.generate()
    with pytest.raises(KekMismatch, match="key-encryption key does not match") as info:
        SqliteStore(db, other)
    assert isinstance(info.value, CredentialStoreError)
    assert_no_secret(str(info.value), kek._material, other._material)


def _swap(db: Path, table: str, column: str, a: object, b: object) -> None:
    conn = sqlite3.connect(db)
    with conn:
        rows = {
            key: conn.execute(
                f"SELECT nonce, ciphertext FROM {table} WHERE {column} = ?",
                (key,),
            ).fetchone()
            for key in (a, b)
        }
        for key, other in ((a, b), (b, a)):
            conn.execute(
                f"UPDATE {table} SET nonce = ?, ciphertext = ? WHERE {column} = ?",
                (*rows[other], key),
            )
    conn.close()


def test_swapped_ciphertexts_are_refused(db: Path, kek: KeyEncryptionKey) -> None:
    store = SqliteStore(db, kek)
    store.add_psk(psk(b"rof-1", key_id="a"))
    store.add_psk(psk(b"rof-2", key_id="b"))
    store.add_scram(make_verifier("alice", "one", iterations=ITERATIONS))
    store.add_scram(make_verifier("bob", "two", iterations=ITERATIONS))
    _swap(db, "psk", "key_id", "a", "b")
    _swap(db, "scram", "username", b"alice", b"bob")
    with pytest.raises(CredentialIntegrityError, match="integrity"):
        store.psk_credentials(b"rof-1", at=NOW)
    with pytest.raises(CredentialIntegrityError):
        store.psk_credentials(b"rof-2", at=NOW)
    with pytest.raises(CredentialIntegrityError):
        store.scram_verifier("alice", at=NOW)
    store.close()


def test_rebinding_a_row_to_another_identity_is_refused(db: Path, kek: KeyEncryptionKey) -> None:
    store = SqliteStore(db, kek)
    store.add_psk(psk(b"rof-1", key_id="a", not_after=NOW + HOUR))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE psk SET identity = ? WHERE key_id = 'a'", (b"attacker",))
    with pytest.raises(CredentialIntegrityError):
        store.psk_credentials(b"attacker", at=NOW)
    with conn:  # back to its identity, but with its expiry pushed out
        conn.execute(
            "UPDATE psk SET identity = ?, not_after = not_after + 3600000000 WHERE key_id = 'a'",
            (b"rof-1",),
        )
    conn.close()
    with pytest.raises(CredentialIntegrityError):
        store.psk_credentials(b"rof-1", at=NOW)
    store.close()


def test_a_short_key_written_behind_the_store_is_refused(db: Path, kek: KeyEncryptionKey) -> None:
    from capif8sec.auth import stores

    store = SqliteStore(db, kek)
    store.add_psk(psk(b"rof-1", key_id="a"))
    aad = stores._aad(stores._PSK_AAD, b"rof-1", "a", "ccf.example", None, None)
    nonce, ciphertext = store._seal(b"k" * 15, aad)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE psk SET nonce = ?, ciphertext = ?", (nonce, ciphertext))
    conn.close()
    with pytest.raises(CredentialIntegrityError, match="R42"):
        store.psk_credentials(b"rof-1", at=NOW)
    store.close()


def test_unusable_files_are_typed_errors(tmp_path: Path, kek: KeyEncryptionKey) -> None:
    with pytest.raises(CredentialStoreError, match="no credential database"):
        SqliteStore(tmp_path / "missing.db", kek, create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CredentialStoreError, match="not a capif8sec credential database"):
        SqliteStore(junk, kek)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(CredentialStoreError, match="not a capif8sec credential database"):
        SqliteStore(other, kek)
    newer = tmp_path / "newer.db"
    SqliteStore(newer, kek).close()
    conn = sqlite3.connect(newer)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(CredentialStoreError, match="schema version 99"):
        SqliteStore(newer, kek)
    for bad in (":memory:", ""):
        with pytest.raises(UsageError):
            SqliteStore(bad, kek)
    closed = SqliteStore(tmp_path / "closed.db", kek)
    closed.close()
    with pytest.raises(CredentialStoreError, match="closed"):
        closed.psk_credentials(b"rof-1", at=NOW)


def test_lookups_use_the_indexes(db: Path, kek: KeyEncryptionKey) -> None:
    """Flat lookups: identity and username are answered from an index, never a scan."""
    SqliteStore(db, kek).close()
    conn = sqlite3.connect(db)
    plans = [
        ("SELECT * FROM psk WHERE identity = ? AND (not_before IS NULL OR not_before <= ?)"
         " ORDER BY id DESC", (b"x", 0)),
        ("SELECT * FROM scram WHERE username = ? ORDER BY id DESC LIMIT 1", (b"x",)),
    ]  # fmt: skip
    for query, params in plans:
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + query, params))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
    conn.close()


def test_persistence_across_reopen(db: Path, kek: KeyEncryptionKey) -> None:
    cred = psk(b"rof-1", key_id="k", not_before=NOW, not_after=NOW + HOUR)
    with SqliteStore(db, kek) as store:
        store.add_psk(cred)
    with SqliteStore(db, kek) as store:
        (found,) = store.psk_credentials(b"rof-1", at=NOW)
        assert found.key == cred.key and found.validity == cred.validity
        with pytest.raises(CredentialConflict):
            store.add_psk(PskCredential(b"rof-2", cred.key, "ccf.example"))


# ----------------------------------------------------------------------------- concurrency


_inherited: list[SqliteStore] = []


def _lookup_inherited(_: int) -> int:
    store = _inherited[0]
    return len(store.psk_credentials(b"rof-1", at=dt.datetime.now(dt.UTC)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connection(db: Path, kek: KeyEncryptionKey) -> None:
    store = SqliteStore(db, kek)
    store.add_psk(psk(b"rof-1"))  # the parent's connection is open when the children fork
    # (this test runs before the module's spawn pool starts threads: fork() and threads mix badly)
    _inherited[:] = [store]
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert pool.map(_lookup_inherited, [0, 1]) == [1, 1]
        assert _lookup_inherited(0) == 1  # the parent's connection still works
    finally:
        _inherited.clear()
        store.close()


# One pool of spawned processes serves every multi-process test (spawning is the slow part).
# Workers wait on ``_go`` so that they write at the same moment as the parent's threads.
_go: list[MpEvent] = []


def _init_worker(go: MpEvent) -> None:
    _go[:] = [go]


@pytest.fixture(scope="module")
def procs() -> Iterator[tuple[multiprocessing.pool.Pool, MpEvent]]:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    with ctx.Pool(3, initializer=_init_worker, initargs=(go,)) as pool:
        yield pool, go


def _write_many(db: str, kek_hex: str, worker: str, count: int) -> list[str]:
    """Add ``count`` PSKs (singly and in small batches), look each up, revoke every 5th."""
    store = SqliteStore(db, KeyEncryptionKey.from_hex(kek_hex), timeout=60)
    _go[0].wait(timeout=60)
    try:
        now = dt.datetime.now(dt.UTC)
        ids = []
        for i in range(0, count, 2):
            batch = [psk(f"{worker}-{j}".encode(), key_id=f"{worker}-{j}") for j in (i, i + 1)]
            if i % 4:
                store.add_psks(batch)
            else:
                for cred in batch:
                    store.add_psk(cred)
            for cred in batch:
                assert [c.key for c in store.psk_credentials(cred.identity, at=now)] == [cred.key]
                ids.append(cred.key_id)
        for kid in ids[::5]:
            assert store.revoke(key_id=kid) == 1
        return ids
    finally:
        store.close()


def test_concurrent_threads_and_processes_lose_no_writes(
    db: Path, kek: KeyEncryptionKey, procs: tuple[multiprocessing.pool.Pool, MpEvent]
) -> None:
    pool, go = procs
    SqliteStore(db, kek).close()  # created up front; creation races are tested separately
    kek_hex = kek._material.hex()
    per_worker = 16
    errors: list[BaseException] = []
    _go[:] = [go]

    def thread_body(name: str) -> None:
        try:
            _write_many(str(db), kek_hex, name, per_worker)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pending = pool.starmap_async(
        _write_many, [(str(db), kek_hex, f"proc{i}", per_worker) for i in range(3)]
    )
    threads = [threading.Thread(target=thread_body, args=(f"thr{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    results = pending.get(timeout=120)
    assert not errors, errors
    with SqliteStore(db, kek) as store:
        entries = store.list()
        assert len(entries) == 6 * per_worker
        assert len({e.key_id for e in entries}) == 6 * per_worker
        revoked = {e.key_id for e in entries if e.validity.revoked_at is not None}
        assert revoked == {kid for ids in results for kid in ids[::5]} | {
            f"thr{i}-{j}" for i in range(3) for j in range(0, per_worker, 5)
        }
        now = dt.datetime.now(dt.UTC)
        assert store.psk_credentials(b"proc2-1", at=now)
        assert store.psk_credentials(b"proc2-0", at=now) == []


def _create_and_add(db: str, kek_hex: str, n: int) -> None:
    with SqliteStore(db, KeyEncryptionKey.from_hex(kek_hex)) as store:
        store.add_psk(psk(b"rof-%d" % n))


def test_concurrent_creation_of_one_database(
    tmp_path: Path, kek: KeyEncryptionKey, procs: tuple[multiprocessing.pool.Pool, MpEvent]
) -> None:
    """Four processes open (and so create) one new file at once; none sees "locked"."""
    pool, _ = procs
    kek_hex = kek._material.hex()
    for attempt in range(10):
        db = str(tmp_path / f"new-{attempt}.db")
        pending = pool.starmap_async(_create_and_add, [(db, kek_hex, n) for n in range(3)])
        _create_and_add(db, kek_hex, 3)
        pending.get(timeout=60)
        with SqliteStore(db, kek) as store:
            assert len(store.list()) == 4


def _revoke_in_child(db: str, kek_hex: str) -> int:
    with SqliteStore(db, KeyEncryptionKey.from_hex(kek_hex)) as store:
        return store.revoke(identity=b"rof-1")


def test_r62_revocation_in_another_process_is_seen_at_once(
    db: Path, kek: KeyEncryptionKey, procs: tuple[multiprocessing.pool.Pool, MpEvent]
) -> None:
    pool, _ = procs
    store = SqliteStore(db, kek)
    store.add_psk(psk(b"rof-1"))
    now = dt.datetime.now(dt.UTC)
    assert store.psk_credentials(b"rof-1", at=now)  # this thread's connection is open
    assert pool.apply(_revoke_in_child, (str(db), kek._material.hex())) == 1
    assert store.psk_credentials(b"rof-1", at=now) == []
    store.close()


def test_each_thread_has_its_own_connection(db: Path, kek: KeyEncryptionKey) -> None:
    store = SqliteStore(db, kek)
    seen: list[int] = []
    get: Callable[[], object] = store._conn
    seen.append(id(get()))
    t = threading.Thread(target=lambda: seen.append(id(get())))
    t.start()
    t.join()
    assert seen[0] != seen[1] and id(get()) == seen[0]
    store.close()
