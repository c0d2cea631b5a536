"""TLS-level external PSK (R42-R45, R47, R48, R62): real loopback handshakes, Python 3.13+.

capif8sec's PSK client (:func:`psk_client_context`) against its PSK server
(:func:`psk_server_context`), through :mod:`capif8sec.integrations.blocking`, plain threads and
:mod:`capif8sec.integrations.aio`.  Every accepted handshake is followed by the post-handshake
check, which must say *which* authentication happened ("psk", no certificate) and *whose* PSK
it was (the identity attributed to this very connection, never to a neighbour).

Python's ``ssl`` has PSK callbacks from 3.13 only (platform notes): on older interpreters these
tests skip, and one test shows every builder refuses with :class:`PskUnavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import secrets
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from capif8sec import tls
from capif8sec.auth.base import Method
from capif8sec.auth.credentials import PskCredential, Validity
from capif8sec.auth.psk import TlsPskAuthenticator
from capif8sec.auth.stores import MemoryStore
from capif8sec.errors import AuthenticationFailed, HandshakeRejected, TlsConfigError, UsageError
from capif8sec.integrations import aio, blocking
from capif8sec.testing import TestPKI
from capif8sec.tls.psk import (
    HAS_PSK,
    PSK_TLS12_SUITES,
    PSK_TLS13_SUITES,
    PskUnavailable,
    psk_client_context,
    psk_server_context,
)

CCF = "ccf-1"
OTHER_CCF = "ccf-2"
TIMEOUT = 5.0
_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

needs_psk = pytest.mark.skipif(
    not HAS_PSK,
    reason=f"TLS-level PSK needs ssl PSK callbacks (Python >= 3.13); this is Python {_VERSION}",
)
pytestmark = pytest.mark.timeout(60)

TLS12 = ssl.TLSVersion.TLSv1_2
#: Parametrisation over the two PSK protocol versions: None = the client's default (TLS 1.3).
VERSIONS = pytest.mark.parametrize("max_version", [None, TLS12], ids=["tls1.3", "tls1.2-dhe-psk"])


# --------------------------------------------------------------------------- fixtures, helpers


def _key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def _add(
    store: MemoryStore,
    identity: bytes,
    ccf: str = CCF,
    *,
    key: bytes | None = None,
    validity: Validity | None = None,
) -> PskCredential:
    """Store a fresh key (32 bytes unless given) for ``identity`` under a new key id."""
    cred = PskCredential(
        identity,
        key if key is not None else _key(),
        ccf,
        key_id=f"k-{secrets.token_hex(6)}",
        validity=validity or Validity(),
    )
    store.add_psk(cred)
    return cred


def _client(
    identity: bytes, key: bytes, max_version: ssl.TLSVersion | None = None
) -> tls.CapifContext:
    ctx = psk_client_context(credential=PskCredential(identity, key, CCF))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


Outcome = tls.TlsPeer | BaseException


class Server:
    """Accepts connections in a thread; each is handshaken and checked in its own thread.

    A checked peer is answered with its PSK identity and a newline (what the server attributed
    to *this* connection); a plain ``ssl.SSLContext`` (no capif8sec check) answers ``plain``.
    Every outcome -- a :class:`~capif8sec.tls.TlsPeer` or the exception -- is recorded.
    """

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.outcomes: list[Outcome] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _serve(self, raw: socket.socket) -> None:
        outcome: Outcome
        try:
            sock = self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except Exception as exc:
            raw.close()
            self._record(exc)
            return
        try:
            with sock:
                sock.settimeout(TIMEOUT)
                sock.do_handshake()
                if isinstance(self.ctx, tls.CapifContext):
                    outcome = tls.check_connection(sock)
                    reply = f"{outcome.psk_identity}\n".encode()
                else:
                    outcome = RuntimeError("a plain ssl server completed a handshake")
                    reply = b"plain\n"
                sock.sendall(reply)
        except Exception as exc:
            outcome = exc
        self._record(outcome)

    def _record(self, outcome: Outcome) -> None:
        with self._cond:
            self.outcomes.append(outcome)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 3 * TIMEOUT) -> list[Outcome]:
        """The first ``count`` outcomes (bounded wait)."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.outcomes) >= count, timeout), (
                f"the server recorded {len(self.outcomes)} outcomes, expected {count}"
            )
            return list(self.outcomes[:count])

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(TIMEOUT)
        self.listener.close()
        for worker in list(self._workers):
            worker.join(2 * TIMEOUT)


