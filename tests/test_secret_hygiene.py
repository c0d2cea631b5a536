"""Secret hygiene (issue 7): no PSK, password, private key, KEK or SCRAM key leaks anywhere.

Every failure path is driven -- wrong PSK (TLS-level on Python >= 3.13, and in-channel), wrong
password (SCRAM), unknown identities and users, revoked credentials, a wrong key-encryption key,
altered database rows, key conflicts (R44), bad PSK files, bad key files and key passwords
(``Identity.from_files``), the ``credentials`` CLI -- with the real code paths: the reference AzF
endpoint (``capif8sec.integrations.azf.serve``) over loopback TLS for the network ones.  All
logging is captured at DEBUG (root logger; every ``capif8sec`` logger set to DEBUG and
propagating).  Then no form of any secret -- raw bytes, hex (lower and upper case), base64
(standard and URL-safe, with and without padding) and, for the pure secrets, any 16-character
window of those -- may appear in:

* any log record: its formatted message, ``msg``, ``args`` and formatted exception;
* any exception raised on the way: ``str``, ``repr``, ``args`` and the formatted traceback,
  along the whole ``__cause__`` / ``__context__`` chain;
* the ``repr`` and ``str`` of the objects involved: credentials, stores, the KEK, key files,
  authenticators, exchanges, clients, HTTP servers, TLS and authenticated peers;
* what the endpoint answered, and what the CLI printed.

The secrets: each PSK; each password and the SCRAM keys derived from it with :mod:`hashlib`
(SaltedPassword, ClientKey, StoredKey, ServerKey -- also for the wrong password the client
tried); each private key (PKCS#8 and traditional DER and PEM, the private scalar as bytes, hex
and decimal) and key-file password; the KEK.  R42, R44, R45, R51, R53, R54.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import logging
import os
import secrets
import sqlite3
import ssl
import string
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from capif8sec import tls
from capif8sec.auth.credentials import PskCredential, ScramVerifier
from capif8sec.auth.http import HttpPskClient, HttpScramClient, HttpScramServer, http_psk_server
from capif8sec.auth.inchannel import InChannelPskAuthenticator, InChannelPskClient
from capif8sec.auth.psk import TlsPskAuthenticator
from capif8sec.auth.pskfile import load_psk_file
from capif8sec.auth.scram import ScramAuthenticator, ScramClient, make_verifier
from capif8sec.auth.stores import KeyEncryptionKey, MemoryStore, SqliteStore
from capif8sec.cli import main as cli_main
from capif8sec.errors import Capif8secError
from capif8sec.integrations import azf, blocking
from capif8sec.testing import IssuedCert, TestPKI
from capif8sec.tls.binding import ChannelBinding
from capif8sec.tls.psk import HAS_PSK, psk_client_context, psk_server_context

pytestmark = pytest.mark.timeout(120)

CCF = "ccf.capif.example"
ITERATIONS = 4096  # the R53 floor: keeps PBKDF2 cheap
_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


# =========================================================================== the secrets


def _printable(length: int) -> str:
    """A random secret a person could type: its raw form is plain text in any output."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _b64_forms(data: bytes) -> list[str]:
    std, url = base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()
    return [std, std.rstrip("="), url, url.rstrip("=")]


def secret_forms(data: bytes) -> list[str]:
    """The usual printed forms of a secret byte string."""
    forms = [data.hex(), data.hex().upper(), *_b64_forms(data), repr(data)[2:-1]]
    forms.append(data.decode("latin-1"))
    with contextlib.suppress(UnicodeDecodeError):
        forms.append(data.decode("utf-8"))
    return forms


