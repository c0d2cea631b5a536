"""TS 33.210 context builders, the post-handshake check, rotation and the I/O helpers (R27-R41).

Every handshake here is real, over loopback, between capif8sec's own contexts (the openssl binary
as an independent peer is in tests/interop/).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from capif8sec import tls
from capif8sec.errors import HandshakeRejected, TlsConfigError
from capif8sec.integrations import aio, blocking
from capif8sec.testing import IssuedCert, TestPKI


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def _identity(issued: IssuedCert) -> tls.Identity:
    return tls.Identity(issued.chain_pem, issued.key_pem)


def _verify(pki: TestPKI, **kw: object) -> tls.PeerVerification:
    return tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()], **kw)  # type: ignore[arg-type]


def _server(pki: TestPKI, **kw: object) -> tls.CapifContext:
    return tls.server_context(present=_identity(pki.server_cert()), verify=_verify(pki), **kw)  # type: ignore[arg-type]


def _client(pki: TestPKI, rof: str = "rof-1", **kw: object) -> tls.CapifContext:
    return tls.client_context(present=_identity(pki.client_cert(rof)), verify=_verify(pki), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- profile as data


def test_server_description_is_the_ts33210_profile(pki: TestPKI) -> None:
    """R28-R31, R34, R35, R37, R38, R41: read back without a network peer."""
    d = tls.describe(_server(pki))
    assert d.side == "server"
    assert (d.minimum_version, d.maximum_version) == ("TLSv1.2", "TLSv1.3")
    assert d.tls12_suites == tls.TLS12_ECDHE_SUITES + tls.TLS12_DHE_SUITES
    assert set(d.tls13_suites) == set(tls.TLS13_SUITES)
    assert "TLS_AES_128_GCM_SHA256" in d.tls13_suites
    assert not d.compression
    assert not d.renegotiation
    assert not d.session_tickets
    assert d.client_auth == "required"
    for suite in d.tls12_suites:  # R31: AEAD with forward secrecy only
        assert suite.startswith(("ECDHE-", "DHE-"))
        assert "GCM" in suite


def test_client_description(pki: TestPKI) -> None:
    d = tls.describe(_client(pki))
    assert d.side == "client"
    assert d.client_auth == "server certificate required"
    assert not d.session_tickets
    assert d.minimum_version == "TLSv1.2"


def test_tls13_only_and_no_dhe_variants(pki: TestPKI) -> None:
    """R29 (TLS 1.3-only option), digest 3.5 (DHE can be switched off)."""
    d13 = tls.describe(_server(pki, profile=tls.TS33210_TLS13_ONLY))
    assert d13.minimum_version == "TLSv1.3"
    assert d13.tls12_suites == ()
    nodhe = tls.describe(_server(pki, profile=tls.TS33210.without_dhe()))
    assert nodhe.tls12_suites == tls.TLS12_ECDHE_SUITES


def test_stdlib_default_context_is_described_as_non_compliant() -> None:
    """describe() reads any context: the stdlib default server context is not the profile."""
    d = tls.describe(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    assert d.client_auth == "none"
    assert d.session_tickets
    assert [s for s in d.tls12_suites if "GCM" not in s and "CHACHA" not in s]  # CBC suites


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.SSLv3]
)
def test_old_versions_cannot_be_configured(version: ssl.TLSVersion) -> None:
    """R28: nothing older than TLS 1.2 can be named."""
    with pytest.raises(TlsConfigError, match=r"TLS 1\.2 and TLS 1\.3"):
        tls.TlsProfile("old", version)


# --------------------------------------------------------------------------- builder refusals


def test_builders_force_both_decisions(pki: TestPKI) -> None:
    """rustls-style: no default for what to present or how to verify."""
    server = _identity(pki.server_cert())
    with pytest.raises(TypeError):
        tls.server_context(present=server)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        tls.client_context(verify=_verify(pki))  # type: ignore[call-arg]
    with pytest.raises(TlsConfigError, match="PeerVerification"):
        tls.server_context(present=server, verify=None)  # type: ignore[arg-type]
    with pytest.raises(TlsConfigError, match="must verify the server"):
        tls.client_context(
            present=tls.PRESENT_NO_CERTIFICATE,
            verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,  # type: ignore[arg-type]
        )
    with pytest.raises(TlsConfigError, match="must present"):
        tls.server_context(
            present=tls.PRESENT_NO_CERTIFICATE,  # type: ignore[arg-type]
            verify=_verify(pki),
        )
    with pytest.raises(TlsConfigError, match="expected_identity is for clients"):
        tls.server_context(present=server, verify=_verify(pki, expected_identity="x"))


def test_inconsistent_material_fails_when_built(pki: TestPKI) -> None:
    a, b = pki.server_cert(), pki.server_cert()
    with pytest.raises(TlsConfigError, match="does not match"):
        tls.server_context(present=tls.Identity(a.chain_pem, b.key_pem), verify=_verify(pki))
    with pytest.raises(TlsConfigError, match="trust anchor"):
        tls.server_context(
            present=tls.Identity(a.chain_pem + pki.root_ca.cert_pem, a.key_pem),
            verify=_verify(pki),
        )
    with pytest.raises(TlsConfigError):
        tls.server_context(present=tls.Identity(b"garbage", a.key_pem), verify=_verify(pki))
    with pytest.raises(TlsConfigError):
        tls.server_context(present=_identity(a), verify=tls.PeerVerification([b"nope"]))
    with pytest.raises(TlsConfigError, match="ALPN"):
        tls.server_context(present=_identity(a), verify=_verify(pki), alpn=[""])


def test_identity_never_shows_the_key(pki: TestPKI) -> None:
    issued = pki.server_cert()
    text = repr(tls.Identity(issued.chain_pem, issued.key_pem, password=b"hunter2hunter2"))
    assert "PRIVATE" not in text
    assert "hunter2" not in text


# --------------------------------------------------------------------------- real handshakes


@contextmanager
def _listener() -> Iterator[socket.socket]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    try:
        yield ls
    finally:
        ls.close()


def _serve_once(
    ls: socket.socket, ctx: tls.CapifContext, results: list[object], timeout: float = 5.0
) -> threading.Thread:
    def run() -> None:
        try:
            sock, peer = blocking.accept(ls, ctx, timeout=timeout)
            results.append(peer)
            sock.sendall(b"hello")
            sock.close()
        except Exception as exc:  # recorded for the test to assert on
            results.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _port(ls: socket.socket) -> int:
    return int(ls.getsockname()[1])


@pytest.mark.parametrize("profile", [tls.TS33210, tls.TS33210_TLS13_ONLY])
def test_mutual_certificate_handshake_both_sides_checked(
    pki: TestPKI, profile: tls.TlsProfile
) -> None:
    """R56: both sides get the other's SAN identities from an authenticated certificate."""
    results: list[object] = []
    with _listener() as ls:
        t = _serve_once(ls, _server(pki, profile=profile), results)
        sock, server_peer = blocking.connect(
            "127.0.0.1", _port(ls), _client(pki, "rof-7"), server_hostname="ccf.capif.example"
        )
        assert sock.recv(5) == b"hello"
        sock.close()
        t.join(5)
    (client_peer,) = results
    assert isinstance(client_peer, tls.TlsPeer)
    assert client_peer.authentication == "certificate"
    assert client_peer.identities is not None
    assert client_peer.identities.uris == ("urn:capif:rof:rof-7",)
    assert client_peer.chain is not None
    assert len(client_peer.chain.chain) == 3  # leaf, TLS CA, root: the verified chain
    assert server_peer.identities is not None
    assert server_peer.identities.dns_names == ("ccf.capif.example",)
    assert server_peer.version == "TLSv1.3"
    assert client_peer.server_name == "ccf.capif.example"  # the SNI the client sent (R36)