@contextmanager
def serving(ctx: ssl.SSLContext) -> Iterator[Server]:
    server = Server(ctx)
    server._acceptor.start()
    try:
        yield server
    finally:
        server.stop()


def _connect(server: Server, ctx: tls.CapifContext) -> tuple[tls.TlsPeer, bytes]:
    """Handshake and check as a client; return the checked server and what it answered."""
    sock, peer = blocking.connect("127.0.0.1", server.port, ctx, timeout=TIMEOUT)
    with sock:
        sock.settimeout(TIMEOUT)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            data += chunk
    return peer, data


def _refused(server: Server, ctx: tls.CapifContext) -> tuple[HandshakeRejected, Outcome]:
    """The client's handshake fails; return its error and the server's outcome."""
    with pytest.raises(HandshakeRejected) as info:
        _connect(server, ctx)
    (outcome,) = server.wait(1)
    assert not isinstance(outcome, tls.TlsPeer), outcome
    return info.value, outcome


def _handshake(
    store: MemoryStore,
    identity: bytes,
    key: bytes,
    max_version: ssl.TLSVersion | None = None,
    *,
    ccf: str = CCF,
    clock: Callable[[], dt.datetime] | None = None,
) -> tuple[tls.TlsPeer, Outcome] | tuple[HandshakeRejected, Outcome]:
    """One handshake against a fresh PSK server; (client peer or error, server outcome)."""
    sctx = psk_server_context(store=store, ccf_identity=ccf, clock=clock)
    with serving(sctx) as server:
        try:
            peer, _ = _connect(server, _client(identity, key, max_version))
        except HandshakeRejected as exc:
            return exc, server.wait(1)[0]
        return peer, server.wait(1)[0]


def _assert_refused(
    store: MemoryStore,
    identity: bytes,
    key: bytes,
    max_version: ssl.TLSVersion | None = None,
    **kw: object,
) -> HandshakeRejected:
    client, server = _handshake(store, identity, key, max_version, **kw)  # type: ignore[arg-type]
    assert isinstance(client, HandshakeRejected), client
    assert not isinstance(server, tls.TlsPeer), server
    return client


# --------------------------------------------------------------------------- < 3.13


@pytest.mark.skipif(HAS_PSK, reason="this interpreter has ssl PSK callbacks (Python >= 3.13)")
def test_every_builder_names_python_313_when_psk_is_unavailable() -> None:
    """On Python < 3.13 the builders refuse explicitly, naming the version needed."""
    assert not hasattr(ssl.SSLContext, "set_psk_server_callback")
    credential = PskCredential(b"rof-1", _key(), CCF)
    with pytest.raises(PskUnavailable, match=r"3\.13") as server_info:
        psk_server_context(store=MemoryStore(), ccf_identity=CCF)
    with pytest.raises(PskUnavailable, match=r"3\.13") as client_info:
        psk_client_context(credential=credential)
    assert isinstance(server_info.value, TlsConfigError)
    assert "inchannel" in str(client_info.value)  # it says what to use instead


# --------------------------------------------------------------------------- load-time rules


def test_short_keys_are_refused_at_load() -> None:
    """R42: a PSK shorter than 128 bits cannot even be built; 16 bytes is the floor."""
    for length in (0, 1, 8, 15):
        with pytest.raises(UsageError, match="16 bytes"):
            PskCredential(b"rof-1", b"k" * length, CCF)
    assert len(PskCredential(b"rof-1", b"k" * 16, CCF).key) == 16
    with pytest.raises(UsageError, match="R45"):
        PskCredential(b"", _key(), CCF)  # an identity is 1 to 65535 bytes


