"""Hostile peers among good ROFs, over real loopback TLS: bench/load.py at small scale.

Against ``capif8sec serve --ca`` (a subprocess) and ``aio.start_server`` (in process): every good
ROF is served, every hostile peer (untrusted or non-conformant certificate, TLS 1.1, random bytes,
a slowloris, a hang-up mid-handshake) is refused or cut at the handshake timeout, the server's
file descriptors come back to their baseline and nothing is logged with a traceback.  Then the
regressions the load test found: a server that ran out of file descriptors serves again (and
does not log a traceback per failed accept), and a peer that never answers ``close_notify`` is
cut at the handshake timeout, not after asyncio's 30 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from capif8sec import tls
from capif8sec.integrations import aio
from capif8sec.integrations.loadtest import (
    HUNG,
    LEFT,
    REFUSED,
    SERVED,
    Outcome,
    Peer,
    ServerProcess,
    garbage_peer,
    hangup_peer,
    run_round,
    stalling_peer,
    tls11_context,
    tls_peer,
)
from capif8sec.testing import TestPKI

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the server's fds from /proc"
)

CLI = [sys.executable, "-c", "import sys; from capif8sec.cli import main; sys.exit(main())"]
CCF = "ccf.capif.example"
#: The servers' handshake timeout here: short, so that the stalled peers are cut quickly.
TIMEOUT = 1.5
#: Seconds a hostile peer waits before calling the server hung.
PATIENCE = TIMEOUT + 8
KINDS = (
    "untrusted-cert",
    "nonconformant-cert",
    "tls1.1",
    "random-bytes",
    "slowloris",
    "disconnect",
)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    pki = TestPKI()
    pki.write(d)
    TestPKI().client_cert("rof-evil").write(d / "evil.pem", d / "evil.key")
    broken = pki.breaking("ee.crl_distribution_point", role="client")
    (d / "broken.pem").write_bytes(
        broken.cert.public_bytes(Encoding.PEM) + broken.issuer.public_bytes(Encoding.PEM)
    )
    (d / "broken.key").write_bytes(
        broken.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    return d


def _verify(d: Path) -> tls.PeerVerification:
    return tls.PeerVerification(
        (d / "root-ca.pem").read_bytes(), crls=[(d / "tls-ca.crl.pem").read_bytes()]
    )


def _rof(d: Path) -> tls.CapifContext:
    return tls.client_context(
        present=tls.Identity.from_files(d / "rof-client.pem", d / "rof-client.key"),
        verify=_verify(d),
        alpn=["http/1.1"],
    )


def _attacker(d: Path, name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(d / f"{name}.pem", d / f"{name}.key")
    return ctx


def _peers(d: Path, good: int, per_kind: int) -> tuple[list[Peer], list[Peer]]:
    rof = _rof(d)
    untrusted, broken = _attacker(d, "evil"), _attacker(d, "broken")
    tls11 = tls11_context(d / "rof-client.pem", d / "rof-client.key")
    rng = random.Random(7)  # reproducible garbage
    hostile: list[Peer] = []
    for _ in range(per_kind):
        hostile += [
            tls_peer("untrusted-cert", untrusted, patience=PATIENCE),
            tls_peer("nonconformant-cert", broken, patience=PATIENCE),
            tls_peer("tls1.1", tls11, patience=PATIENCE),
            garbage_peer("random-bytes", rng.randbytes(512), patience=PATIENCE),
            stalling_peer("slowloris", patience=PATIENCE),
            hangup_peer("disconnect", patience=PATIENCE),
        ]
    goods = [tls_peer("good", rof, patience=PATIENCE, check=True) for _ in range(good)]
    return goods, hostile


def _assert_outcomes(outcomes: tuple[Outcome, ...], good: int, per_kind: int) -> None:
    results = Counter((o.kind, o.result) for o in outcomes)
    assert results[("good", SERVED)] == good, results
    for kind in KINDS:
        refused = results[(kind, REFUSED)] + results[(kind, LEFT)]
        assert refused == per_kind, (kind, results)
    assert not any(o.result in (SERVED, HUNG) for o in outcomes if o.kind != "good")
    assert all(o.result == LEFT for o in outcomes if o.kind == "disconnect")
    stalls = [o.seconds for o in outcomes if o.kind == "slowloris"]
    assert all(TIMEOUT - 0.1 <= s <= TIMEOUT + 3.0 for s in stalls), stalls


def _serve_mtls(d: Path, *extra: str) -> list[str]:
    return [
        *CLI,
        "serve",
        *("--cert", str(d / "ccf-server.pem"), "--key", str(d / "ccf-server.key")),
        *("--ca", str(d / "root-ca.pem"), "--crl", str(d / "tls-ca.crl.pem")),
        *("--handshake-timeout", str(TIMEOUT)),
        *extra,
    ]


@pytest.mark.timeout(20)
def test_serve_serves_every_good_rof_among_hostile_peers(pki_dir: Path, tmp_path: Path) -> None:
    """40 connections at once: 28 good ROFs, 2 of each of 6 hostile kinds."""
    with ServerProcess(_serve_mtls(pki_dir), log=tmp_path / "serve.log") as server:
        baseline = server.fds()
        goods, hostile = _peers(pki_dir, 28, 2)
        result = asyncio.run(run_round(server.host, server.port, goods, hostile))
        _assert_outcomes(result.outcomes, 28, 2)
        assert server.wait_fds(baseline, 5.0) <= baseline
        log = server.log()
    assert "Traceback" not in log
    assert " ERROR " not in log
    # the non-conformant certificates are refused by the check, with the reason, at INFO
    assert log.count("refused after the handshake") == 2


@pytest.mark.timeout(20)
def test_aio_start_server_serves_every_good_rof_among_hostile_peers(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same against capif8sec.integrations.aio.start_server, in this process."""
    caplog.set_level(logging.DEBUG)
    server_ctx = tls.server_context(
        present=tls.Identity.from_files(pki_dir / "ccf-server.pem", pki_dir / "ccf-server.key"),
        verify=_verify(pki_dir),
        alpn=["http/1.1"],
    )

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tls.TlsPeer
    ) -> None:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main() -> tuple[tuple[Outcome, ...], int, int]:
        server = await aio.start_server(
            handler, "127.0.0.1", 0, ssl=server_ctx, handshake_timeout=TIMEOUT
        )
        async with server:
            baseline = fds()
            goods, hostile = _peers(pki_dir, 28, 2)
            port = server.sockets[0].getsockname()[1]
            result = await run_round("127.0.0.1", port, goods, hostile)
            deadline = time.monotonic() + 5
            while fds() > baseline and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return result.outcomes, baseline, fds()

    outcomes, baseline, after = asyncio.run(main())
    _assert_outcomes(outcomes, 28, 2)
    assert after <= baseline
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.timeout(30)
def test_serve_recovers_after_running_out_of_file_descriptors(
    pki_dir: Path, tmp_path: Path
) -> None:
    """A flood that exhausts the server's fds: one WARNING a second, no traceback per failed
    accept, and once the stalled peers are cut every ROF is served again -- even when the
    first CRL check of the process ran out of fds (pyca answered 'does not verify' and that
    answer used to be remembered for good)."""
    limit = 40
    argv = _serve_mtls(pki_dir)
    held: list[socket.socket] = []
    with ServerProcess(argv, log=tmp_path / "serve.log", fd_limit=limit) as server:
        rof = _rof(pki_dir)

        async def one(peer: Peer) -> Outcome:
            return (await run_round(server.host, server.port, [peer], [])).outcomes[0]

        # warm the server's TLS without any CRL check (refused by OpenSSL, untrusted CA)
        untrusted = tls_peer("untrusted-cert", _attacker(pki_dir, "evil"), patience=PATIENCE)
        assert asyncio.run(one(untrusted)).result == REFUSED
        time.sleep(0.2)
        baseline = server.fds()
        try:
            for _ in range(limit - baseline - 1):  # all fds but one, held by silent peers
                held.append(socket.create_connection((server.host, server.port)))
            deadline = time.monotonic() + 5
            while server.fds() < limit - 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.fds() == limit - 1
            # the last fd: the first CRL check of this process runs with none left
            asyncio.run(one(tls_peer("good", rof, patience=PATIENCE, check=True)))
            for _ in range(20):  # and these find no fd at all: accept() fails
                held.append(socket.create_connection((server.host, server.port)))
            time.sleep(1.2)
        finally:
            for s in held:
                s.close()
        assert server.wait_fds(baseline, 10.0) <= baseline
        outcomes = [
            asyncio.run(one(tls_peer("good", rof, patience=PATIENCE, check=True))) for _ in range(3)
        ]
        assert [o.result for o in outcomes] == [SERVED] * 3, outcomes
        log = server.log()
    assert "Traceback" not in log
    warnings = [line for line in log.splitlines() if "cannot accept connections" in line]
    assert 1 <= len(warnings) <= 6, warnings  # one a second at most


