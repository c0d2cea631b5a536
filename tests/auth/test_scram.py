"""SCRAM-SHA-256(-PLUS) password authentication of the ROF (R51-R55).

The RFC 7677 test vector, full exchanges on both sides, the indistinguishability of unknown
users and wrong passwords, channel binding (relay) and downgrade refusals, replay, attempt
limiting, SASLprep, secrets hygiene, hypothesis fuzzing of every parser, and real loopback TLS:
SCRAM-PLUS bound to the CCF certificate, and a relay through a second certificate refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capif8sec import tls
from capif8sec.auth import (
    ALLOW_PLAIN_SCRAM,
    AuthenticatedPeer,
    ChannelBinding,
    ContextNeeds,
    CredentialStore,
    FailureLimiter,
    Method,
    PskCredential,
    ScramAuthenticator,
    ScramClient,
    ScramServer,
    ScramVerifier,
    Validity,
    channel_binding_for,
    make_verifier,
    saslprep,
    tls_server_end_point,
)
from capif8sec.auth import scram as scram_module
from capif8sec.errors import AuthenticationFailed, Capif8secError, UsageError
from capif8sec.integrations import blocking
from capif8sec.testing import IssuedCert, TestPKI

FAST = 4096  # the floor: keeps the client's PBKDF2 at about a millisecond in tests
PASSWORD = "correct horse battery staple"
BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"ccf certificate").digest())
OTHER_BINDING = ChannelBinding("tls-server-end-point", hashlib.sha256(b"mitm cert").digest())

# RFC 7677 section 3
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.fixture(scope="module")
def verifier() -> ScramVerifier:
    return make_verifier("rof-1", PASSWORD, iterations=FAST)


def _lookup(*verifiers: ScramVerifier) -> Callable[[str], ScramVerifier | None]:
    table = {v.username: v for v in verifiers}
    return table.get


def _server(
    verifier: ScramVerifier,
    binding: ChannelBinding | scram_module.AllowPlainScram = BINDING,
    **kw: object,
) -> ScramServer:
    return ScramServer(
        _lookup(verifier),
        binding,
        unknown_user_iterations=FAST,
        **kw,  # type: ignore[arg-type]
    )


def _login(server: ScramServer, client: ScramClient) -> tuple[AuthenticatedPeer, list[bytes]]:
    """Run a whole exchange; return the peer and the four messages."""
    first = client.first()
    server_first = server.receive(first)
    assert server_first is not None
    final = client.final(server_first)
    server_final = server.receive(final)
    assert server_final is not None
    client.verify(server_final)
    assert server.complete and client.complete
    return server.result(), [first, server_first, final, server_final]


def _fails_at_final(server: ScramServer, client: ScramClient) -> list[bytes]:
    """Run an exchange that the server must refuse at client-final; return what was sent."""
    first = client.first()
    server_first = server.receive(first)
    assert server_first is not None
    final = client.final(server_first)
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        server.receive(final)
    assert not server.complete
    return [first, server_first, final]


# --------------------------------------------------------------------------- RFC 7677 vector


def test_rfc7677_vector_end_to_end() -> None:
    """RFC 7677 section 3: every message byte for byte, with injected nonces."""
    v = make_verifier("user", "pencil", iterations=4096, salt=RFC_SALT)
    server = ScramServer(
        _lookup(v), ALLOW_PLAIN_SCRAM, nonce=RFC_SERVER_NONCE, unknown_user_iterations=4096
    )
    client = ScramClient("user", "pencil", ALLOW_PLAIN_SCRAM, nonce=RFC_CLIENT_NONCE)
    peer, messages = _login(server, client)
    assert messages == [RFC_CLIENT_FIRST, RFC_SERVER_FIRST, RFC_CLIENT_FINAL, RFC_SERVER_FINAL]
    assert peer.identity == "user"
    assert peer.evidence == {
        "username": "user",
        "mechanism": "SCRAM-SHA-256",
        "channel_binding": "none",
    }


def test_rfc7677_vector_each_side_alone() -> None:
    """The server accepts the RFC's client messages; the client accepts the RFC's server ones."""
    v = make_verifier("user", "pencil", iterations=4096, salt=RFC_SALT)
    server = ScramServer(_lookup(v), ALLOW_PLAIN_SCRAM, nonce=RFC_SERVER_NONCE)
    assert server.receive(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.receive(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    client = ScramClient("user", "pencil", ALLOW_PLAIN_SCRAM, nonce=RFC_CLIENT_NONCE)
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify(RFC_SERVER_FINAL)
    assert client.complete


def test_rfc7677_vector_wrong_server_signature_refused() -> None:
    """Mutual authentication: one flipped bit in ServerSignature fails the client."""
    client = ScramClient("user", "pencil", ALLOW_PLAIN_SCRAM, nonce=RFC_CLIENT_NONCE)
    client.first()
    client.final(RFC_SERVER_FIRST)
    signature = bytearray(base64.b64decode(RFC_SERVER_FINAL[2:]))
    signature[0] ^= 1
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        client.verify(b"v=" + base64.b64encode(bytes(signature)))
    assert not client.complete


# --------------------------------------------------------------------------- verifiers (R53)


def test_verifier_stores_only_keys_salt_and_iterations() -> None:
    v = make_verifier("user", "pencil", iterations=4096, salt=RFC_SALT)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert v.stored_key == hashlib.sha256(client_key).digest()
    assert v.server_key == hmac.digest(salted, b"Server Key", "sha256")
    assert (v.username, v.salt, v.iterations) == ("user", RFC_SALT, 4096)
    assert "pencil" not in repr(v)


def test_iteration_floor_and_default() -> None:
    """R53: floor 4096, default well above it."""
    with pytest.raises(UsageError, match="at least 4096"):
        make_verifier("u", "p", iterations=4095)
    with pytest.raises(UsageError, match="int"):
        make_verifier("u", "p", iterations=True)
    assert make_verifier("u", "p", iterations=4096).iterations == 4096
    assert scram_module.DEFAULT_ITERATIONS >= 100_000
    assert make_verifier("u", "p").iterations == scram_module.DEFAULT_ITERATIONS
    with pytest.raises(UsageError, match="unknown_user_iterations"):
        ScramServer(_lookup(), BINDING, unknown_user_iterations=1000)


def test_salt_is_random_and_long_enough() -> None:
    """R53: at least 16 random bytes."""
    a, b = make_verifier("u", "p", iterations=FAST), make_verifier("u", "p", iterations=FAST)
    assert len(a.salt) >= 16
    assert a.salt != b.salt
    assert a.stored_key != b.stored_key
    with pytest.raises(UsageError, match="16"):
        make_verifier("u", "p", iterations=FAST, salt=b"x" * 15)


def test_server_never_runs_pbkdf2(verifier: ScramVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """R53: a login costs the server HMACs and one hash, no key stretching."""
    client = ScramClient("rof-1", PASSWORD, BINDING)
    server = _server(verifier)
    first = client.first()
    server_first = server.receive(first)
    assert server_first is not None
    final = client.final(server_first)

    def forbidden(*args: object) -> bytes:
        raise AssertionError("PBKDF2 on the server")

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", forbidden)
    server2 = _server(verifier)
    assert server.receive(final) is not None  # first exchange finishes without PBKDF2
    server2.receive(ScramClient("nobody", "x", BINDING).first())


# --------------------------------------------------------------------------- SASLprep


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("I\u00adX", "IX"),  # RFC 4013 section 3, #1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # #2
        ("USER", "USER"),  # #3: case preserved
        ("\u00aa", "a"),  # #4: NFKC
        ("\u2168", "IX"),  # #5: NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
        ("\u0627\u0628", "\u0627\u0628"),  # right-to-left only: fine
    ],
)
def test_saslprep_rfc4013_examples(raw: str, prepared: str) -> None:
    assert saslprep(raw) == prepared


@pytest.mark.parametrize(
    "raw",
    [
        "\u0007",  # RFC 4013 section 3, #6: prohibited control character
        "\u0627\u0031",  # #7: bidi, starts RandAL but ends with a non-RandAL
        "\u0627a\u0627",  # RandAL and L mixed
        "",  # empty
        "\u00ad",  # empty after mapping
        "a\ue000",  # private use
        "a\ufffe",  # non-character
        "a\u200e",  # C.8 left-to-right mark
        "\ud800",  # lone surrogate
        "\u0221",  # unassigned in Unicode 3.2 (stored strings refuse it)
    ],
)
def test_saslprep_refusals(raw: str) -> None:
    with pytest.raises(UsageError, match="SASLprep") as info:
        saslprep(raw)
    assert raw not in str(info.value) or not raw


def test_saslprep_queries_allow_unassigned() -> None:
    assert saslprep("\u0221", allow_unassigned=True) == "\u0221"


def test_non_ascii_password_is_prepared_on_both_sides() -> None:
    """A password typed composed on one side and decomposed (or with NBSP) on the other."""
    v = make_verifier("r\u00f6f", "p\u00e4ss w\u00f6rd", iterations=FAST)
    client = ScramClient("ro\u0308f", "pa\u0308ss\u00a0wo\u0308rd", BINDING)
    peer, _ = _login(_server(v), client)
    assert peer.identity == "r\u00f6f"


def test_username_escaping_of_comma_and_equals() -> None:
    v = make_verifier("a,b=c", PASSWORD, iterations=FAST)
    client = ScramClient("a,b=c", PASSWORD, BINDING)
    peer, messages = _login(_server(v), client)
    assert b"n=a=2Cb=3Dc," in messages[0]
    assert peer.identity == "a,b=c"


def test_password_refused_by_saslprep_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="password") as info:
        make_verifier("u", "bad\u0007password", iterations=FAST)
    assert "bad" not in str(info.value)
    with pytest.raises(UsageError, match="password"):
        ScramClient("u", "bad\u0007password", BINDING)


# --------------------------------------------------------------------------- full exchanges


def test_plus_exchange(verifier: ScramVerifier) -> None:
    peer, messages = _login(_server(verifier), ScramClient("rof-1", PASSWORD, BINDING))
    assert messages[0].startswith(b"p=tls-server-end-point,,n=rof-1,r=")
    expected_c = base64.b64encode(b"p=tls-server-end-point,," + BINDING.data)
    assert messages[2].startswith(b"c=" + expected_c + b",r=")
    assert peer.identity == "rof-1"
    assert peer.method is Method.PASSWORD
    assert peer.evidence == {
        "username": "rof-1",
        "mechanism": "SCRAM-SHA-256-PLUS",
        "channel_binding": "tls-server-end-point",
    }


def test_plain_exchange_only_when_allowed(verifier: ScramVerifier) -> None:
    server = _server(verifier, ALLOW_PLAIN_SCRAM)
    assert server.mechanisms == ("SCRAM-SHA-256",)
    peer, _ = _login(server, ScramClient("rof-1", PASSWORD, ALLOW_PLAIN_SCRAM))
    assert peer.evidence["mechanism"] == "SCRAM-SHA-256"
    assert peer.evidence["channel_binding"] == "none"


def test_authenticator_binds_to_the_checked_connection(verifier: ScramVerifier) -> None:
    auth = ScramAuthenticator(_lookup(verifier), unknown_user_iterations=FAST)
    assert (auth.name, auth.needs) == ("scram", ContextNeeds.NOTHING)
    peer = tls.TlsPeer(
        "server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "none", None, None, None, None,
        channel_binding=BINDING,
    )  # fmt: skip
    peer_out, _ = _login(auth.authenticate(peer), ScramClient("rof-1", PASSWORD, BINDING))
    assert peer_out.evidence["mechanism"] == "SCRAM-SHA-256-PLUS"
    no_cert = tls.TlsPeer("server", "TLSv1.3", "x", "psk", None, None, None, None)
    with pytest.raises(AuthenticationFailed, match="certificate"):
        auth.authenticate(no_cert)


def test_credential_store_with_validity(verifier: ScramVerifier) -> None:
    """A store lookup at the server's clock; a revoked verifier fails like an unknown user."""
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    class Store:
        def __init__(self) -> None:
            self.seen: list[dt.datetime] = []
            self.verifier = verifier

        def psk_credentials(self, identity: bytes, *, at: dt.datetime) -> Sequence[PskCredential]:
            return ()

        def scram_verifier(self, username: str, *, at: dt.datetime) -> ScramVerifier | None:
            self.seen.append(at)
            return self.verifier if username == self.verifier.username else None

    store = Store()
    assert isinstance(store, CredentialStore)
    server = ScramServer(store, BINDING, clock=lambda: now, unknown_user_iterations=FAST)
    _login(server, ScramClient("rof-1", PASSWORD, BINDING))
    assert store.seen == [now]
    store.verifier = ScramVerifier(
        verifier.username,
        verifier.salt,
        verifier.iterations,
        verifier.stored_key,
        verifier.server_key,
        Validity(revoked_at=now - dt.timedelta(seconds=1)),
    )
    server = ScramServer(store, BINDING, clock=lambda: now, unknown_user_iterations=FAST)
    _fails_at_final(server, ScramClient("rof-1", PASSWORD, BINDING))