@needs_psk
def test_client_refuses_identities_openssl_cannot_carry() -> None:
    """OpenSSL's PSK callbacks carry identities as UTF-8 C strings of at most 255 bytes.

    A NUL would silently cut the identity (the server would attribute a shorter one) and a
    longer one would make every handshake fail unexplained: both are refused when built.
    """
    key = _key()
    with pytest.raises(TlsConfigError, match="UTF-8"):
        psk_client_context(credential=PskCredential(b"rof-\xff", key, CCF))
    with pytest.raises(TlsConfigError, match="NUL"):
        psk_client_context(credential=PskCredential(b"rof-1\x00admin", key, CCF))
    with pytest.raises(TlsConfigError, match="255 bytes"):
        psk_client_context(credential=PskCredential(b"r" * 256, key, CCF))
    psk_client_context(credential=PskCredential(b"r" * 255, key, CCF))


@needs_psk
def test_contexts_offer_only_forward_secret_psk_suites_for_tls12() -> None:
    """R47: the TLS 1.2 suites are DHE-PSK-AES-GCM only (no TLS_PSK_*, no certificate suites)."""
    server = tls.describe(psk_server_context(store=MemoryStore(), ccf_identity=CCF))
    client = tls.describe(_client(b"rof-1", _key()))
    for description in (server, client):
        assert set(description.tls12_suites) == set(PSK_TLS12_SUITES)
        assert description.minimum_version == "TLSv1.2"
        assert not description.session_tickets
        assert not description.renegotiation
    assert server.client_auth == "none"  # no certificate requested
    assert client.client_auth == "server certificate required"  # ... and none can be verified


# --------------------------------------------------------------------------- accepted


@needs_psk
def test_tls13_psk_handshake_is_accepted_and_attributed(store: MemoryStore) -> None:
    """R43, R45: TLS 1.3 external PSK; both sides report a PSK handshake and no certificate."""
    cred = _add(store, b"rof-1")
    client, server = _handshake(store, b"rof-1", cred.key)
    assert isinstance(client, tls.TlsPeer), client
    assert isinstance(server, tls.TlsPeer), server
    for peer in (client, server):
        assert peer.version == "TLSv1.3"
        assert peer.cipher in PSK_TLS13_SUITES  # a SHA-256 suite: the PSK's hash
        assert peer.cipher.endswith("_SHA256")
        assert peer.authentication == "psk"
        assert peer.psk_identity == "rof-1"
        assert peer.identities is None
        assert peer.chain is None
        assert peer.certificate_fingerprint is None
        assert peer.channel_binding is None  # no certificate, no tls-server-end-point
    assert server.side == "server"
    assert server.psk_key_id == cred.key_id


@needs_psk
def test_tls12_psk_handshake_uses_dhe_psk_aes_gcm(store: MemoryStore) -> None:
    """R47: a TLS 1.2-only client gets DHE-PSK with AES-GCM (forward secret, RFC 5487)."""
    cred = _add(store, b"rof-1")
    client, server = _handshake(store, b"rof-1", cred.key, TLS12)
    assert isinstance(client, tls.TlsPeer), client
    assert isinstance(server, tls.TlsPeer), server
    for peer in (client, server):
        assert peer.version == "TLSv1.2"
        assert peer.cipher in PSK_TLS12_SUITES
        assert peer.cipher.startswith("DHE-PSK-AES")
        assert "GCM" in peer.cipher
        assert peer.authentication == "psk"
    assert server.psk_identity == "rof-1"
    assert server.psk_key_id == cred.key_id


