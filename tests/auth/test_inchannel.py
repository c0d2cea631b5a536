"""In-channel PSK proof over real TLS (R42, R44, R45, R48, R62), on every Python.

The CCF is authenticated by its certificate (``tls.server_context`` with
``CLIENT_CERTIFICATE_NOT_REQUESTED``; the ROF's ``tls.client_context`` presents nothing and
verifies the CCF against a :class:`~capif8sec.testing.TestPKI`), then the ROF proves its PSK
inside that channel with :class:`InChannelPskClient` against
:class:`InChannelPskAuthenticator`, the proof bound to the channel by tls-server-end-point
(RFC 5929).  The messages travel over the real TLS connection, length-prefixed; a refusal is
answered with an ``E`` frame carrying the server's (deliberately unspecific) error text.

Attacks covered: wrong key, unknown identity (indistinguishable), replay of a recorded exchange
into a new one, replay of the client-final into the same exchange, relay through a server with
another certificate, a proof made for another CCF, revocation and expiry, and arbitrary bytes
fed to the server state machine (hypothesis).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import secrets
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capif8sec import tls
from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.auth.credentials import PskCredential, Validity
from capif8sec.auth.inchannel import (
    InChannelPskAuthenticator,
    InChannelPskClient,
    InChannelPskServer,
)
from capif8sec.auth.stores import MemoryStore
from capif8sec.errors import AuthenticationFailed
from capif8sec.integrations import blocking
from capif8sec.testing import IssuedCert, TestPKI
from capif8sec.tls.binding import TLS_SERVER_END_POINT, ChannelBinding, tls_server_end_point

pytestmark = pytest.mark.timeout(60)

CCF = "ccf.capif.example"
OTHER_CCF = "ccf-2.capif.example"
TIMEOUT = 5.0
MAX_FRAME = 1 << 16


# --------------------------------------------------------------------------- material


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(scope="module")
def ccf_cert(pki: TestPKI) -> IssuedCert:
    """The real CCF's server certificate."""
    return pki.server_cert(CCF)


@pytest.fixture(scope="module")
def relay_cert(pki: TestPKI) -> IssuedCert:
    """A relaying attacker's certificate: valid, same name, different key (mis-issued)."""
    return pki.server_cert(CCF)


def _server_ctx(issued: IssuedCert) -> tls.CapifContext:
    return tls.server_context(
        present=tls.Identity(issued.chain_pem, issued.key_pem),
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
    )


def _client_ctx(pki: TestPKI, max_version: ssl.TLSVersion | None = None) -> tls.CapifContext:
    ctx = tls.client_context(
        present=tls.PRESENT_NO_CERTIFICATE,
        verify=tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()]),
    )
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def _key() -> bytes:
    return secrets.token_bytes(32)


def _cred(
    identity: bytes = b"rof-1",
    key: bytes | None = None,
    ccf: str = CCF,
    *,
    key_id: str | None = None,
    validity: Validity | None = None,
) -> PskCredential:
    return PskCredential(
        identity,
        key if key is not None else _key(),
        ccf,
        key_id=key_id or f"k-{secrets.token_hex(6)}",
        validity=validity or Validity(),
    )


def _stored(store: MemoryStore, *args: object, **kw: object) -> PskCredential:
    cred = _cred(*args, **kw)  # type: ignore[arg-type]
    store.add_psk(cred)
    return cred


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


# --------------------------------------------------------------------------- the channel


def _send_frame(sock: ssl.SSLSocket, data: bytes) -> None:
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        data += chunk
    return data


def _recv_frame(sock: ssl.SSLSocket) -> bytes:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if size > MAX_FRAME:
        raise ConnectionError("frame too large")
    return _recv_exact(sock, size)


class Refused(Exception):
    """What the client sees when the CCF answers with an ``E`` frame."""