def test_tls12_handshake_uses_a_profile_suite(pki: TestPKI) -> None:
    """R31: a TLS 1.2 client gets an ECDHE AES-GCM suite."""
    results: list[object] = []
    client = _client(pki)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with _listener() as ls:
        t = _serve_once(ls, _server(pki), results)
        sock, peer = blocking.connect(
            "127.0.0.1", _port(ls), client, server_hostname="ccf.capif.example"
        )
        sock.close()
        t.join(5)
    assert peer.version == "TLSv1.2"
    assert peer.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_client_refuses_a_server_with_the_wrong_name(pki: TestPKI) -> None:
    """R58: the client checks the server against its reference identity."""
    results: list[object] = []
    with _listener() as ls:
        t = _serve_once(ls, _server(pki), results)
        with pytest.raises(HandshakeRejected, match="does not match"):
            blocking.connect(
                "127.0.0.1", _port(ls), _client(pki), server_hostname="other.capif.example"
            )
        t.join(5)


def test_expected_uri_identity_overrides_server_hostname(pki: TestPKI) -> None:
    server = pki.server_cert("ccf.capif.example", uris=["urn:capif:ccf:1"])
    sctx = tls.server_context(present=_identity(server), verify=_verify(pki))
    good = tls.client_context(
        present=_identity(pki.client_cert()),
        verify=_verify(pki, expected_identity="urn:capif:ccf:1"),
    )
    bad = tls.client_context(
        present=_identity(pki.client_cert()),
        verify=_verify(pki, expected_identity="urn:capif:ccf:2"),
    )
    for ctx, ok in ((good, True), (bad, False)):
        results: list[object] = []
        with _listener() as ls:
            t = _serve_once(ls, sctx, results)
            if ok:
                sock, _ = blocking.connect(
                    "127.0.0.1", _port(ls), ctx, server_hostname="ccf.capif.example"
                )
                sock.close()
            else:
                with pytest.raises(HandshakeRejected):
                    blocking.connect(
                        "127.0.0.1", _port(ls), ctx, server_hostname="ccf.capif.example"
                    )
            t.join(5)