@needs_psk
def test_sixteen_byte_key_is_enough(store: MemoryStore) -> None:
    """R42: the 128-bit floor is usable end to end."""
    cred = _add(store, b"rof-16", key=secrets.token_bytes(16))
    _, server = _handshake(store, b"rof-16", cred.key)
    assert isinstance(server, tls.TlsPeer)
    assert server.psk_identity == "rof-16"


@needs_psk
def test_tls_psk_authenticator_turns_the_peer_into_an_authenticated_rof(
    store: MemoryStore,
) -> None:
    """R56: the identity comes from the PSK the handshake proved, nothing else."""
    cred = _add(store, b"rof-1")
    _, server = _handshake(store, b"rof-1", cred.key)
    assert isinstance(server, tls.TlsPeer)
    peer = TlsPskAuthenticator().authenticate(server)
    assert peer.method == Method.PSK
    assert str(peer.method) == "psk"
    assert peer.identity == "rof-1"
    assert peer.evidence["psk_identity"] == "rof-1"
    assert peer.evidence["key_id"] == cred.key_id
    assert peer.evidence["tls_version"] == "TLSv1.3"
    assert peer.tls is server
    # A peer that did not authenticate by PSK is not turned into one.
    for other in (
        tls.TlsPeer(
            "server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "certificate", None, None, None, None
        ),
        tls.TlsPeer("server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "psk", None, None, None, None),
    ):
        with pytest.raises(AuthenticationFailed):
            TlsPskAuthenticator().authenticate(other)


# --------------------------------------------------------------------------- refused keys


@needs_psk
@VERSIONS
def test_wrong_key_is_refused(store: MemoryStore, max_version: ssl.TLSVersion | None) -> None:
    _add(store, b"rof-1")
    _assert_refused(store, b"rof-1", _key(), max_version)


@needs_psk
@VERSIONS
def test_unknown_identity_is_indistinguishable_from_a_wrong_key(
    store: MemoryStore, max_version: ssl.TLSVersion | None
) -> None:
    """R45: the client sees the same failure (type, alert text) for both."""
    _add(store, b"rof-1")
    wrong_key = _assert_refused(store, b"rof-1", _key(), max_version)
    unknown = _assert_refused(store, b"nobody", _key(), max_version)
    assert type(unknown) is type(wrong_key)
    assert str(unknown) == str(wrong_key)
    assert type(unknown.__cause__) is type(wrong_key.__cause__)
    assert isinstance(unknown.__cause__, ssl.SSLError)
    assert isinstance(wrong_key.__cause__, ssl.SSLError)
    assert unknown.__cause__.reason == wrong_key.__cause__.reason
    assert "ALERT" in str(unknown)  # the server's alert, the same one for both


@needs_psk
@VERSIONS
def test_another_identitys_key_is_refused(
    store: MemoryStore, max_version: ssl.TLSVersion | None
) -> None:
    """R44: rof-2's key does not open rof-1."""
    _add(store, b"rof-1")
    rof2 = _add(store, b"rof-2")
    _assert_refused(store, b"rof-1", rof2.key, max_version)


@needs_psk
@VERSIONS
def test_a_psk_bound_to_another_ccf_is_refused(
    store: MemoryStore, max_version: ssl.TLSVersion | None
) -> None:
    """R44: a key is bound to one (ROF, CCF) pair; ccf-1 does not use ccf-2's keys."""
    cred = _add(store, b"rof-1", ccf=OTHER_CCF)
    _assert_refused(store, b"rof-1", cred.key, max_version, ccf=CCF)
    # Control: the CCF it is bound to accepts it.
    _, server = _handshake(store, b"rof-1", cred.key, max_version, ccf=OTHER_CCF)
    assert isinstance(server, tls.TlsPeer), server


@needs_psk
def test_identities_are_exact_bytes(store: MemoryStore) -> None:
    """R45: b"rof-1" and b"ROF-1" are different identities (no case folding)."""
    lower = _add(store, b"rof-1")
    _assert_refused(store, b"ROF-1", lower.key)
    upper = _add(store, b"ROF-1")
    for identity, cred in ((b"rof-1", lower), (b"ROF-1", upper)):
        _, server = _handshake(store, identity, cred.key)
        assert isinstance(server, tls.TlsPeer), server
        assert server.psk_identity == identity.decode()
        assert server.psk_key_id == cred.key_id
    _assert_refused(store, b"ROF-1", lower.key)
    _assert_refused(store, b"rof-1 ", lower.key)  # no trimming either


# --------------------------------------------------------------------------- revocation


@needs_psk
@VERSIONS
def test_revoked_credential_is_refused_on_the_next_handshake(
    store: MemoryStore, max_version: ssl.TLSVersion | None
) -> None:
    """R62: the server context reads the store on every handshake; nothing is cached."""
    cred = _add(store, b"rof-1")
    sctx = psk_server_context(store=store, ccf_identity=CCF)
    with serving(sctx) as server:
        _, answer = _connect(server, _client(b"rof-1", cred.key, max_version))
        assert answer == b"rof-1\n"
        assert store.revoke(key_id=cred.key_id) == 1
        with pytest.raises(HandshakeRejected):
            _connect(server, _client(b"rof-1", cred.key, max_version))
        outcomes = server.wait(2)
    assert isinstance(outcomes[0], tls.TlsPeer)
    assert not isinstance(outcomes[1], tls.TlsPeer)


@needs_psk
def test_expired_credential_is_refused_on_the_next_handshake(store: MemoryStore) -> None:
    """R62 with a Validity window: accepted inside it, refused once not_after has passed."""
    start = dt.datetime.now(dt.UTC)
    end = start + dt.timedelta(hours=1)
    cred = _add(store, b"rof-1", validity=Validity(not_before=start, not_after=end))
    now = [start + dt.timedelta(minutes=30)]
    sctx = psk_server_context(store=store, ccf_identity=CCF, clock=lambda: now[0])
    with serving(sctx) as server:
        _, answer = _connect(server, _client(b"rof-1", cred.key))
        assert answer == b"rof-1\n"
        now[0] = end + dt.timedelta(seconds=1)
        with pytest.raises(HandshakeRejected):
            _connect(server, _client(b"rof-1", cred.key))
        now[0] = start - dt.timedelta(seconds=1)  # not yet valid
        with pytest.raises(HandshakeRejected):
            _connect(server, _client(b"rof-1", cred.key))
        outcomes = server.wait(3)
    assert [isinstance(o, tls.TlsPeer) for o in outcomes] == [True, False, False]


# --------------------------------------------------------------------------- no certificates


@needs_psk
def test_psk_server_never_presents_a_certificate(store: MemoryStore) -> None:
    """The PSK-plus-certificate trap cannot happen: the PSK server has no certificate at all.

    A client that accepts *any* certificate (CERT_NONE) and offers no PSK would complete a
    handshake with any server that has one; here it cannot, and neither can a capif8sec
    certificate client.
    """
    sctx = psk_server_context(store=store, ccf_identity=CCF)
    assert sctx.settings.mode == "psk"
    assert not sctx.settings.presents_certificate
    assert sctx.get_ca_certs() == []
    pki = TestPKI()
    rof = pki.client_cert()
    cert_client = tls.client_context(
        present=tls.Identity(rof.chain_pem, rof.key_pem),
        verify=tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()]),
    )
    anything = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    with serving(sctx) as server:
        with pytest.raises(HandshakeRejected):
            _connect(server, cert_client)
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        with pytest.raises(ssl.SSLError), anything.wrap_socket(raw) as plain:
            plain.getpeercert()
        outcomes = server.wait(2)
    assert not any(isinstance(o, tls.TlsPeer) for o in outcomes), outcomes