def test_weak_stored_verifier_is_unusable(
    verifier: ScramVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    """R53: a verifier below the floor (e.g. imported from elsewhere) never authenticates."""
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), verifier.salt, 1000)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    weak = ScramVerifier(
        "rof-1",
        verifier.salt,
        1000,
        hashlib.sha256(client_key).digest(),
        hmac.digest(salted, b"Server Key", "sha256"),
    )
    server = ScramServer(_lookup(weak), BINDING, unknown_user_iterations=FAST)
    client = ScramClient("rof-1", PASSWORD, BINDING)
    server_first = server.receive(client.first())
    assert server_first is not None
    assert server_first.endswith(b",i=4096")  # the decoy, not the weak verifier
    with pytest.raises(AuthenticationFailed):
        server.receive(client.final(server_first))
    assert "below the R53 floor" in caplog.text


# --------------------------------------------------------------------------- R54: uniform failure


def _server_first_shape(message: bytes) -> tuple[int, int, bytes]:
    r, s, i = message.split(b",")
    return len(r), len(base64.b64decode(s[2:])), i


def test_unknown_user_and_wrong_password_look_the_same(verifier: ScramVerifier) -> None:
    """R54: same server-first shape, same error, same message; no way to enumerate users."""
    wrong = _fails_at_final(_server(verifier), ScramClient("rof-1", "wrong", BINDING))
    unknown = _fails_at_final(_server(verifier), ScramClient("rof-9", PASSWORD, BINDING))
    assert _server_first_shape(wrong[1]) == _server_first_shape(unknown[1])
    assert wrong[1].endswith(b",i=4096") and unknown[1].endswith(b",i=4096")