class Channel:
    """One real TLS connection: the CCF side runs in a thread, the ROF side is driven here.

    The CCF accepts and checks the connection, starts one exchange with ``authenticator`` and
    feeds it every frame the ROF sends, answering ``M`` + reply, or ``E`` + the error text once
    the exchange refuses (after which every further frame is refused too: the exchange is
    dead).  ``results`` records, per frame, what the server side concluded.
    """

    def __init__(
        self,
        server_ctx: tls.CapifContext,
        client_ctx: tls.CapifContext,
        authenticator: InChannelPskAuthenticator,
    ) -> None:
        self.authenticator = authenticator
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.server_ctx = server_ctx
        self.server_peer: tls.TlsPeer | None = None
        self.exchange: InChannelPskServer | None = None
        self.results: list[AuthenticatedPeer | BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        port = self.listener.getsockname()[1]
        self.sock, self.client_peer = blocking.connect(
            "127.0.0.1", port, client_ctx, server_hostname=CCF, timeout=TIMEOUT
        )
        self.sock.settimeout(TIMEOUT)

    def _serve(self) -> None:
        try:
            sock, peer = blocking.accept(self.listener, self.server_ctx, timeout=TIMEOUT)
        except BaseException as exc:
            self.results.append(exc)
            return
        self.server_peer = peer
        with sock:
            sock.settimeout(TIMEOUT)
            exchange = self.exchange = self.authenticator.authenticate(peer)
            while True:
                try:
                    frame = _recv_frame(sock)
                except (ConnectionError, OSError):
                    return
                try:
                    reply = exchange.receive(frame)
                    if exchange.complete:
                        self.results.append(exchange.result())
                    _send_frame(sock, b"M" + (reply or b""))
                except AuthenticationFailed as exc:
                    self.results.append(exc)
                    _send_frame(sock, b"E" + str(exc).encode())
                except BaseException as exc:  # anything else is a bug the test reports
                    self.results.append(exc)
                    return

    def send(self, message: bytes) -> bytes:
        """Send one client message; the CCF's reply, or :class:`Refused`."""
        _send_frame(self.sock, message)
        frame = _recv_frame(self.sock)
        if frame[:1] == b"E":
            raise Refused(frame[1:].decode())
        assert frame[:1] == b"M", frame
        return frame[1:]

    @property
    def binding(self) -> ChannelBinding:
        """The channel binding the ROF computed from the certificate the CCF presented."""
        assert self.client_peer.channel_binding is not None
        return self.client_peer.channel_binding

    def close(self) -> list[AuthenticatedPeer | BaseException]:
        """Hang up, wait (bounded) for the CCF side; what it concluded, frame by frame."""
        with contextlib.suppress(OSError):
            self.sock.close()
        self.thread.join(2 * TIMEOUT)
        self.listener.close()
        assert not self.thread.is_alive(), "the CCF thread did not finish"
        return self.results


@contextmanager
def channel(
    pki: TestPKI,
    server_cert: IssuedCert,
    authenticator: InChannelPskAuthenticator,
    max_version: ssl.TLSVersion | None = None,
) -> Iterator[Channel]:
    ch = Channel(_server_ctx(server_cert), _client_ctx(pki, max_version), authenticator)
    try:
        yield ch
    finally:
        ch.close()


def _prove(ch: Channel, credential: PskCredential) -> tuple[bytes, bytes]:
    """Run the ROF side of a full exchange; return the two client messages sent."""
    client = InChannelPskClient(credential=credential, binding=ch.binding)
    first = client.first()
    server_first = ch.send(first)
    final = client.final(server_first)
    server_final = ch.send(final)
    client.verify(server_final)  # the CCF proved the PSK too
    return first, final


def _attempt(
    pki: TestPKI,
    cert: IssuedCert,
    authenticator: InChannelPskAuthenticator,
    credential: PskCredential,
) -> tuple[AuthenticatedPeer | BaseException, BaseException | None]:
    """One exchange on a new connection: (server conclusion, client-side error or None)."""
    client_error: BaseException | None = None
    with channel(pki, cert, authenticator) as ch:
        try:
            _prove(ch, credential)
        except (Refused, AuthenticationFailed) as exc:
            client_error = exc
    results = ch.results
    assert len(results) == 1, results
    return results[0], client_error


def _assert_refused(
    pki: TestPKI,
    cert: IssuedCert,
    authenticator: InChannelPskAuthenticator,
    credential: PskCredential,
) -> tuple[AuthenticationFailed, BaseException]:
    server, client = _attempt(pki, cert, authenticator, credential)
    assert isinstance(server, AuthenticationFailed), server
    assert client is not None
    return server, client


def _assert_accepted(
    pki: TestPKI,
    cert: IssuedCert,
    authenticator: InChannelPskAuthenticator,
    credential: PskCredential,
) -> AuthenticatedPeer:
    server, client = _attempt(pki, cert, authenticator, credential)
    assert client is None, client
    assert isinstance(server, AuthenticatedPeer), server
    return server


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_full_exchange_over_real_tls(
    pki: TestPKI,
    ccf_cert: IssuedCert,
    store: MemoryStore,
    max_version: ssl.TLSVersion | None,
) -> None:
    """R48: CCF by certificate, ROF by PSK proven in the channel, mutual under the PSK."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    with channel(pki, ccf_cert, auth, max_version) as ch:
        _prove(ch, cred)  # includes the client's check of the server proof
        server_peer, client_peer = ch.server_peer, ch.client_peer
    assert server_peer is not None
    # The CCF was authenticated by its certificate; the ROF presented none.
    assert client_peer.authentication == "certificate"
    assert client_peer.identities is not None
    assert client_peer.identities.dns_names == (CCF,)
    assert server_peer.authentication == "none"
    assert client_peer.version == server_peer.version
    assert client_peer.version == ("TLSv1.2" if max_version else "TLSv1.3")
    # Both ends computed the same tls-server-end-point binding: SHA-256 of the CCF's leaf.
    assert server_peer.channel_binding == client_peer.channel_binding
    expected = tls_server_end_point(ccf_cert.cert.public_bytes(serialization.Encoding.DER))
    assert client_peer.channel_binding == ChannelBinding(TLS_SERVER_END_POINT, expected)
    assert len(expected) == 32
    (result,) = ch.results
    assert isinstance(result, AuthenticatedPeer)
    assert result.identity == "rof-1"
    assert result.method == Method.PSK_IN_CHANNEL
    assert result.evidence["psk_identity"] == "rof-1"
    assert result.evidence["key_id"] == cred.key_id
    assert result.evidence["channel_binding"] == TLS_SERVER_END_POINT


def test_the_client_verifies_the_server_proof(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """A CCF that cannot prove the PSK (a forged or altered server-final) is refused."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    with channel(pki, ccf_cert, auth) as ch:
        client = InChannelPskClient(credential=cred, binding=ch.binding)
        final = client.final(ch.send(client.first()))
        server_final = ch.send(final)
        proof = bytearray(base64.b64decode(server_final[2:]))
        proof[0] ^= 1
        with pytest.raises(AuthenticationFailed):
            client.verify(b"v=" + base64.b64encode(bytes(proof)))
    # ... and a made-up proof from a server that does not know the key.
    client = InChannelPskClient(credential=cred, binding=ch.binding)
    cnonce = base64.b64decode(client.first().rpartition(b",r=")[2])
    client.final(b"r=" + base64.b64encode(cnonce + secrets.token_bytes(32)))
    with pytest.raises(AuthenticationFailed):
        client.verify(b"v=" + base64.b64encode(secrets.token_bytes(32)))


def test_authenticate_needs_a_channel_binding(store: MemoryStore) -> None:
    """Without a certificate-authenticated CCF there is nothing to bind to: refused."""
    peer = tls.TlsPeer("server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "psk", None, None, None, None)
    with pytest.raises(AuthenticationFailed, match="certificate"):
        InChannelPskAuthenticator(store, CCF).authenticate(peer)


# --------------------------------------------------------------------------- refused


def test_wrong_key_and_unknown_identity_are_refused_identically(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """R45: same exception type and text on the CCF, same answer on the wire; and an unknown
    identity is not turned away early (the challenge comes back as for a known one)."""
    _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    wrong_server, wrong_client = _assert_refused(pki, ccf_cert, auth, _cred(b"rof-1"))
    unknown_server, unknown_client = _assert_refused(pki, ccf_cert, auth, _cred(b"nobody"))
    assert type(unknown_server) is type(wrong_server) is AuthenticationFailed
    assert str(unknown_server) == str(wrong_server) == "authentication failed"
    assert type(unknown_client) is type(wrong_client) is Refused
    assert str(unknown_client) == str(wrong_client)
    with channel(pki, ccf_cert, auth) as ch:
        client = InChannelPskClient(credential=_cred(b"nobody"), binding=ch.binding)
        assert ch.send(client.first()).startswith(b"r=")


def test_another_identitys_key_is_refused(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    _stored(store, b"rof-1")
    rof2 = _stored(store, b"rof-2")
    auth = InChannelPskAuthenticator(store, CCF)
    _assert_refused(pki, ccf_cert, auth, _cred(b"rof-1", rof2.key))


def test_identities_are_exact_bytes(pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore) -> None:
    """R45: no case folding, no trimming."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    for other in (b"ROF-1", b"rof-1 ", b" rof-1"):
        _assert_refused(pki, ccf_cert, auth, _cred(other, cred.key))


def test_distinct_identities_stay_distinct_after_authentication(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """R45, R56: identities are opaque bytes; two different ones never become the same
    AuthenticatedPeer identity (b"rof-\\xff", not UTF-8, against the ASCII text rof-\\xff)."""
    raw = _stored(store, b"rof-\xff")
    text = _stored(store, b"rof-\\xff")
    peers = [
        _assert_accepted(pki, ccf_cert, InChannelPskAuthenticator(store, CCF), c)
        for c in (raw, text)
    ]
    assert peers[0].identity != peers[1].identity
    assert peers[0].evidence["psk_identity"] != peers[1].evidence["psk_identity"]
    assert peers[1].identity == "rof-\\xff"  # valid UTF-8 is reported as is
    assert peers[0].evidence["key_id"] == raw.key_id
    assert peers[1].evidence["key_id"] == text.key_id


def test_recorded_exchange_replayed_on_a_new_exchange_is_refused(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """A fresh server nonce per exchange: recorded client messages do not authenticate again,
    even on a channel with the same binding (same CCF certificate)."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    with channel(pki, ccf_cert, auth) as ch:
        client = InChannelPskClient(credential=cred, binding=ch.binding)
        first = client.first()
        recorded_challenge = ch.send(first)
        final = client.final(recorded_challenge)
        client.verify(ch.send(final))
    assert isinstance(ch.results[-1], AuthenticatedPeer)
    with channel(pki, ccf_cert, auth) as replay:
        assert replay.binding == ch.binding  # the binding alone would not stop the replay
        challenge = replay.send(first)
        assert challenge != recorded_challenge  # the new server nonce
        with pytest.raises(Refused):
            replay.send(final)
    (outcome,) = replay.results
    assert isinstance(outcome, AuthenticationFailed)


def test_client_final_replayed_into_the_same_exchange_is_refused(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """An exchange is single use: once complete (or failed) it accepts nothing more."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    with channel(pki, ccf_cert, auth) as ch:
        _, final = _prove(ch, cred)
        with pytest.raises(Refused):
            ch.send(final)
    assert isinstance(ch.results[0], AuthenticatedPeer)
    assert isinstance(ch.results[1], AuthenticationFailed)
    # A failed final kills the exchange: the right final afterwards is refused too.
    with channel(pki, ccf_cert, auth) as ch:
        client = InChannelPskClient(credential=cred, binding=ch.binding)
        final = client.final(ch.send(client.first()))
        nonces, _, _ = final.partition(b",p=")
        with pytest.raises(Refused):
            ch.send(nonces + b",p=" + base64.b64encode(secrets.token_bytes(32)))
        with pytest.raises(Refused):
            ch.send(final)
    assert all(isinstance(r, AuthenticationFailed) for r in ch.results)
    assert ch.exchange is not None
    assert not ch.exchange.complete
    with pytest.raises(AuthenticationFailed):
        ch.exchange.result()


def test_relay_through_a_server_with_another_certificate_is_refused(
    pki: TestPKI, ccf_cert: IssuedCert, relay_cert: IssuedCert, store: MemoryStore
) -> None:
    """A man in the middle with a valid certificate of its own relays the ROF's messages to
    the real CCF: the ROF's proof is bound to the relay's certificate, the CCF's exchange to
    its own, so the CCF refuses (and the ROF would refuse the CCF's proof)."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    with (
        channel(pki, relay_cert, InChannelPskAuthenticator(MemoryStore(), CCF)) as to_relay,
        channel(pki, ccf_cert, auth) as relay_to_ccf,
    ):
        assert to_relay.client_peer.authentication == "certificate"  # the ROF trusted it
        assert to_relay.binding != relay_to_ccf.binding
        client = InChannelPskClient(credential=cred, binding=to_relay.binding)
        challenge = relay_to_ccf.send(client.first())  # relayed
        with pytest.raises(Refused):
            relay_to_ccf.send(client.final(challenge))  # relayed
    (outcome,) = relay_to_ccf.results
    assert isinstance(outcome, AuthenticationFailed)


def test_a_proof_made_for_another_ccf_is_refused(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """The CCF identity is in the transcript: a proof meant for ccf-2 does not open ccf-1."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    _assert_refused(pki, ccf_cert, auth, _cred(b"rof-1", cred.key, OTHER_CCF))


def test_a_key_bound_to_another_ccf_is_refused(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """R44: a key is bound to one (ROF, CCF) pair; ccf-1 never uses a key bound to ccf-2."""
    cred = _stored(store, b"rof-1", ccf=OTHER_CCF)
    _assert_refused(pki, ccf_cert, InChannelPskAuthenticator(store, CCF), cred)
    _assert_refused(
        pki, ccf_cert, InChannelPskAuthenticator(store, CCF), _cred(b"rof-1", cred.key, CCF)
    )
    # Control: the CCF it is bound to accepts it.
    _assert_accepted(pki, ccf_cert, InChannelPskAuthenticator(store, OTHER_CCF), cred)


# --------------------------------------------------------------------------- rotation, revocation


def test_rotation_both_keys_accepted_during_the_overlap(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """Two active keys under one identity: both prove it; each result names its key id."""
    old = _stored(store, b"rof-1", key_id="k-old")
    new = _stored(store, b"rof-1", key_id="k-new")
    auth = InChannelPskAuthenticator(store, CCF)
    assert _assert_accepted(pki, ccf_cert, auth, old).evidence["key_id"] == "k-old"
    assert _assert_accepted(pki, ccf_cert, auth, new).evidence["key_id"] == "k-new"
    # Retire the old key: it stops working at the next exchange, the new one carries on.
    assert store.revoke(key_id="k-old") == 1
    _assert_refused(pki, ccf_cert, auth, old)
    assert _assert_accepted(pki, ccf_cert, auth, new).evidence["key_id"] == "k-new"


def test_revoked_key_is_refused_at_the_next_exchange(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """R62: the authenticator reads the store at every exchange; nothing is cached."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    _assert_accepted(pki, ccf_cert, auth, cred)
    assert store.revoke(identity=b"rof-1") == 1
    _assert_refused(pki, ccf_cert, auth, cred)


def test_revocation_between_challenge_and_proof_is_seen(
    pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore
) -> None:
    """R62: the key is looked up when the proof arrives, not when the exchange starts."""
    cred = _stored(store, b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    with channel(pki, ccf_cert, auth) as ch:
        client = InChannelPskClient(credential=cred, binding=ch.binding)
        challenge = ch.send(client.first())
        store.revoke(key_id=cred.key_id)
        with pytest.raises(Refused):
            ch.send(client.final(challenge))


def test_expired_key_is_refused(pki: TestPKI, ccf_cert: IssuedCert, store: MemoryStore) -> None:
    """R62 with a Validity window (and the authenticator's injected clock)."""
    start = dt.datetime.now(dt.UTC)
    end = start + dt.timedelta(hours=1)
    cred = _stored(store, b"rof-1", validity=Validity(not_before=start, not_after=end))
    now = [start + dt.timedelta(minutes=1)]
    auth = InChannelPskAuthenticator(store, CCF, clock=lambda: now[0])
    _assert_accepted(pki, ccf_cert, auth, cred)
    now[0] = end
    _assert_refused(pki, ccf_cert, auth, cred)
    now[0] = start - dt.timedelta(seconds=1)
    _assert_refused(pki, ccf_cert, auth, cred)


# --------------------------------------------------------------------------- fuzzing

_FUZZ_STORE = MemoryStore()
_FUZZ_CRED = _cred(b"rof-1")
_FUZZ_STORE.add_psk(_FUZZ_CRED)
_FUZZ_AUTH = InChannelPskAuthenticator(_FUZZ_STORE, CCF)
_FUZZ_BINDING = ChannelBinding(TLS_SERVER_END_POINT, bytes(range(32)))


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


_fields = st.one_of(
    st.binary(max_size=80).map(_b64),
    st.binary(max_size=60),
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b"=", b",", b"==", b"A", b"AAAA", b"\x00", b"\xff" * 3]),
)
_first_like = st.builds(
    lambda v, n, r: b"v=" + v + b",n=" + n + b",r=" + r,
    st.one_of(st.just(b"1"), st.binary(max_size=4)),
    _fields,
    st.one_of(st.binary(min_size=32, max_size=32).map(_b64), _fields),
)
_final_like = st.builds(lambda r, p: b"r=" + r + b",p=" + p, _fields, _fields)
_anything = st.one_of(
    st.binary(max_size=5000), _first_like, _final_like, st.text(max_size=200).map(str.encode)
)


def _dead(exchange: InChannelPskServer) -> None:
    assert not exchange.complete
    with pytest.raises(AuthenticationFailed):
        exchange.result()


@settings(
    max_examples=300, deadline=dt.timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow]
)
@given(message=_anything)
def test_fuzz_client_first(message: bytes) -> None:
    """Arbitrary bytes as client-first: a challenge or AuthenticationFailed, nothing else."""
    exchange = _FUZZ_AUTH.exchange(_FUZZ_BINDING)
    failure: AuthenticationFailed | None = None
    reply: bytes | None = None
    try:
        reply = exchange.receive(message)
    except AuthenticationFailed as exc:
        failure = exc
    if failure is not None:
        assert str(failure) == "authentication failed"
        _dead(exchange)
    else:
        assert reply is not None
        assert reply.startswith(b"r=")
        assert not exchange.complete


@settings(
    max_examples=300, deadline=dt.timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow]
)
@given(message=_anything, identity=st.sampled_from([b"rof-1", b"nobody"]))
def test_fuzz_client_final(message: bytes, identity: bytes) -> None:
    """Arbitrary bytes as client-final after a valid client-first: always AuthenticationFailed
    (never another exception, never a completed exchange)."""
    exchange = _FUZZ_AUTH.exchange(_FUZZ_BINDING)
    client = InChannelPskClient(credential=_cred(identity, _FUZZ_CRED.key), binding=_FUZZ_BINDING)
    exchange.receive(client.first())
    with pytest.raises(AuthenticationFailed) as info:
        exchange.receive(message)
    assert str(info.value) == "authentication failed"
    _dead(exchange)


@settings(max_examples=100, deadline=dt.timedelta(seconds=1))
@given(first=_anything, final=_anything)
def test_fuzz_both_steps(first: bytes, final: bytes) -> None:
    exchange = _FUZZ_AUTH.exchange(_FUZZ_BINDING)
    with contextlib.suppress(AuthenticationFailed):
        exchange.receive(first)
    with pytest.raises(AuthenticationFailed):
        exchange.receive(final)
    _dead(exchange)


def test_fuzz_sanity_a_valid_exchange_passes_the_same_path() -> None:
    """The fuzzed server really checks: the honest client completes on the same objects."""
    exchange = _FUZZ_AUTH.exchange(_FUZZ_BINDING)
    client = InChannelPskClient(credential=_FUZZ_CRED, binding=_FUZZ_BINDING)
    challenge = exchange.receive(client.first())
    assert challenge is not None
    reply = exchange.receive(client.final(challenge))
    assert reply is not None
    client.verify(reply)
    assert exchange.complete
    assert exchange.result().identity == "rof-1"


# --------------------------------------------------------------------------- secrets


def test_secrets_never_in_repr_errors_or_logs(
    pki: TestPKI,
    ccf_cert: IssuedCert,
    store: MemoryStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Key bytes (raw, hex, base64) appear in no repr, str, exception text, message or log."""
    caplog.set_level(logging.DEBUG)
    printable = b"correct horse battery staple 42!"  # a key a person might type
    cred = _stored(store, b"rof-1", printable)
    wrong = _cred(b"rof-1")
    auth = InChannelPskAuthenticator(store, CCF)
    texts: list[str] = [repr(cred), str(cred), repr(wrong), repr(store), repr(auth)]
    sent: list[bytes] = []
    with channel(pki, ccf_cert, auth) as ch:
        sent += _prove(ch, cred)
        texts += [repr(ch.exchange), repr(ch.client_peer), repr(ch.server_peer)]
    for result in ch.results:
        texts += [repr(result), str(result)]
        if isinstance(result, AuthenticatedPeer):
            texts.append(str(result.as_dict()))
    server_error, client_error = _assert_refused(pki, ccf_cert, auth, wrong)
    texts += [repr(server_error), str(server_error), repr(client_error)]
    client = InChannelPskClient(credential=wrong, binding=ch.binding)
    texts += [repr(client), str(client)]
    for step in (lambda: client.verify(b"v=AAAA"), lambda: client.final(b"garbage")):
        with pytest.raises(Exception) as info:
            step()
        texts += [repr(info.value), str(info.value)]
    texts.append(caplog.text)
    blob = "\n".join(texts) + "\n" + b"\n".join(sent).decode()
    _assert_no_key(blob, printable, wrong.key)


def _assert_no_key(blob: str, *keys: bytes) -> None:
    for key in keys:
        forms = [
            key.hex(),
            key.hex().upper(),
            base64.b64encode(key).decode(),
            base64.b64encode(key).decode().rstrip("="),
            base64.urlsafe_b64encode(key).decode().rstrip("="),
            repr(key)[2:-1],
            key.decode("latin-1"),
        ]
        for form in forms:
            assert form not in blob, f"a form of the key leaked: {form[:6]}..."