def _refused_client(pki: TestPKI, client_issued: IssuedCert) -> object:
    results: list[object] = []
    ctx = tls.client_context(present=_identity(client_issued), verify=_verify(pki))
    with _listener() as ls:
        t = _serve_once(ls, _server(pki), results)
        try:
            sock, _ = blocking.connect(
                "127.0.0.1", _port(ls), ctx, server_hostname="ccf.capif.example"
            )
            sock.settimeout(5)
            with contextlib.suppress(ssl.SSLError, OSError):
                assert sock.recv(5) == b"", "a refused client must not receive data"
            sock.close()
        except HandshakeRejected:
            pass
        t.join(5)
    (outcome,) = results
    return outcome


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"key_usage_critical": False}, "common.extension_criticality"),
        ({"crl_urls": ()}, "ee.crl_distribution_point"),
        ({"key_type": "p384"}, "common.signer_strength"),
    ],
)
def test_server_refuses_client_certificates_openssl_accepts(
    pki: TestPKI, change: dict[str, object], rule: str
) -> None:
    """R12/R14/R8: OpenSSL completes these handshakes; the capif8sec check refuses them."""
    issued = pki.tls_ca.issue(pki.spec("client", **change))
    outcome = _refused_client(pki, issued)
    assert isinstance(outcome, HandshakeRejected)
    assert rule in str(outcome)


def test_server_refuses_a_revoked_client(pki: TestPKI) -> None:
    """R25: the CRL in the server's PeerVerification is consulted after every handshake."""
    issued = pki.client_cert("rof-revoked")
    pki.tls_ca.revoke(issued)
    outcome = _refused_client(pki, issued)
    assert isinstance(outcome, HandshakeRejected)
    assert "revoked" in str(outcome)


def test_server_without_client_auth_is_explicit(pki: TestPKI) -> None:
    sctx = tls.server_context(
        present=_identity(pki.server_cert()), verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED
    )
    assert tls.describe(sctx).client_auth == "none"
    cctx = tls.client_context(present=tls.PRESENT_NO_CERTIFICATE, verify=_verify(pki))
    results: list[object] = []
    with _listener() as ls:
        t = _serve_once(ls, sctx, results)
        sock, _ = blocking.connect(
            "127.0.0.1", _port(ls), cctx, server_hostname="ccf.capif.example"
        )
        sock.close()
        t.join(5)
    (peer,) = results
    assert isinstance(peer, tls.TlsPeer)
    assert peer.authentication == "none"
    assert peer.identities is None


def test_sni_for_an_unknown_name_is_refused(pki: TestPKI) -> None:
    """R36: server_names makes an unknown SNI fail with unrecognized_name."""
    sctx = _server(pki, server_names=["ccf.capif.example"])
    results: list[object] = []
    with _listener() as ls:
        t = _serve_once(ls, sctx, results)
        with pytest.raises(HandshakeRejected, match=r"UNRECOGNIZED_NAME|unrecognized"):
            blocking.connect(
                "127.0.0.1", _port(ls), _client(pki), server_hostname="other.capif.example"
            )
        t.join(5)
    assert isinstance(results[0], HandshakeRejected)


def test_alpn_is_negotiated(pki: TestPKI) -> None:
    """R40: ALPN configurable; the selected protocol is reported."""
    results: list[object] = []
    with _listener() as ls:
        t = _serve_once(ls, _server(pki, alpn=["http/1.1"]), results)
        sock, peer = blocking.connect(
            "127.0.0.1",
            _port(ls),
            _client(pki, alpn=["http/1.1"]),
            server_hostname="ccf.capif.example",
        )
        sock.close()
        t.join(5)
    assert peer.alpn == "http/1.1"