def test_unknown_user_salt_is_stable_like_a_real_one(verifier: ScramVerifier) -> None:
    """A decoy salt that changed per attempt would give unknown users away."""
    auth = ScramAuthenticator(_lookup(verifier), unknown_user_iterations=FAST)

    def salt_of(username: str, authenticator: ScramAuthenticator = auth) -> bytes:
        message = authenticator.exchange(BINDING).receive(
            ScramClient(username, "x", BINDING).first()
        )
        assert message is not None
        return message.split(b",")[1]

    assert salt_of("ghost") == salt_of("ghost")
    assert salt_of("rof-1") == salt_of("rof-1") == b"s=" + base64.b64encode(verifier.salt)
    assert salt_of("ghost") != salt_of("ghost-2")
    other = ScramAuthenticator(_lookup(verifier), unknown_user_iterations=FAST)
    assert salt_of("ghost", other) != salt_of("ghost")  # per-deployment secret
    shared = bytes(32)
    a = ScramServer(_lookup(), BINDING, unknown_user_key=shared, unknown_user_iterations=FAST)
    b = ScramServer(_lookup(), BINDING, unknown_user_key=shared, unknown_user_iterations=FAST)
    first = ScramClient("ghost", "x", BINDING).first()
    a_first, b_first = a.receive(first), b.receive(first)
    assert a_first is not None and b_first is not None
    assert a_first.split(b",")[1] == b_first.split(b",")[1]  # a cluster shares the key