@needs_psk
@VERSIONS
def test_psk_client_is_not_fooled_by_a_certificate_server(
    tmp_path: Path, max_version: ssl.TLSVersion | None
) -> None:
    """A server with a certificate and no PSK (capif8sec's, stdlib's) cannot complete.

    The PSK client trusts no certificate at all (empty trust store, CERT_REQUIRED), so a
    certificate handshake -- even with a certificate from a CA the deployment trusts
    elsewhere -- fails, and a TLS 1.2 certificate suite is never offered.
    """
    pki = TestPKI()
    issued = pki.server_cert()
    issued.write(tmp_path / "server.pem", tmp_path / "server.key")
    capif_cert_server = tls.server_context(
        present=tls.Identity(issued.chain_pem, issued.key_pem),
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
    )
    stdlib_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    stdlib_server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client = _client(b"rof-1", _key(), max_version)
    for sctx in (capif_cert_server, stdlib_server):
        with serving(sctx) as server:
            with pytest.raises(HandshakeRejected, match=r"CERTIFICATE_VERIFY_FAILED|HANDSHAKE"):
                _connect(server, client)
            (outcome,) = server.wait(1)
            assert not isinstance(outcome, tls.TlsPeer)


@needs_psk
def test_psk_client_refuses_a_certificate_server_that_also_knows_the_key(
    tmp_path: Path,
) -> None:
    """The platform-notes trap from the other side: a stdlib server with a certificate *and*
    PSK callbacks answering with the right key does a certificate handshake when a SHA-384
    suite is chosen; the capif8sec PSK client can verify no certificate, so it fails.
    """
    key = _key()
    pki = TestPKI()
    pki.server_cert().write(tmp_path / "server.pem", tmp_path / "server.key")
    trap = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trap.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    trap.set_psk_server_callback(lambda identity: key)  # type: ignore[attr-defined]
    with serving(trap) as server:
        with pytest.raises(HandshakeRejected, match="CERTIFICATE_VERIFY_FAILED"):
            _connect(server, _client(b"rof-1", key))
        server.wait(1)