@dataclass
class Secrets:
    """Every secret of the test, by name; ``exact`` forms must not appear whole, ``windows``
    (16-character slices of the hex and base64 forms, and 12-character slices of the raw form)
    must not appear at all -- a truncated or re-wrapped leak is a leak."""

    exact: dict[str, set[str]] = field(default_factory=dict)
    windows: dict[int, dict[str, str]] = field(default_factory=lambda: {12: {}, 16: {}})

    def add(self, name: str, data: bytes, *, sliding: bool = True) -> None:
        forms = {f for f in secret_forms(data) if len(f) >= 8}
        self.exact.setdefault(name, set()).update(forms)
        if not sliding:
            return
        for form in (data.hex(), data.hex().upper(), *_b64_forms(data)):
            for i in range(len(form) - 15):
                self.windows[16].setdefault(form[i : i + 16], name)
        raw = data.decode("latin-1")
        for i in range(len(raw) - 11):
            self.windows[12].setdefault(raw[i : i + 12], name)

    def add_text(self, name: str, text: str) -> None:
        self.add(name, text.encode("utf-8"))

    def add_scram(self, name: str, password: str, salt: bytes, iterations: int) -> None:
        """The SCRAM keys of ``password`` (RFC 5802), computed here with hashlib."""
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        self.add(f"{name} SaltedPassword", salted)
        self.add(f"{name} ClientKey", client_key)
        self.add(f"{name} StoredKey", hashlib.sha256(client_key).digest())
        self.add(f"{name} ServerKey", hmac.digest(salted, b"Server Key", "sha256"))

    def add_private_key(self, name: str, key: Any) -> None:
        """A private key: its encodings as whole forms (they also hold the public key, so no
        windows), and the private scalar in every form, windows included."""
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        none = serialization.NoEncryption()
        formats = {
            "PKCS8": serialization.PrivateFormat.PKCS8,
            "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        }
        encodings = {"DER": serialization.Encoding.DER, "PEM": serialization.Encoding.PEM}
        for fmt_name, fmt in formats.items():
            for enc_name, enc in encodings.items():
                self.add(
                    f"{name} {fmt_name} {enc_name}",
                    key.private_bytes(enc, fmt, none),
                    sliding=False,
                )
        value = key.private_numbers().private_value
        self.add(f"{name} scalar", value.to_bytes(32, "big"))
        self.exact[f"{name} scalar"] |= {f"{value:x}", f"{value:X}", str(value)}


@dataclass
class Haystack:
    """Everything a secret must not reach, each piece labelled (a failure names the place and
    the secret, never the secret's value)."""

    pieces: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.pieces.append((label, text))

    def objects(self, label: str, *objects: object) -> None:
        for obj in objects:
            self.add(f"{label}: repr({type(obj).__name__})", repr(obj))
            self.add(f"{label}: str({type(obj).__name__})", str(obj))

    def exception(self, label: str, exc: BaseException) -> None:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            name = f"{label}: {type(current).__name__}"
            self.add(f"{name} str", str(current))
            self.add(f"{name} repr", repr(current))
            self.add(f"{name} args", repr(current.args))
            current = current.__cause__ or current.__context__
        self.add(f"{label}: traceback", "".join(traceback.format_exception(exc)))

    def failing(self, label: str, call: Callable[[], object]) -> BaseException:
        """Run ``call``, which must raise; record the exception."""
        try:
            call()
        except Exception as exc:
            self.exception(label, exc)
            return exc
        raise AssertionError(f"{label}: expected a failure")

    def assert_clean(self, secrets_: Secrets) -> None:
        leaks: list[str] = []
        for label, text in self.pieces:
            for name, forms in secrets_.exact.items():
                if any(form in text for form in forms):
                    leaks.append(f"{name} in {label}")
            for size, table in secrets_.windows.items():
                for i in range(len(text) - size + 1):
                    owner = table.get(text[i : i + size])
                    if owner is not None:
                        leaks.append(f"part of {owner} in {label}")
                        break
        assert not leaks, "secrets leaked:\n" + "\n".join(sorted(set(leaks)))


class _Records(logging.Handler):
    """Keeps, per log record, the formatted message and exception, ``msg`` and ``args``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        parts = [self.format(record), repr(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
        if record.stack_info:
            parts.append(record.stack_info)
        self.texts.append("\n".join(parts))


@contextmanager
def capturing() -> Iterator[_Records]:
    """All log records at DEBUG: the root logger, and every capif8sec logger set to DEBUG."""
    handler = _Records()
    root = logging.getLogger()
    saved = root.level
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(("capif8sec", "asyncio"))
    ]
    before = [(lg.level, lg.propagate, lg.disabled) for lg in loggers]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.propagate, lg.disabled = True, False
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for lg, (level, propagate, disabled) in zip(loggers, before, strict=True):
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


@pytest.fixture
def records() -> Iterator[_Records]:
    with capturing() as handler:
        yield handler


def _finish(hay: Haystack, records: _Records, world: World) -> None:
    assert records.count, "nothing was logged: the log capture is not working"
    for i, text in enumerate([*world.setup_logs, *records.texts]):
        hay.add(f"log record {i}", text)
    if os.environ.get("CAPIF8SEC_HYGIENE_STATS"):
        size = sum(len(text) for _, text in hay.pieces)
        print(f"\n{records.count} log records, {len(hay.pieces)} pieces, {size} characters")
    hay.assert_clean(world.secrets)


# =========================================================================== the world


@dataclass
class World:
    """The CCF (certificate, key, credential database) and every secret it or its ROFs hold."""

    tmp: Path
    pki: TestPKI
    ccf: IssuedCert
    rof: IssuedCert
    kek: KeyEncryptionKey
    db: Path
    store: SqliteStore
    psks: dict[str, PskCredential]
    passwords: dict[str, str]
    verifiers: dict[str, ScramVerifier]
    secrets: Secrets
    #: What was logged while the world was built (credentials added, revoked).
    setup_logs: list[str]


def _corrupt(db: Path, table: str, column: str, value: str) -> None:
    """Flip one byte of a stored ciphertext (SQL, as an attacker with the file would)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        (ct,) = conn.execute(
            f"SELECT ciphertext FROM {table} WHERE {column} = ?", (value,)
        ).fetchone()
        ct = bytes([ct[0] ^ 1]) + ct[1:]
        conn.execute(f"UPDATE {table} SET ciphertext = ? WHERE {column} = ?", (ct, value))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hygiene")
    pki = TestPKI()
    ccf, rof = pki.server_cert(), pki.client_cert()
    s = Secrets()
    kek = KeyEncryptionKey.generate()
    s.add("KEK", kek._material)
    psks = {
        "rof-1": PskCredential(b"rof-1", secrets.token_bytes(32), CCF, key_id="k-rof-1"),
        "rof-typed": PskCredential(b"rof-typed", _printable(32).encode(), CCF, key_id="k-typed"),
        "rof-revoked": PskCredential(b"rof-revoked", secrets.token_bytes(32), CCF, key_id="k-rev"),
        "rof-altered": PskCredential(b"rof-altered", secrets.token_bytes(32), CCF, key_id="k-alt"),
    }
    for name, cred in psks.items():
        s.add(f"PSK {name}", cred.key)
    passwords = {user: _printable(24) for user in ("alice", "bob", "carol")}
    verifiers = {u: make_verifier(u, p, iterations=ITERATIONS) for u, p in passwords.items()}
    for user, password in passwords.items():
        s.add_text(f"password {user}", password)
        s.add_scram(f"SCRAM {user}", password, verifiers[user].salt, ITERATIONS)
    # the control: the SCRAM keys computed here are the ones the verifier holds
    stored = hashlib.sha256(
        hmac.digest(
            hashlib.pbkdf2_hmac(
                "sha256", passwords["alice"].encode(), verifiers["alice"].salt, ITERATIONS
            ),
            b"Client Key",
            "sha256",
        )
    ).digest()
    assert stored == verifiers["alice"].stored_key
    s.add_private_key("CCF key", ccf.private_key)
    s.add_private_key("ROF key", rof.private_key)
    db = tmp / "credentials.db"
    with capturing() as setup:
        store = SqliteStore(db, kek)
        store.add_psks(list(psks.values()))
        for user, verifier in verifiers.items():
            store.add_scram(verifier, key_id=f"pw-{user}")
        store.revoke(identity=b"rof-revoked")
        store.revoke(username="bob")
    _corrupt(db, "psk", "key_id", "k-alt")
    _corrupt(db, "scram", "key_id", "pw-carol")
    yield World(tmp, pki, ccf, rof, kek, db, store, psks, passwords, verifiers, s, setup.texts)
    store.close()


@contextmanager
def serving(ctx: tls.CapifContext, app: azf.AzfApp) -> Iterator[int]:
    """``capif8sec.integrations.azf.serve`` in a thread, on a loopback port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())

        def on_ready(_host: str, number: int) -> None:
            port.append(number)
            ready.set()

        await azf.serve(ctx, app=app, handshake_timeout=5, on_ready=on_ready, stop=stop[0])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the endpoint did not start"
        yield port[0]
    finally:
        if stop:
            loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    peer: tls.TlsPeer


def request(
    port: int, ctx: ssl.SSLContext, hay: Haystack, authorization: str | None = None
) -> Answer:
    """One ``GET /whoami`` on a new connection; what came back is added to the haystack."""
    sock, peer = blocking.connect("127.0.0.1", port, ctx, server_hostname=CCF)
    head = f"GET /whoami HTTP/1.1\r\nHost: {CCF}\r\n"
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    sock.sendall((head + "\r\n").encode())
    data = b""
    sock.settimeout(10)
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    sock.close()
    hay.add("HTTP response", data.decode("latin-1"))
    hay.objects("client side", peer)
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.lower(), []).append(value.strip())
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/1.1 ") else 0
    return Answer(status, headers, body, peer)


# =========================================================================== the checker


def test_the_leak_check_finds_every_form(records: _Records) -> None:
    """The control: each form of a planted secret -- whole or as a window, in a log record's
    args, a chained exception or a repr -- is found (else the hygiene tests prove nothing)."""
    secret = secrets.token_bytes(32)
    s = Secrets()
    s.add("planted", secret)
    planted = [*secret_forms(secret), secret.hex()[10:30], base64.b64encode(secret).decode()[5:25]]
    for form in planted:
        hay = Haystack()
        hay.add("clean", "nothing to see")
        hay.assert_clean(s)
        logging.getLogger("capif8sec.test").debug("value %s", form)
        hay.add("record", records.texts[-1])
        with pytest.raises(AssertionError, match="planted"):
            hay.assert_clean(s)
        hay = Haystack()
        try:
            try:
                raise ValueError(form)
            except ValueError:
                raise Capif8secError("outer") from None
        except Capif8secError as exc:
            exc.__cause__ = None
            hay.exception("chained", exc)  # only in __context__
        with pytest.raises(AssertionError, match="planted"):
            hay.assert_clean(s)


# =========================================================================== in-channel, real TLS


def _client_ctx(world: World) -> tls.CapifContext:
    return tls.client_context(
        present=tls.PRESENT_NO_CERTIFICATE,
        verify=tls.PeerVerification(world.pki.trust_anchor_pem, crls=[world.pki.crl()]),
    )


def _scram_login(port: int, ctx: ssl.SSLContext, hay: Haystack, user: str, password: str) -> int:
    first = request(port, ctx, hay)
    assert first.status == 401 and first.peer.channel_binding is not None
    scram = ScramClient(user, password, first.peer.channel_binding, max_iterations=ITERATIONS)
    client = HttpScramClient(scram)
    challenge = next(v for v in first.headers["www-authenticate"] if v.startswith("SCRAM"))
    second = request(port, ctx, hay, client.first(challenge))
    hay.objects(f"SCRAM client {user}", client, scram)
    if second.status != 401 or "www-authenticate" not in second.headers:
        return second.status
    third = request(port, ctx, hay, client.final(second.headers["www-authenticate"][0]))
    if third.status == 200:
        client.verify(third.headers["authentication-info"][0])
    hay.objects(f"SCRAM client {user}", client, scram)
    return third.status


def _psk_login(port: int, ctx: ssl.SSLContext, hay: Haystack, cred: PskCredential) -> int:
    first = request(port, ctx, hay)
    assert first.peer.channel_binding is not None
    inner = InChannelPskClient(credential=cred, binding=first.peer.channel_binding)
    client = HttpPskClient(inner)
    second = request(port, ctx, hay, client.first())
    assert second.status == 401
    third = request(port, ctx, hay, client.final(second.headers["www-authenticate"][0]))
    if third.status == 200:
        client.verify(third.headers["authentication-info"][0])
    hay.objects(f"PSK client {cred.identity!r}", client, inner, cred)
    return third.status


def test_in_channel_failures_over_real_tls_leak_nothing(world: World, records: _Records) -> None:
    """R45, R51-R54: SCRAM-SHA-256-PLUS and the in-channel PSK proof through the reference AzF
    endpoint over loopback TLS: the right credentials (the controls: 200), a wrong password, a
    wrong PSK, an unknown user and identity, revoked credentials, and credentials whose
    database row was altered (the store error reaches the endpoint's error log)."""
    hay = Haystack()
    s = world.secrets
    wrong_password = _printable(24)
    s.add_text("wrong password", wrong_password)
    s.add_scram("SCRAM wrong password", wrong_password, world.verifiers["alice"].salt, ITERATIONS)
    wrong_key = secrets.token_bytes(32)
    s.add("wrong PSK", wrong_key)
    scram_auth = ScramAuthenticator(world.store, unknown_user_iterations=ITERATIONS)
    psk_auth = InChannelPskAuthenticator(world.store, CCF)
    servers = [
        HttpScramServer(scram_auth.exchange, realm="capif8"),
        http_psk_server(psk_auth.exchange, realm="capif8"),
    ]
    app = azf.AzfApp(in_channel=servers)
    ctx = tls.server_context(
        present=tls.Identity(world.ccf.chain_pem, world.ccf.key_pem),
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
    )
    client_ctx = _client_ctx(world)
    with serving(ctx, app) as port:
        p = world.passwords
        assert _scram_login(port, client_ctx, hay, "alice", p["alice"]) == 200
        assert _scram_login(port, client_ctx, hay, "alice", wrong_password) == 401
        assert _scram_login(port, client_ctx, hay, "nobody", wrong_password) == 401
        assert _scram_login(port, client_ctx, hay, "bob", p["bob"]) == 401  # revoked
        # altered row: the store's integrity error reaches the endpoint's error log (500)
        assert _scram_login(port, client_ctx, hay, "carol", p["carol"]) != 200
        psk = world.psks
        assert _psk_login(port, client_ctx, hay, psk["rof-1"]) == 200
        assert _psk_login(port, client_ctx, hay, psk["rof-typed"]) == 200
        wrong = PskCredential(b"rof-1", wrong_key, CCF)
        assert _psk_login(port, client_ctx, hay, wrong) == 401
        assert (
            _psk_login(port, client_ctx, hay, PskCredential(b"rof-unknown", wrong_key, CCF)) == 401
        )
        assert _psk_login(port, client_ctx, hay, psk["rof-revoked"]) == 401
        assert _psk_login(port, client_ctx, hay, psk["rof-altered"]) == 401
    hay.objects("server side", app, ctx, scram_auth, psk_auth, *servers, world.store, world.kek)
    # The same exchanges sans I/O, for the reprs of the server-side objects and peers.
    binding = ChannelBinding(
        "tls-server-end-point",
        hashlib.sha256(world.ccf.cert.public_bytes(serialization.Encoding.DER)).digest(),
    )
    exchange = scram_auth.exchange(binding)
    client = ScramClient("alice", world.passwords["alice"], binding, max_iterations=ITERATIONS)
    client.verify(exchange.receive(client.final(exchange.receive(client.first()) or b"")) or b"")
    hay.objects("sans-I/O SCRAM", exchange, client, exchange.result(), exchange.result().as_dict())
    wrong_client = ScramClient("alice", wrong_password, binding, max_iterations=ITERATIONS)
    exchange = scram_auth.exchange(binding)
    final = wrong_client.final(exchange.receive(wrong_client.first()) or b"")
    hay.failing("SCRAM wrong password", lambda: exchange.receive(final))
    hay.failing("SCRAM result", exchange.result)
    hay.objects("sans-I/O SCRAM, refused", exchange, wrong_client)
    psk_exchange = psk_auth.exchange(binding)
    inner = InChannelPskClient(credential=world.psks["rof-1"], binding=binding)
    inner.verify(
        psk_exchange.receive(inner.final(psk_exchange.receive(inner.first()) or b"")) or b""
    )
    hay.objects(
        "sans-I/O PSK", psk_exchange, inner, psk_exchange.result(), psk_exchange.result().as_dict()
    )
    _finish(hay, records, world)


# =========================================================================== TLS-level PSK


@pytest.mark.skipif(
    not HAS_PSK,
    reason=f"TLS-level PSK needs ssl PSK callbacks (Python >= 3.13); this is Python {_VERSION}",
)
def test_tls_level_psk_failures_leak_nothing(world: World, records: _Records) -> None:
    """R42-R45: TLS 1.3 external PSK handshakes against the reference AzF endpoint over
    loopback: the right key (the control: 200), a wrong key, an unknown identity, a revoked
    key, a key whose database row was altered, and a client credential Python's ssl cannot
    carry."""
    hay = Haystack()
    s = world.secrets
    wrong_key = secrets.token_bytes(32)
    s.add("wrong TLS PSK", wrong_key)
    ctx = psk_server_context(store=world.store, ccf_identity=CCF)
    app = azf.AzfApp()
    with serving(ctx, app) as port:
        good = psk_client_context(credential=world.psks["rof-1"])
        assert request(port, good, hay).status == 200
        assert (
            request(port, psk_client_context(credential=world.psks["rof-typed"]), hay).status == 200
        )
        for cred in (
            PskCredential(b"rof-1", wrong_key, CCF),
            PskCredential(b"rof-unknown", wrong_key, CCF),
            world.psks["rof-revoked"],
            world.psks["rof-altered"],
        ):
            client_ctx = psk_client_context(credential=cred)
            hay.failing(f"TLS PSK {cred.identity!r}", partial(request, port, client_ctx, hay))
            hay.objects("TLS PSK client", cred, client_ctx)
    hay.failing(
        "non-UTF-8 identity",
        lambda: psk_client_context(credential=PskCredential(b"rof-\xff", wrong_key, CCF)),
    )
    hay.objects("server side", ctx, app, TlsPskAuthenticator(), world.store)
    _finish(hay, records, world)


# =========================================================================== stores and the KEK


def _cli(hay: Haystack, label: str, *argv: str, stdin: str = "") -> int:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["credentials", *argv])
    finally:
        sys.stdin = saved
    hay.add(f"{label}: stdout", out.getvalue())
    hay.add(f"{label}: stderr", err.getvalue())
    return code


def test_store_failures_leak_nothing(
    world: World, records: _Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R44, R53, R62: a wrong KEK, altered rows, unknown and revoked credentials, a key stored
    twice (R44), KEK text and files that are not a KEK, and the same through the
    ``credentials`` CLI."""
    hay = Haystack()
    s = world.secrets
    other_kek = KeyEncryptionKey.generate()
    s.add("other KEK", other_kek._material)
    store = world.store
    hay.failing("wrong KEK", lambda: SqliteStore(world.db, other_kek))
    hay.failing(
        "altered PSK row", lambda: store.psk_credentials(b"rof-altered", at=dt.datetime.now(dt.UTC))
    )
    hay.failing(
        "altered SCRAM row", lambda: store.scram_verifier("carol", at=dt.datetime.now(dt.UTC))
    )
    assert store.psk_credentials(b"rof-unknown", at=dt.datetime.now(dt.UTC)) == []
    assert store.psk_credentials(b"rof-revoked", at=dt.datetime.now(dt.UTC)) == []
    assert store.scram_verifier("bob", at=dt.datetime.now(dt.UTC)) is None
    hay.objects(
        "lookups",
        store.psk_credentials(b"rof-1", at=dt.datetime.now(dt.UTC)),
        store.scram_verifier("alice", at=dt.datetime.now(dt.UTC)),
    )
    hay.objects("listing", store.list(), [info.as_dict() for info in store.list()])
    again = PskCredential(b"rof-again", world.psks["rof-1"].key, CCF)
    hay.failing("R44 conflict, SQLite", lambda: store.add_psk(again))
    memory = MemoryStore()
    memory.add_psk(world.psks["rof-1"])
    hay.failing("R44 conflict, memory", lambda: memory.add_psk(again))
    hay.objects(
        "stores",
        store,
        memory,
        world.kek,
        other_kek,
        *world.psks.values(),
        *world.verifiers.values(),
    )
    kek_hex = world.kek._material.hex()
    kek_file = world.tmp / "kek.txt"
    for label, text in (
        ("KEK cut short", kek_hex[:-1]),
        ("KEK too long", kek_hex + "00"),
        ("KEK with a stray character", kek_hex[:30] + "g" + kek_hex[31:]),
        ("KEK with inner space", kek_hex[:32] + " " + kek_hex[32:]),
    ):
        hay.failing(label, partial(KeyEncryptionKey.from_hex, text))
        kek_file.write_text(text)
        hay.failing(f"{label}, file", lambda: KeyEncryptionKey.from_file(kek_file))
    kek_file.write_bytes(kek_hex.encode() + b"\xff\n")
    hay.failing("KEK file not ASCII", lambda: KeyEncryptionKey.from_file(kek_file))
    # the CLI: a wrong KEK, a short key, a key stored twice, a password
    db = str(world.tmp / "cli.db")
    monkeypatch.setenv("CAPIF8SEC_KEK", kek_hex)
    short = secrets.token_bytes(15)
    s.add("short PSK", short)
    cli_key = secrets.token_bytes(32)
    s.add("CLI PSK", cli_key)
    cli_password = _printable(24)
    s.add_text("CLI password", cli_password)
    base = ["--db", db, "--ccf", CCF]
    assert (
        _cli(hay, "add-psk", "add-psk", *base, "--identity", "r1", "--key-hex", cli_key.hex()) == 0
    )
    assert _cli(hay, "short", "add-psk", *base, "--identity", "r2", "--key-hex", short.hex()) == 2
    assert (
        _cli(hay, "twice", "add-psk", *base, "--identity", "r3", "--key-hex", cli_key.hex().upper())
        == 2
    )
    odd = cli_key.hex()[:-1]
    assert _cli(hay, "odd", "add-psk", *base, "--identity", "r4", "--key-hex", odd) == 2
    assert (
        _cli(
            hay,
            "stdin",
            "add-psk",
            *base,
            "--identity",
            "r5",
            "--key-hex",
            "-",
            stdin=short.hex() + "\n",
        )
        == 2
    )
    pw = [
        "add-password",
        "--db",
        db,
        "--username",
        "dave",
        "--password-stdin",
        "--iterations",
        "4096",
    ]
    assert _cli(hay, "password", *pw, stdin=cli_password + "\n") == 0
    assert _cli(hay, "list", "list", "--db", db, "--format", "json") == 0
    monkeypatch.setenv("CAPIF8SEC_KEK", other_kek._material.hex())
    assert _cli(hay, "wrong KEK", "list", "--db", db) == 2
    _finish(hay, records, world)


# =========================================================================== PSK files


def test_psk_file_failures_leak_nothing(world: World, records: _Records) -> None:
    """R42, R44, R45: PSK files refused for a short key, odd or non-hex digits, a key given
    twice, extra fields, bad UTF-8, a duplicate identity: the error names the line, never the
    key (nor the rest of the line)."""
    hay = Haystack()
    s = world.secrets
    k1, k2, short = secrets.token_bytes(32), secrets.token_bytes(32), secrets.token_bytes(15)
    for name, key in (("file PSK 1", k1), ("file PSK 2", k2), ("file short PSK", short)):
        s.add(name, key)
    odd = k1.hex()[:-1]
    cases: dict[str, str | bytes] = {
        "short key": f"rof-1 {short.hex()}\n",
        "odd digits": f"rof-1 {odd}\n",
        "not hex": f"rof-1 {k1.hex()[:20]}zz{k1.hex()[22:]}\n",
        "key twice": f"rof-1 {k1.hex()}\nrof-2 {k1.hex().upper()}\n",
        "extra field": f"rof-1 {k1.hex()} {k2.hex()}\n",
        "identity twice": f"rof-1 {k1.hex()}\nrof-1 {k2.hex()}\n",
        "bad UTF-8": b"rof-1 " + k1.hex().encode() + b"\n\xff " + k2.hex().encode() + b"\n",
    }
    for label, text in cases.items():
        hay.failing(label, partial(load_psk_file, text, ccf_identity=CCF))
        path = world.tmp / "psk.txt"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        hay.failing(f"{label}, file", partial(load_psk_file, path, ccf_identity=CCF))
    good = load_psk_file(f"# ROFs\nrof-1 {k1.hex()}  # one\nrof-2\t{k2.hex()}\n", ccf_identity=CCF)
    hay.objects("loaded", good, *good)
    hay.failing("missing file", lambda: load_psk_file(world.tmp / "nope.txt", ccf_identity=CCF))
    logging.getLogger("capif8sec.test").info("PSK files checked")  # the capture works
    _finish(hay, records, world)


# =========================================================================== key files


def test_key_file_failures_leak_nothing(world: World, records: _Records) -> None:
    """R27: ``Identity.from_files`` and the context builders on an encrypted key without its
    password or with a wrong one, a damaged or truncated key file, a key that does not match the
    certificate, a missing file: a TlsConfigError that holds no key material and no password."""
    hay = Haystack()
    s = world.secrets
    key_password, wrong_password = _printable(20).encode(), _printable(20).encode()
    s.add("key-file password", key_password)
    s.add("wrong key-file password", wrong_password)
    key = world.ccf.private_key
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(key_password),
    )
    pem = world.ccf.key_pem
    middle = len(pem) // 2
    damaged = pem[:middle] + bytes([pem[middle] ^ 0x20]) + pem[middle + 1 :]
    chain, key_file = world.tmp / "chain.pem", world.tmp / "key.pem"
    chain.write_bytes(world.ccf.chain_pem)
    verify = tls.PeerVerification(world.pki.trust_anchor_pem, crls=[world.pki.crl()])
    cases: list[tuple[str, bytes, bytes | None]] = [
        ("encrypted, no password", encrypted, None),
        ("encrypted, wrong password", encrypted, wrong_password),
        ("damaged", damaged, None),
        ("truncated", pem[: len(pem) // 3], None),
        ("not the certificate's key", world.rof.key_pem, None),
        (
            "DER in a PEM file",
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            None,
        ),
        ("the chain as the key", world.ccf.chain_pem, None),
    ]
    for label, data, password in cases:
        key_file.write_bytes(data)
        identity = tls.Identity.from_files(chain, key_file, password)
        hay.objects(label, identity)
        hay.failing(
            f"{label}, server",
            partial(
                tls.server_context, present=identity, verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED
            ),
        )
        hay.failing(
            f"{label}, client", partial(tls.client_context, present=identity, verify=verify)
        )
    key_file.write_bytes(encrypted)
    identity = tls.Identity.from_files(chain, key_file, key_password)  # the control: it works
    ctx = tls.server_context(present=identity, verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED)
    hay.objects("the right password", identity, ctx)
    hay.failing("missing key file", lambda: tls.Identity.from_files(chain, world.tmp / "nope.pem"))
    logging.getLogger("capif8sec.test").info("key files checked")  # the capture works
    _finish(hay, records, world)