def test_unknown_user_and_wrong_password_take_the_same_time(verifier: ScramVerifier) -> None:
    """R54: the server's work is the same (loose bound: medians within 2.5x of each other)."""
    auth = ScramAuthenticator(_lookup(verifier), unknown_user_iterations=FAST)

    def server_time(username: str) -> float:
        client = ScramClient(username, "wrong password", BINDING)
        server = auth.exchange(BINDING)
        first = client.first()
        t0 = time.perf_counter()
        server_first = server.receive(first)
        t1 = time.perf_counter()
        assert server_first is not None
        final = client.final(server_first)
        t2 = time.perf_counter()
        with pytest.raises(AuthenticationFailed):
            server.receive(final)
        return (t1 - t0) + (time.perf_counter() - t2)

    known: list[float] = []
    unknown: list[float] = []
    for _ in range(60):  # interleaved, so machine noise hits both alike
        known.append(server_time("rof-1"))
        unknown.append(server_time("nobody"))
    a, b = statistics.median(known), statistics.median(unknown)
    assert max(a, b) / min(a, b) < 2.5, (a, b)


# --------------------------------------------------------------------------- channel binding


def test_relayed_exchange_is_refused(verifier: ScramVerifier) -> None:
    """R52: the client saw another certificate (a relay): the c= check fails."""
    _fails_at_final(_server(verifier, BINDING), ScramClient("rof-1", PASSWORD, OTHER_BINDING))


def test_tampered_channel_binding_attribute_is_refused(verifier: ScramVerifier) -> None:
    client = ScramClient("rof-1", PASSWORD, BINDING)
    server = _server(verifier)
    server_first = server.receive(client.first())
    assert server_first is not None
    final = client.final(server_first)
    _, rest = final.split(b",", 1)
    tampered = b"c=" + base64.b64encode(b"p=tls-server-end-point,," + OTHER_BINDING.data)
    with pytest.raises(AuthenticationFailed):
        server.receive(tampered + b"," + rest)


def test_channel_binding_values_are_checked() -> None:
    with pytest.raises(UsageError, match="tls-unique"):
        ScramServer(_lookup(), ChannelBinding("tls-unique", b"x" * 32))
    with pytest.raises(UsageError, match="28 to 64"):
        ScramServer(_lookup(), ChannelBinding("tls-server-end-point", b"x" * 20))
    with pytest.raises(UsageError, match="ALLOW_PLAIN_SCRAM"):
        ScramServer(_lookup(), None)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        ScramClient("u", "p", "tls-server-end-point")  # type: ignore[arg-type]
    assert repr(ALLOW_PLAIN_SCRAM) == "ALLOW_PLAIN_SCRAM"


def _self_signed(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    digest: hashes.HashAlgorithm | None,
) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cb test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, digest)  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        (hashes.SHA256(), hashlib.sha256),
        (hashes.SHA384(), hashlib.sha384),
        (hashes.SHA512(), hashlib.sha512),
    ],
)
def test_tls_server_end_point_uses_the_signature_hash(
    digest: hashes.HashAlgorithm, expected: Callable[[bytes], object]
) -> None:
    """RFC 5929 section 4.1."""
    der = _self_signed(ec.generate_private_key(ec.SECP384R1()), digest)
    assert tls_server_end_point(der) == expected(der).digest()  # type: ignore[attr-defined]


def test_tls_server_end_point_sha1_becomes_sha256() -> None:
    """RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256."""
    der = TestPKI().server_cert(hash_name="sha1").cert.public_bytes(serialization.Encoding.DER)
    cert = x509.load_der_x509_certificate(der)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_tls_server_end_point_undefined_for_eddsa() -> None:
    """RFC 5929 section 4.1 defines no hash for EdDSA signatures: refused, never guessed."""
    der = _self_signed(ed25519.Ed25519PrivateKey.generate(), None)
    with pytest.raises(Capif8secError, match="undefined"):
        tls_server_end_point(der)
    ctx = tls.client_context(
        present=tls.PRESENT_NO_CERTIFICATE, verify=tls.PeerVerification(TestPKI().trust_anchor_pem)
    )
    with socket.socket() as raw:
        conn = ctx.wrap_socket(raw, server_hostname="x", do_handshake_on_connect=False)
        with pytest.raises(UsageError, match="undefined"):
            channel_binding_for(conn, server_certificate=der)


# --------------------------------------------------------------------------- downgrade


def test_plus_server_refuses_y_flag(verifier: ScramVerifier) -> None:
    """RFC 5802 downgrade detection: 'y' (client thinks the server lacks -PLUS) is refused."""
    client = ScramClient("rof-1", PASSWORD, BINDING, server_offers_plus=False)
    first = client.first()
    assert first.startswith(b"y,,")
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        _server(verifier).receive(first)


def test_plus_server_refuses_plain_scram(verifier: ScramVerifier) -> None:
    first = ScramClient("rof-1", PASSWORD, ALLOW_PLAIN_SCRAM).first()
    assert first.startswith(b"n,,")
    with pytest.raises(AuthenticationFailed):
        _server(verifier).receive(first)


def test_plain_server_accepts_y_and_refuses_plus(verifier: ScramVerifier) -> None:
    _login(
        _server(verifier, ALLOW_PLAIN_SCRAM),
        ScramClient("rof-1", PASSWORD, BINDING, server_offers_plus=False),
    )
    with pytest.raises(AuthenticationFailed):
        _server(verifier, ALLOW_PLAIN_SCRAM).receive(
            ScramClient("rof-1", PASSWORD, BINDING).first()
        )