def test_check_refuses_foreign_contexts(pki: TestPKI) -> None:
    """A plain stdlib context cannot be checked: capif8sec does not guess its settings."""
    plain = ssl.create_default_context()
    with pytest.raises(TlsConfigError):
        blocking.connect("127.0.0.1", 9, plain)


# --------------------------------------------------------------------------- rotation


def test_rotation_serves_new_material_and_keeps_old_connections(pki: TestPKI) -> None:
    """Credential rotation: new connections see the new cert; an open one is unaffected."""
    old = pki.server_cert("ccf.capif.example")
    sctx = tls.server_context(present=_identity(old), verify=_verify(pki))
    new = pki.server_cert("ccf.capif.example")
    fingerprints: list[str | None] = []
    with _listener() as ls:
        results: list[object] = []
        t = _serve_once(ls, sctx, results)
        first, peer1 = blocking.connect(
            "127.0.0.1", _port(ls), _client(pki), server_hostname="ccf.capif.example"
        )
        t.join(5)
        fingerprints.append(peer1.certificate_fingerprint)
        sctx.rotate(present=_identity(new))
        t = _serve_once(ls, sctx, results)
        second, peer2 = blocking.connect(
            "127.0.0.1", _port(ls), _client(pki), server_hostname="ccf.capif.example"
        )
        t.join(5)
        fingerprints.append(peer2.certificate_fingerprint)
        assert first.recv(5) == b"hello"  # the first connection still works
        first.close()
        second.close()
    assert fingerprints[0] != fingerprints[1]
    from cryptography.hazmat.primitives import hashes

    assert fingerprints[1] == new.cert.fingerprint(hashes.SHA256()).hex()


def test_rotating_trust_and_crls_takes_effect_on_the_next_handshake(pki: TestPKI) -> None:
    """R62: revocation through a rotated CRL is seen by the next handshake."""
    rof = pki.client_cert("rof-rotate")
    sctx = tls.server_context(present=_identity(pki.server_cert()), verify=_verify(pki))
    cctx = tls.client_context(present=_identity(rof), verify=_verify(pki))
    with _listener() as ls:
        results: list[object] = []
        t = _serve_once(ls, sctx, results)
        sock, _ = blocking.connect(
            "127.0.0.1", _port(ls), cctx, server_hostname="ccf.capif.example"
        )
        sock.close()
        t.join(5)
        assert isinstance(results[-1], tls.TlsPeer)
        sctx.rotate(
            verify=tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl(revoked=[rof])])
        )
        t = _serve_once(ls, sctx, results)
        try:
            sock, _ = blocking.connect(
                "127.0.0.1", _port(ls), cctx, server_hostname="ccf.capif.example"
            )
            sock.close()
        except HandshakeRejected:
            pass
        t.join(5)
        assert isinstance(results[-1], HandshakeRejected)
    with pytest.raises(TlsConfigError):
        _client(pki).rotate(present=_identity(rof))


# --------------------------------------------------------------------------- timeouts, asyncio


def test_blocking_accept_times_out_a_stalled_peer(pki: TestPKI) -> None:
    """A client that connects and says nothing cannot hold the acceptor past the timeout."""
    with _listener() as ls:
        stalled = socket.create_connection(("127.0.0.1", _port(ls)))
        start = time.monotonic()
        with pytest.raises(HandshakeRejected, match="timed out"):
            blocking.accept(ls, _server(pki), timeout=0.5)
        assert time.monotonic() - start < 3
        stalled.close()


def _run(coro_factory: Callable[[], object]) -> object:
    return asyncio.run(coro_factory())  # type: ignore[arg-type]


def test_asyncio_helpers_check_both_sides(pki: TestPKI) -> None:
    sctx, cctx = _server(pki), _client(pki, "rof-async")
    seen: list[tls.TlsPeer] = []

    async def main() -> tls.TlsPeer:
        async def handler(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, peer: tls.TlsPeer
        ) -> None:
            seen.append(peer)
            w.write(b"hi")
            await w.drain()

        server = await aio.start_server(handler, "127.0.0.1", 0, ssl=sctx, handshake_timeout=2)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer, peer = await aio.open_connection(
                "127.0.0.1", port, ssl=cctx, server_hostname="ccf.capif.example"
            )
            assert await reader.read(2) == b"hi"
            writer.close()
            await writer.wait_closed()
        return peer

    peer = asyncio.run(main())
    assert peer.identities is not None
    assert peer.identities.dns_names == ("ccf.capif.example",)
    assert seen[0].identities is not None
    assert seen[0].identities.uris == ("urn:capif:rof:rof-async",)