@needs_psk
def test_a_handshake_not_run_through_do_handshake_is_refused(store: MemoryStore) -> None:
    """An implicit handshake (``recv`` before ``do_handshake``) has no connection to attribute
    the identity to: the server callback refuses it, it does not guess."""
    cred = _add(store, b"rof-1")
    sctx = psk_server_context(store=store, ccf_identity=CCF)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with sctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False) as sock:
                sock.settimeout(TIMEOUT)
                sock.recv(10)  # SSL_read runs the handshake implicitly
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(HandshakeRejected):
            blocking.connect(
                "127.0.0.1", listener.getsockname()[1], _client(b"rof-1", cred.key), timeout=5
            )
        thread.join(2 * TIMEOUT)
    finally:
        listener.close()
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ssl.SSLError)


# --------------------------------------------------------------------------- attribution


@needs_psk
def test_parallel_handshakes_are_attributed_to_their_own_connection(store: MemoryStore) -> None:
    """20 ROFs handshake at once (TLS 1.3 and 1.2 mixed) against one threaded server, twice:
    every server-side peer names the identity of the client on *that* connection."""
    count = 20
    creds = {f"rof-{i:02d}".encode(): _add(store, f"rof-{i:02d}".encode()) for i in range(count)}
    key_ids = {identity.decode(): cred.key_id for identity, cred in creds.items()}
    sctx = psk_server_context(store=store, ccf_identity=CCF)
    rounds = 2
    with serving(sctx) as server:
        for _ in range(rounds):
            barrier = threading.Barrier(count, timeout=TIMEOUT)
            results: dict[str, tuple[tls.TlsPeer, bytes] | BaseException] = {}
            lock = threading.Lock()

            def run(
                identity: bytes,
                cred: PskCredential,
                version: ssl.TLSVersion | None,
                barrier: threading.Barrier = barrier,
                results: dict[str, tuple[tls.TlsPeer, bytes] | BaseException] = results,
                lock: threading.Lock = lock,
            ) -> None:
                ctx = _client(identity, cred.key, version)
                try:
                    barrier.wait()
                    outcome: tuple[tls.TlsPeer, bytes] | BaseException = _connect(server, ctx)
                except BaseException as exc:
                    outcome = exc
                with lock:
                    results[identity.decode()] = outcome

            threads = [
                threading.Thread(target=run, args=(identity, cred, TLS12 if i % 2 else None))
                for i, (identity, cred) in enumerate(creds.items())
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(4 * TIMEOUT)
            assert len(results) == count
            for identity, result in results.items():
                assert not isinstance(result, BaseException), (identity, result)
                peer, answer = result
                assert peer.psk_identity == identity
                assert answer == f"{identity}\n".encode()  # what the server attributed
        outcomes = server.wait(rounds * count)
    peers = [o for o in outcomes if isinstance(o, tls.TlsPeer)]
    assert len(peers) == rounds * count, [o for o in outcomes if not isinstance(o, tls.TlsPeer)]
    assert {p.version for p in peers} == {"TLSv1.2", "TLSv1.3"}
    for peer in peers:
        assert peer.psk_identity is not None
        assert peer.psk_key_id == key_ids[peer.psk_identity]
    assert sorted(p.psk_identity or "" for p in peers) == sorted(list(key_ids) * rounds)


@needs_psk
def test_asyncio_server_attributes_each_concurrent_client(store: MemoryStore) -> None:
    """aio.start_server with a PSK context: handshakes interleave on one event loop thread,
    each SSLObject still gets its own identity."""
    count = 8
    creds = [_add(store, f"rof-async-{i}".encode()) for i in range(count)]
    sctx = psk_server_context(store=store, ccf_identity=CCF)
    seen: list[tls.TlsPeer] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tls.TlsPeer
    ) -> None:
        seen.append(peer)
        writer.write(f"{peer.psk_identity}\n".encode())
        await writer.drain()

    async def one(port: int, cred: PskCredential, version: ssl.TLSVersion | None) -> str:
        reader, writer, peer = await aio.open_connection(
            "127.0.0.1", port, ssl=_client(cred.identity, cred.key, version), handshake_timeout=5
        )
        assert peer.authentication == "psk"
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        assert line == cred.identity + b"\n", (line, cred.identity)
        return line.decode().strip()

    async def main() -> list[str]:
        server = await aio.start_server(handler, "127.0.0.1", 0, ssl=sctx, handshake_timeout=5)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await asyncio.wait_for(
                asyncio.gather(
                    *(one(port, c, TLS12 if i % 2 else None) for i, c in enumerate(creds))
                ),
                30,
            )

    answered = asyncio.run(main())
    assert answered == [c.identity.decode() for c in creds]
    assert sorted(p.psk_identity or "" for p in seen) == sorted(c.identity.decode() for c in creds)
    by_identity = {c.identity.decode(): c.key_id for c in creds}
    for peer in seen:
        assert peer.authentication == "psk"
        assert peer.psk_key_id == by_identity[peer.psk_identity or ""]


# --------------------------------------------------------------------------- secrets


@needs_psk
def test_keys_never_show_in_peers_errors_or_logs(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cred = _add(store, b"rof-1")
    wrong = _key()
    texts: list[str] = []
    client, server = _handshake(store, b"rof-1", cred.key)
    assert isinstance(server, tls.TlsPeer)
    texts += [repr(client), str(client), repr(server), str(server.as_dict()), repr(cred)]
    texts.append(repr(TlsPskAuthenticator().authenticate(server)))
    refused = _assert_refused(store, b"rof-1", wrong)
    texts += [str(refused), repr(refused)]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    for key in (cred.key, wrong):
        for form in (
            key.hex(),
            key.hex().upper(),
            base64.b64encode(key).decode(),
            base64.urlsafe_b64encode(key).decode().rstrip("="),
            repr(key)[2:-1],
        ):
            assert form not in blob