@pytest.mark.parametrize(
    "first",
    [
        b"p=tls-unique,,n=rof-1,r=abc",
        b"p=tls-exporter,,n=rof-1,r=abc",
        b"n,a=admin,n=rof-1,r=abc",  # authzid: identity comes from the username only
        b"p=tls-server-end-point,a=rof-1,n=rof-1,r=abc",
        b"p=tls-server-end-point,,m=ext,n=rof-1,r=abc",  # reserved-mext
    ],
)
def test_refused_client_first_variants(verifier: ScramVerifier, first: bytes) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        _server(verifier).receive(first)


def test_gs2_header_mismatch_between_first_and_final(verifier: ScramVerifier) -> None:
    """c= must carry the very gs2 header of the client-first (here 'y' instead of 'n')."""
    server = _server(verifier, ALLOW_PLAIN_SCRAM)
    client = ScramClient("rof-1", PASSWORD, ALLOW_PLAIN_SCRAM)
    server_first = server.receive(client.first())
    assert server_first is not None
    final = client.final(server_first)
    assert final.startswith(b"c=biws,")
    with pytest.raises(AuthenticationFailed):
        server.receive(b"c=eSws," + final[len(b"c=biws,") :])


# --------------------------------------------------------------------------- replay


def test_replayed_client_final_on_a_new_exchange(verifier: ScramVerifier) -> None:
    """A recorded successful exchange replayed: the fresh server nonce makes it fail."""
    client = ScramClient("rof-1", PASSWORD, BINDING)
    _, (first, _, final, _) = _login(_server(verifier), client)
    server = _server(verifier)
    assert server.receive(first) is not None
    with pytest.raises(AuthenticationFailed):
        server.receive(final)


def test_second_client_final_on_the_same_exchange(verifier: ScramVerifier) -> None:
    server = _server(verifier)
    _, (_, _, final, _) = _login(server, ScramClient("rof-1", PASSWORD, BINDING))
    with pytest.raises(AuthenticationFailed):
        server.receive(final)
    assert not server.complete
    with pytest.raises(UsageError):
        server.result()


def test_dead_exchange_stays_dead(verifier: ScramVerifier) -> None:
    client = ScramClient("rof-1", PASSWORD, BINDING)
    server = _server(verifier)
    server_first = server.receive(client.first())
    assert server_first is not None
    final = client.final(server_first)
    with pytest.raises(AuthenticationFailed):
        server.receive(b"garbage")
    with pytest.raises(AuthenticationFailed):
        server.receive(final)  # the right answer, too late


def test_result_before_completion_is_a_usage_error(verifier: ScramVerifier) -> None:
    with pytest.raises(UsageError):
        _server(verifier).result()


# --------------------------------------------------------------------------- attempt limiting


def test_failure_limiter_blocks_after_n_failures(verifier: ScramVerifier) -> None:
    """R54: after 3 failures even the right password fails, for known and unknown users."""
    clock = [0.0]
    limiter = FailureLimiter(max_failures=3, lockout=60.0, clock=lambda: clock[0])
    auth = ScramAuthenticator(
        _lookup(verifier), attempt_limiter=limiter, unknown_user_iterations=FAST
    )
    for _ in range(3):
        _fails_at_final(auth.exchange(BINDING), ScramClient("rof-1", "wrong", BINDING))
        _fails_at_final(auth.exchange(BINDING), ScramClient("ghost", "wrong", BINDING))
    assert not limiter.allow("rof-1") and not limiter.allow("ghost")
    # Blocked: the exchange still looks normal until the proof, then fails the same way.
    _fails_at_final(auth.exchange(BINDING), ScramClient("rof-1", PASSWORD, BINDING))
    clock[0] = 61.0
    assert limiter.allow("rof-1")
    _login(auth.exchange(BINDING), ScramClient("rof-1", PASSWORD, BINDING))
    assert limiter.allow("rof-1")


def test_failure_limiter_success_resets_and_memory_is_bounded() -> None:
    limiter = FailureLimiter(max_failures=2, max_tracked=100)
    limiter.failed("a")
    limiter.succeeded("a")
    limiter.failed("a")
    assert limiter.allow("a")
    for i in range(1000):
        limiter.failed(f"user-{i}")
    assert len(limiter._failures) == 100
    with pytest.raises(UsageError):
        FailureLimiter(max_failures=0)


def test_callable_limiter_and_protocol_hooks(verifier: ScramVerifier) -> None:
    _fails_at_final(
        _server(verifier, attempt_limiter=lambda name: name != "rof-1"),
        ScramClient("rof-1", PASSWORD, BINDING),
    )
    events: list[tuple[str, str]] = []

    class Recorder:
        def allow(self, username: str) -> bool:
            events.append(("allow", username))
            return True

        def failed(self, username: str) -> None:
            events.append(("failed", username))

        def succeeded(self, username: str) -> None:
            events.append(("succeeded", username))

    _login(_server(verifier, attempt_limiter=Recorder()), ScramClient("rof-1", PASSWORD, BINDING))
    _fails_at_final(_server(verifier, attempt_limiter=Recorder()), ScramClient("x", "y", BINDING))
    assert events == [
        ("allow", "rof-1"),
        ("succeeded", "rof-1"),
        ("allow", "x"),
        ("failed", "x"),
    ]
    with pytest.raises(UsageError):
        _server(verifier, attempt_limiter=42)