def test_asyncio_server_drops_a_slowloris_and_keeps_serving(pki: TestPKI) -> None:
    """A peer that stalls mid-handshake is cut at the handshake timeout; others are served."""
    sctx, cctx = _server(pki), _client(pki)

    async def main() -> float:
        async def handler(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, peer: tls.TlsPeer
        ) -> None:
            w.write(b"ok")
            await w.drain()

        server = await aio.start_server(handler, "127.0.0.1", 0, ssl=sctx, handshake_timeout=0.5)
        port = server.sockets[0].getsockname()[1]
        async with server:
            r0, w0 = await asyncio.open_connection("127.0.0.1", port)
            w0.write(b"\x16\x03\x01\x00")  # the start of a ClientHello, then nothing
            await w0.drain()
            start = time.monotonic()
            reader, writer, _ = await aio.open_connection(
                "127.0.0.1", port, ssl=cctx, server_hostname="ccf.capif.example"
            )
            assert await reader.read(2) == b"ok"
            writer.close()
            closed = await asyncio.wait_for(r0.read(), 5)  # the server hangs up on the staller
            assert closed == b""
            w0.close()
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert elapsed < 4


def test_client_aborts_without_a_common_alpn_protocol(pki: TestPKI) -> None:
    """R40: a client that asked for ALPN refuses a server that selected none."""
    results: list[object] = []
    with _listener() as ls:
        t = _serve_once(ls, _server(pki, alpn=["http/1.1"]), results)
        with pytest.raises(HandshakeRejected, match="ALPN"):
            blocking.connect(
                "127.0.0.1",
                _port(ls),
                _client(pki, alpn=["h2"]),
                server_hostname="ccf.capif.example",
            )
        t.join(5)


def _resumed_twice(server_ctx: ssl.SSLContext, rof: IssuedCert, tmp_path: object) -> list[bool]:
    """Two TLS 1.2 connections from a client that offers the first session again: whether
    the server resumed each (the server's own ``session_reused``)."""
    from pathlib import Path

    d = Path(str(tmp_path))
    (d / "rof.pem").write_bytes(rof.chain_pem)
    (d / "rof.key").write_bytes(rof.key_pem)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.load_cert_chain(d / "rof.pem", d / "rof.key")
    listener = socket.create_server(("127.0.0.1", 0))
    reused: list[bool] = []

    def serve() -> None:
        for _ in range(2):
            raw, _ = listener.accept()
            conn = server_ctx.wrap_socket(raw, server_side=True)
            reused.append(bool(conn.session_reused))
            conn.sendall(b"k")
            conn.unwrap().close()  # a clean close_notify: OpenSSL keeps the session resumable

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    session = None
    try:
        for _ in range(2):
            raw = socket.create_connection(listener.getsockname(), timeout=5)
            with client.wrap_socket(
                raw, server_hostname="ccf.capif.example", session=session
            ) as conn:
                conn.recv(1)
                session = conn.session
                conn.unwrap()
        thread.join(5)
    finally:
        listener.close()
    return reused


def test_r38_no_session_id_resumption(pki: TestPKI, tmp_path: object) -> None:
    """R38: resumption is off.  Tickets are off by the profile; OpenSSL's stateful session
    cache (TLS 1.2 session-ID resumption), which ssl cannot switch off, is turned off through
    the context's SSL_CTX.  The control: a plain stdlib server with the same certificate
    resumes the same client's session."""
    ccf, rof = pki.server_cert(), pki.client_cert()
    verify = tls.PeerVerification(pki.trust_anchor_pem, crls=[pki.crl()])
    ours = tls.server_context(present=tls.Identity(ccf.chain_pem, ccf.key_pem), verify=verify)
    assert ours._capif8sec_session_cache_off
    assert _resumed_twice(ours, rof, tmp_path) == [False, False]
    from pathlib import Path

    d = Path(str(tmp_path))
    (d / "ccf.pem").write_bytes(ccf.chain_pem)
    (d / "ccf.key").write_bytes(ccf.key_pem)
    control = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    control.load_cert_chain(d / "ccf.pem", d / "ccf.key")
    control.options |= ssl.OP_NO_TICKET
    assert _resumed_twice(control, rof, tmp_path) == [False, True]