def _handshake_then_go_silent(port: int, ctx: ssl.SSLContext) -> float:
    """Complete a TLS handshake over a raw socket, then never send another byte (so never
    answer the server's close_notify); seconds until the server drops the TCP connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=CCF)
    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "the server closed during the handshake"
                incoming.write(data)
        sock.sendall(outgoing.read())  # the client's certificate and Finished
        start = time.monotonic()
        sock.settimeout(10)
        while sock.recv(65536):  # raw bytes: the response, close_notify, then EOF
            pass
        return time.monotonic() - start
    finally:
        sock.close()


@pytest.mark.timeout(20)
def test_aio_server_cuts_a_peer_that_never_answers_close_notify(pki_dir: Path) -> None:
    """After the handler is done, a peer that keeps the TCP connection but never completes the
    closing handshake is cut at the handshake timeout (asyncio alone waits 30 s)."""
    server_ctx = tls.server_context(
        present=tls.Identity.from_files(pki_dir / "ccf-server.pem", pki_dir / "ccf-server.key"),
        verify=_verify(pki_dir),
    )
    client_ctx = _attacker(pki_dir, "rof-client")

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tls.TlsPeer
    ) -> None:
        writer.write(b"bye")
        await writer.drain()

    async def main() -> float:
        server = await aio.start_server(
            handler, "127.0.0.1", 0, ssl=server_ctx, handshake_timeout=1.0
        )
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.to_thread(_handshake_then_go_silent, port, client_ctx)

    elapsed = asyncio.run(main())
    assert 0.5 <= elapsed <= 4.0


@pytest.mark.parametrize(
    "option", [("--backlog", "0"), ("--handshake-timeout", "0"), ("--handshake-timeout", "nan")]
)
def test_serve_refuses_unusable_limits(pki_dir: Path, option: tuple[str, str]) -> None:
    proc = subprocess.run(
        [*_serve_mtls(pki_dir), *option], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert option[0] in proc.stderr