# --------------------------------------------------------------------------- client checks


def _client_after_first(**kw: object) -> ScramClient:
    client = ScramClient("user", "pencil", ALLOW_PLAIN_SCRAM, nonce=RFC_CLIENT_NONCE, **kw)  # type: ignore[arg-type]
    client.first()
    return client


@pytest.mark.parametrize(
    "server_first",
    [
        b"e=other-error",
        b"r=someoneelse%hvYDpWUa2RaTCAfuxFIlj,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  # no server nonce
        b"r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",  # below the floor
        b"r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
        b"r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
        b"r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",  # bad padding
        b"r=rOprNGfwEbeRWgbNEkqOabc,s=,i=4096",
        b"m=x,r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"r=rOprNGfwEbeRWgbNEkqOabc,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
    ],
)
def test_client_refuses_bad_server_first(server_first: bytes) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^authentication failed$"):
        _client_after_first().final(server_first)


def test_client_iteration_ceiling() -> None:
    """A hostile server cannot make the ROF spin PBKDF2 for minutes."""
    client = _client_after_first(max_iterations=5000)
    with pytest.raises(AuthenticationFailed):
        client.final(b"r=rOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=5001")


def test_client_refuses_server_error_at_the_end() -> None:
    client = _client_after_first()
    client.final(RFC_SERVER_FIRST)
    with pytest.raises(AuthenticationFailed):
        client.verify(scram_module.SERVER_ERROR_MESSAGE)


def test_client_call_order_is_enforced() -> None:
    client = ScramClient("u", "p", BINDING)
    with pytest.raises(UsageError):
        client.final(b"r=x,s=eA==,i=4096")
    with pytest.raises(UsageError):
        client.verify(b"v=eA==")
    client.first()
    with pytest.raises(UsageError):
        client.first()
    with pytest.raises(UsageError, match="nonce"):
        ScramClient("u", "p", BINDING, nonce="has,comma")
    with pytest.raises(UsageError, match="nonce"):
        ScramServer(_lookup(), BINDING, nonce="")


# --------------------------------------------------------------------------- secrets hygiene


def test_secrets_never_in_logs_reprs_or_errors(
    verifier: ScramVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    texts: list[str] = []
    secret_values: list[bytes] = [verifier.stored_key, verifier.server_key]
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), verifier.salt, verifier.iterations)
    secret_values += [salted, hmac.digest(salted, b"Client Key", "sha256")]
    attempts = [(PASSWORD, "rof-1"), ("wrong " + PASSWORD, "rof-1"), (PASSWORD, "ghost")]
    for password, username in attempts:
        client = ScramClient(username, password, BINDING)
        server = _server(verifier)
        texts += [repr(client), str(client), repr(server)]
        first = client.first()
        server_first = server.receive(first)
        assert server_first is not None
        final = client.final(server_first)
        secret_values.append(base64.b64decode(final.rsplit(b",p=", 1)[1]))  # the proof
        try:
            server_final = server.receive(final)
            assert server_final is not None
            client.verify(server_final)
            peer = server.result()
            texts += [repr(peer), json.dumps(peer.as_dict())]
        except AuthenticationFailed as exc:
            texts += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
        texts += [repr(client), repr(server)]
    texts += [repr(verifier), str(verifier), caplog.text]
    for bad in (b"\xff", b"n,,n=rof-1,r=x", b"p=tls-server-end-point,,n=\x00,r=1"):
        try:
            _server(verifier).receive(bad)
        except AuthenticationFailed as exc:
            texts.append(str(exc))
    blob = "\n".join(texts)
    assert PASSWORD not in blob
    for value in secret_values:
        for form in (value.hex(), base64.b64encode(value).decode(), repr(value)):
            assert form not in blob


def test_failure_messages_are_uniform(verifier: ScramVerifier) -> None:
    messages = set()
    cases: list[Callable[[], object]] = [
        lambda: _server(verifier).receive(b"\xff\xfe"),
        lambda: _server(verifier).receive(
            ScramClient("rof-1", PASSWORD, OTHER_BINDING, server_offers_plus=False).first()
        ),
    ]
    for case in cases:
        with pytest.raises(AuthenticationFailed) as info:
            case()
        messages.add(str(info.value))
    for client in (
        ScramClient("rof-1", "wrong", BINDING),
        ScramClient("nobody", PASSWORD, BINDING),
        ScramClient("rof-1", PASSWORD, OTHER_BINDING),
    ):
        server = _server(verifier)
        server_first = server.receive(client.first())
        assert server_first is not None
        with pytest.raises(AuthenticationFailed) as info:
            server.receive(client.final(server_first))
        messages.add(str(info.value))
        assert info.value.__cause__ is None and info.value.__suppress_context__
    assert messages == {"authentication failed"}


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=300,
    deadline=dt.timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SCRAM_ALPHABET = "nypcrsivem=,aA0189+/_-.%$tls-server-end-point\x00\u00e9\u0627 "
_FUZZ_VERIFIER = make_verifier("rof-1", PASSWORD, iterations=FAST)


def _mutations() -> st.SearchStrategy[Callable[[bytes], bytes]]:
    def build(index: int, cut: int, insert: bytes) -> Callable[[bytes], bytes]:
        def mutate(message: bytes) -> bytes:
            at = index % (len(message) + 1)
            return message[:at] + insert + message[at + cut :]

        return mutate

    return st.builds(
        build,
        st.integers(0, 400),
        st.integers(0, 8),
        st.binary(max_size=8) | st.sampled_from([b",", b"=", b",p=", b",r=", b"=2C", b"\x00"]),
    )


def _only_auth_failed(action: Callable[[], object]) -> None:
    start = time.perf_counter()
    try:
        action()
    except AuthenticationFailed as exc:
        message = str(exc)
        assert message == "authentication failed"
    assert time.perf_counter() - start < 0.5


@FUZZ
@given(st.binary(max_size=3000) | st.text(SCRAM_ALPHABET, max_size=300).map(str.encode))
def test_fuzz_client_first(message: bytes) -> None:
    _only_auth_failed(lambda: _server(_FUZZ_VERIFIER).receive(message))


@FUZZ
@given(_mutations())
def test_fuzz_client_first_mutations(mutate: Callable[[bytes], bytes]) -> None:
    first = b"p=tls-server-end-point,,n=rof-1,r=rOprNGfwEbeRWgbNEkqO"
    _only_auth_failed(lambda: _server(_FUZZ_VERIFIER).receive(mutate(first)))


_FIXED_FIRST = b"p=tls-server-end-point,,n=rof-1,r=fuzzclientnonce"
_FIXED_SERVER_NONCE = "fuzzservernonce"
_FIXED_CLIENT = ScramClient("rof-1", PASSWORD, BINDING, nonce="fuzzclientnonce")
_FIXED_CLIENT.first()
_FIXED_FINAL = _FIXED_CLIENT.final(
    ScramServer(_lookup(_FUZZ_VERIFIER), BINDING, nonce=_FIXED_SERVER_NONCE).receive(_FIXED_FIRST)
    or b""
)


def _challenged_server() -> ScramServer:
    server = _server(_FUZZ_VERIFIER, nonce=_FIXED_SERVER_NONCE)
    server.receive(_FIXED_FIRST)
    return server


def test_fixed_final_is_valid() -> None:
    """The fuzzers below start from a client-final that really works."""
    assert _challenged_server().receive(_FIXED_FINAL) is not None


@FUZZ
@given(st.binary(max_size=3000) | st.text(SCRAM_ALPHABET, max_size=300).map(str.encode))
def test_fuzz_client_final(message: bytes) -> None:
    _only_auth_failed(lambda: _challenged_server().receive(message))


@FUZZ
@given(_mutations())
def test_fuzz_client_final_mutations(mutate: Callable[[bytes], bytes]) -> None:
    mutated = mutate(_FIXED_FINAL)
    server = _challenged_server()
    try:
        server.receive(mutated)
    except AuthenticationFailed:
        return
    # Every byte of a client-final is authenticated: only the unchanged message passes.
    assert mutated == _FIXED_FINAL


@FUZZ
@given(st.binary(max_size=3000) | st.text(SCRAM_ALPHABET, max_size=300).map(str.encode))
def test_fuzz_server_first_at_the_client(message: bytes) -> None:
    client = ScramClient("rof-1", PASSWORD, BINDING, max_iterations=FAST)
    client.first()
    _only_auth_failed(lambda: client.final(message))


@FUZZ
@given(_mutations())
def test_fuzz_server_messages_mutated_at_the_client(mutate: Callable[[bytes], bytes]) -> None:
    client = ScramClient("user", "pencil", ALLOW_PLAIN_SCRAM, nonce=RFC_CLIENT_NONCE)
    client.first()
    _only_auth_failed(lambda: client.final(mutate(RFC_SERVER_FIRST)))
    client = _client_after_first()
    client.final(RFC_SERVER_FIRST)
    mutated = mutate(RFC_SERVER_FINAL)

    def verify() -> None:
        client.verify(mutated)
        assert mutated == RFC_SERVER_FINAL or mutated.startswith(RFC_SERVER_FINAL + b",")

    _only_auth_failed(verify)


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_server_final_at_the_client(message: bytes) -> None:
    client = _client_after_first()
    client.final(RFC_SERVER_FIRST)
    _only_auth_failed(lambda: client.verify(message))


def test_oversized_messages_are_refused_quickly(verifier: ScramVerifier) -> None:
    start = time.perf_counter()
    for size in (2049, 10_000_000):
        with pytest.raises(AuthenticationFailed):
            _server(verifier).receive(b"n,,n=rof-1,r=" + b"a" * size)
    assert time.perf_counter() - start < 0.5


def test_non_bytes_message_is_a_usage_error(verifier: ScramVerifier) -> None:
    with pytest.raises(UsageError):
        _server(verifier).receive("n,,n=rof-1,r=abc")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real TLS


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def _server_ctx(issued: IssuedCert) -> tls.CapifContext:
    return tls.server_context(
        present=tls.Identity(issued.chain_pem, issued.key_pem),
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
    )


def _client_ctx(pki: TestPKI) -> tls.CapifContext:
    return tls.client_context(
        present=tls.PRESENT_NO_CERTIFICATE,
        verify=tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()]),
    )


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(len(data).to_bytes(2, "big") + data)


def _recv(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    return exactly(int.from_bytes(exactly(2), "big"))


@contextmanager
def _listener() -> Iterator[socket.socket]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    try:
        yield ls
    finally:
        ls.close()


def _port(ls: socket.socket) -> int:
    return int(ls.getsockname()[1])


def _ccf(
    ls: socket.socket,
    ctx: tls.CapifContext,
    auth: ScramAuthenticator,
    results: list[object],
    plain: bool = False,
) -> threading.Thread:
    """A CCF that authenticates one ROF with SCRAM over the TLS stream."""

    def run() -> None:
        try:
            sock, peer = blocking.accept(ls, ctx, timeout=5)
        except Exception as exc:  # recorded for the test to assert on
            results.append(exc)
            return
        with sock:
            try:
                binding = channel_binding_for(sock)
                results.append((binding, peer.channel_binding))
                exchange = auth.exchange(ALLOW_PLAIN_SCRAM if plain else binding)
                for _ in range(2):
                    reply = exchange.receive(_recv(sock))
                    assert reply is not None
                    _send(sock, reply)
                results.append(exchange.result())
            except AuthenticationFailed as exc:
                _send(sock, scram_module.SERVER_ERROR_MESSAGE)
                results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _rof_login(sock: socket.socket, client: ScramClient) -> None:
    _send(sock, client.first())
    _send(sock, client.final(_recv(sock)))
    client.verify(_recv(sock))


def test_scram_plus_over_real_tls(pki: TestPKI, verifier: ScramVerifier) -> None:
    """R52: SCRAM-PLUS bound to the CCF certificate, both sides computing the same binding."""
    issued = pki.server_cert()
    cert_der = issued.cert.public_bytes(serialization.Encoding.DER)
    auth = ScramAuthenticator(_lookup(verifier), unknown_user_iterations=FAST)
    results: list[object] = []
    with _listener() as ls:
        thread = _ccf(ls, _server_ctx(issued), auth, results)
        sock, server_peer = blocking.connect(
            "127.0.0.1", _port(ls), _client_ctx(pki), server_hostname="ccf.capif.example"
        )
        with sock:
            binding = channel_binding_for(sock)
            assert binding == channel_binding_for(server_peer)
            assert binding == channel_binding_for(sock, server_certificate=cert_der)
            assert binding.data == hashlib.sha256(cert_der).digest()
            client = ScramClient("rof-1", PASSWORD, binding)
            _rof_login(sock, client)
            assert client.complete
        thread.join(5)
    bindings, peer = results
    assert isinstance(bindings, tuple)
    server_binding, checked_binding = bindings
    assert server_binding == checked_binding == binding
    assert isinstance(peer, AuthenticatedPeer)
    assert peer.identity == "rof-1"
    assert peer.evidence["channel_binding"] == "tls-server-end-point"


def _relay(
    ls: socket.socket, mitm_ctx: tls.CapifContext, upstream: int, pki: TestPKI
) -> threading.Thread:
    """A relay holding a certificate the ROF accepts: forwards the SCRAM messages both ways."""

    def run() -> None:
        try:
            down, _ = blocking.accept(ls, mitm_ctx, timeout=5)
            up, _ = blocking.connect(
                "127.0.0.1", upstream, _client_ctx(pki), server_hostname="ccf.capif.example"
            )
        except Exception:
            return
        with down, up:
            for _ in range(2):
                _send(up, _recv(down))
                _send(down, _recv(up))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("plain", [False, True], ids=["scram-plus", "plain-scram"])
def test_relay_through_another_certificate(
    pki: TestPKI, verifier: ScramVerifier, plain: bool
) -> None:
    """A MITM relay with a second trusted certificate: -PLUS refuses, plain SCRAM cannot tell.

    This is why plain SCRAM is a named downgrade (ALLOW_PLAIN_SCRAM) and never a default.
    """
    auth = ScramAuthenticator(_lookup(verifier), unknown_user_iterations=FAST)
    results: list[object] = []
    with _listener() as real, _listener() as mitm:
        ccf = _ccf(real, _server_ctx(pki.server_cert()), auth, results, plain=plain)
        relay = _relay(mitm, _server_ctx(pki.server_cert()), _port(real), pki)
        sock, _ = blocking.connect(
            "127.0.0.1", _port(mitm), _client_ctx(pki), server_hostname="ccf.capif.example"
        )
        with sock:
            binding = channel_binding_for(sock)
            client = ScramClient("rof-1", PASSWORD, ALLOW_PLAIN_SCRAM if plain else binding)
            if plain:
                _rof_login(sock, client)
            else:
                with pytest.raises(AuthenticationFailed):
                    _rof_login(sock, client)
        ccf.join(5)
        relay.join(5)
    bindings, outcome = results
    assert isinstance(bindings, tuple)
    server_binding = bindings[0]
    assert server_binding != binding  # the two TLS channels have different certificates
    if plain:
        assert isinstance(outcome, AuthenticatedPeer)  # the relay succeeded: no binding
    else:
        assert isinstance(outcome, AuthenticationFailed)


def test_channel_binding_for_needs_a_certificate(pki: TestPKI) -> None:
    with pytest.raises(UsageError, match="takes"):
        channel_binding_for(object())  # type: ignore[arg-type]
    no_cert = tls.TlsPeer("client", "TLSv1.3", "x", "psk", None, None, None, None)
    with pytest.raises(UsageError, match="no tls-server-end-point"):
        channel_binding_for(no_cert)
    plain = socket.socket()
    server_side = _server_ctx(pki.server_cert())
    raw = server_side.wrap_socket(plain, server_side=True, do_handshake_on_connect=False)
    try:
        assert channel_binding_for(raw).type == "tls-server-end-point"  # from the context
    finally:
        raw.close()
