"""Real TLS handshakes between capif8sec and the ``openssl`` binary over loopback (R12-R17,
R24-R25, R28-R41).

OpenSSL 3.0 is an independent implementation, so these tests show the TS 33.210 clause 6.2
profile holds against a peer capif8sec does not control:

- A: capif8sec server (``server_context`` + :func:`capif8sec.integrations.blocking.accept` in a
  thread) with ``openssl s_client``: mutual TLS 1.3 / 1.2 accepted; old versions, non-AEAD, RSA
  key exchange and NULL suites, and every kind of unacceptable client certificate refused.  Each
  refused offer has a control test showing the same ``s_client`` invocation *does* complete
  against a permissive ``openssl s_server``, so a refusal is the server's doing, not the client's.
- B: ``openssl s_server`` with a capif8sec client (``client_context`` +
  :func:`capif8sec.integrations.blocking.connect`).
- C: the probe (``capif8sec probe`` and :func:`capif8sec.integrations.probe.probe`) against
  ``capif8sec serve`` and against deliberately non-compliant ``openssl s_server`` instances.

Platform facts these rely on (platform-notes.md): Debian's ``openssl.cnf`` pins TLS 1.2 /
SECLEVEL 2, so peers that must *offer* legacy protocols run with ``OPENSSL_CONF=/dev/null`` and
``@SECLEVEL=0``; ``s_client -cert`` sends only the first certificate of the file, so
``-cert_chain`` sends the TLS CA as well; OpenSSL 3.0.19 refuses client-initiated renegotiation
unless ``s_server -client_renegotiation``; this OpenSSL is built without zlib, so TLS
compression cannot be negotiated by anyone here.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from openssl_peer import (
    LEGACY_CIPHERS,
    OPENSSL,
    OneShotServer,
    RunningServer,
    SClientRun,
    one_shot_server,
    s_client,
    s_server,
)

from capif8sec import tls
from capif8sec.errors import HandshakeRejected
from capif8sec.integrations import blocking
from capif8sec.integrations.probe import FAIL, PASS, UNTESTABLE, ProbeResult, probe
from capif8sec.testing import IssuedCert, TestPKI

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(OPENSSL is None, reason="the openssl binary is not on PATH"),
    pytest.mark.timeout(60),
]

SERVER_NAME = "ccf.capif.example"
ROF_URI = "urn:capif:rof:rof-1"
#: What the capif8sec test server writes once the post-handshake check has passed.
APP_DATA = "capif8sec-application-data"
#: What the openssl clients send (the capif8sec server reads it, s_server -www answers it).
REQUEST = b"GET / HTTP/1.0\r\nHost: ccf.capif.example\r\n\r\n"
#: s_server -www's answer to REQUEST.
S_SERVER_PAGE = "HTTP/1.0 200 ok"
HANDSHAKE_TIMEOUT = 5.0
PROBE_TIMEOUT = 2.0
#: The ``capif8sec`` command line, run by this interpreter (no console script needed).
CLI = (sys.executable, "-c", "import sys; from capif8sec.cli import main; sys.exit(main())")


# --------------------------------------------------------------------------- material


class Pem(NamedTuple):
    """A certificate chain file and its key file."""

    cert: Path
    key: Path


class Pki(NamedTuple):
    """A TestPKI plus its files: trust anchor, CRL, a conformant server and client."""

    pki: TestPKI
    directory: Path
    root: Path
    crl: bytes
    server: Pem
    client: Pem


def _write(issued: IssuedCert, directory: Path, name: str) -> Pem:
    pem = Pem(directory / f"{name}.pem", directory / f"{name}.key")
    issued.write(pem.cert, pem.key)
    return pem


def _make_pki(directory: Path, key_type: str) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    pki = TestPKI(key_type)
    root = directory / "root-ca.pem"
    root.write_bytes(pki.trust_anchor_pem)
    crl = pki.crl()
    (directory / "tls-ca.crl.pem").write_bytes(crl)
    server = _write(pki.server_cert(SERVER_NAME), directory, "ccf-server")
    client = _write(pki.client_cert("rof-1"), directory, "rof-client")
    return Pki(pki, directory, root, crl, server, client)


@pytest.fixture(scope="module")
def ec(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """P-256 PKI (the default)."""
    return _make_pki(tmp_path_factory.mktemp("ec"), "p256")


@pytest.fixture(scope="module")
def rsa(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """RSA-2048 PKI: needed to offer RSA-key-exchange and NULL-SHA256 suites at all."""
    return _make_pki(tmp_path_factory.mktemp("rsa"), "rsa2048")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second, unrelated PKI: its certificates are untrusted by ``ec``."""
    return _make_pki(tmp_path_factory.mktemp("foreign"), "p256")


def _past_validity() -> dict[str, object]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {"not_before": now - dt.timedelta(days=400), "not_after": now - dt.timedelta(days=30)}


def _server_context(
    p: Pki, *, crls: Sequence[bytes] | None = None, server: Pem | None = None
) -> tls.CapifContext:
    pem = server or p.server
    return tls.server_context(
        present=tls.Identity.from_files(pem.cert, pem.key),
        verify=tls.PeerVerification(
            p.pki.trust_anchor_pem, crls=list(crls) if crls is not None else [p.crl]
        ),
    )


def _client_context(p: Pki, *, crls: Sequence[bytes] | None = None) -> tls.CapifContext:
    return tls.client_context(
        present=tls.Identity.from_files(p.client.cert, p.client.key),
        verify=tls.PeerVerification(
            p.pki.trust_anchor_pem, crls=list(crls) if crls is not None else [p.crl]
        ),
    )


def _server_args(p: Pki, server: Pem | None = None, *, verify: bool = True) -> list[str]:
    """s_server presenting ``server`` (chain included), answering GET with -www."""
    pem = server or p.server
    args = ["-cert", str(pem.cert), "-cert_chain", str(pem.cert), "-key", str(pem.key), "-www"]
    if verify:  # demand a client certificate chaining to the PKI's root
        args += ["-Verify", "1", "-CAfile", str(p.root)]
    return args


def _client_args(port: int, p: Pki, client: Pem | None, *extra: str) -> list[str]:
    """s_client to 127.0.0.1:port presenting ``client`` (chain included) or no certificate.

    ``-ign_eof`` keeps it reading after stdin ends, so it reports whatever the server sends.
    """
    args = ["-connect", f"127.0.0.1:{port}", "-servername", SERVER_NAME, "-CAfile", str(p.root)]
    if client is not None:
        args += ["-cert", str(client.cert), "-cert_chain", str(client.cert)]
        args += ["-key", str(client.key)]
    return [*args, "-ign_eof", *extra]


def _protocol(output: str) -> str | None:
    """The protocol s_client negotiated.

    The ``SSL-Session`` block names it; without a session ticket (capif8sec servers send none)
    TLS 1.3 prints no such block, and then the ``New, <version of the suite>`` line, which only
    names TLSv1.3 for a TLS 1.3 suite, settles it.  (For TLS 1.1 that line says ``TLSv1.0``.)
    """
    found = re.search(r"^\s*Protocol\s*:\s*(\S+)\s*$", output, re.MULTILINE)
    if found:
        return found.group(1)
    new = re.search(r"^New, (\S+), Cipher is (\S+)$", output, re.MULTILINE)
    return "TLSv1.3" if new and new.group(1) == "TLSv1.3" else None


def _cipher(output: str) -> str | None:
    """The suite s_client negotiated, or None when the handshake did not complete."""
    new = re.search(r"^New, (\S+), Cipher is (\S+)$", output, re.MULTILINE)
    return new.group(2) if new and new.group(2) != "(NONE)" else None


# --------------------------------------------------------------------------- capif8sec server


def capif8sec_server(ctx: tls.CapifContext) -> AbstractContextManager[OneShotServer]:
    """A one-connection capif8sec server answering :data:`APP_DATA` (see openssl_peer)."""
    return one_shot_server(ctx, APP_DATA, HANDSHAKE_TIMEOUT)


def _run_against_capif8sec(
    ctx: tls.CapifContext, p: Pki, client: Pem | None, *extra: str, legacy: bool = False
) -> tuple[tls.TlsPeer | BaseException, SClientRun]:
    with capif8sec_server(ctx) as server:
        run = s_client(_client_args(server.port, p, client, *extra), stdin=REQUEST, legacy=legacy)
        outcome = server.outcome()
    return outcome, run


def _assert_refused(
    ctx: tls.CapifContext, p: Pki, client: Pem | None, *extra: str, legacy: bool = False
) -> HandshakeRejected:
    """The server refused (HandshakeRejected) and the client received no application data."""
    outcome, run = _run_against_capif8sec(ctx, p, client, *extra, legacy=legacy)
    assert isinstance(outcome, HandshakeRejected), (outcome, run.output[-3000:])
    assert APP_DATA not in run.output
    return outcome


# --------------------------------------------------------------------------- A: accepted


@pytest.mark.parametrize(("flag", "version"), [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")])
def test_capif8sec_server_accepts_openssl_mutual_tls(ec: Pki, flag: str, version: str) -> None:
    """R28-R31, R27: s_client with a conformant ROF certificate completes mutual TLS."""
    outcome, run = _run_against_capif8sec(_server_context(ec), ec, ec.client, flag)
    assert isinstance(outcome, tls.TlsPeer), (outcome, run.output[-3000:])
    assert outcome.side == "server"
    assert outcome.version == version
    assert tls.TS33210.allows(outcome.version, outcome.cipher)
    assert outcome.authentication == "certificate"
    assert outcome.identities is not None
    assert outcome.identities.uris == (ROF_URI,)
    # The openssl side agrees: it verified the CCF's chain and got the application data.
    assert run.returncode == 0, run.output[-3000:]
    assert _protocol(run.output) == version
    assert _cipher(run.output) == outcome.cipher
    assert "Verify return code: 0 (ok)" in run.output
    assert APP_DATA in run.output


# --------------------------------------------------------------------------- A: refused offers


class Offer(NamedTuple):
    """An s_client offer the capif8sec server must refuse, and how to show it is real."""

    client_args: tuple[str, ...]
    legacy: bool  # OPENSSL_CONF=/dev/null: the system openssl.cnf would stop the offer itself
    rsa: bool  # the suite needs an RSA server certificate
    protocol: str  # what the control s_server negotiates with the very same invocation
    cipher: str | None
    reason: str  # why the capif8sec server's handshake fails


OFFERS: dict[str, Offer] = {
    "TLSv1.0": Offer(
        ("-tls1", "-cipher", LEGACY_CIPHERS), True, False, "TLSv1", None, "unsupported protocol"
    ),
    "TLSv1.1": Offer(
        ("-tls1_1", "-cipher", LEGACY_CIPHERS), True, False, "TLSv1.1", None, "unsupported protocol"
    ),
    "CBC": Offer(
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"),
        False,
        False,
        "TLSv1.2",
        "ECDHE-ECDSA-AES128-SHA",
        "no shared cipher",
    ),
    "RSA key exchange": Offer(
        ("-tls1_2", "-cipher", "AES128-GCM-SHA256"),
        False,
        True,
        "TLSv1.2",
        "AES128-GCM-SHA256",
        "no shared cipher",
    ),
    "NULL": Offer(
        ("-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0"),
        True,
        True,
        "TLSv1.2",
        "NULL-SHA256",
        "no shared cipher",
    ),
}


@pytest.mark.parametrize("name", list(OFFERS))
def test_capif8sec_server_refuses_offer(ec: Pki, rsa: Pki, name: str) -> None:
    """R28 (TLS 1.0/1.1), R31 (CBC, RSA key exchange, NULL): the handshake is refused."""
    offer = OFFERS[name]
    p = rsa if offer.rsa else ec
    rejected = _assert_refused(
        _server_context(p), p, p.client, *offer.client_args, legacy=offer.legacy
    )
    assert "TLS handshake failed" in str(rejected)
    assert offer.reason in str(rejected)


@pytest.mark.parametrize("name", list(OFFERS))
def test_control_same_offer_completes_against_permissive_openssl(
    ec: Pki, rsa: Pki, name: str
) -> None:
    """Control for the refusal above: the identical s_client invocation does get through to an
    ``openssl s_server`` that allows it, so the refusal is the capif8sec server's decision."""
    offer = OFFERS[name]
    p = rsa if offer.rsa else ec
    server_args = [*_server_args(p), *offer.client_args]  # same version pin, same cipher string
    with s_server(server_args, legacy=True) as server:
        run = s_client(
            _client_args(server.port, p, p.client, *offer.client_args),
            stdin=REQUEST,
            legacy=offer.legacy,
        )
    assert run.returncode == 0, run.output[-3000:]
    assert _protocol(run.output) == offer.protocol
    if offer.cipher is not None:
        assert _cipher(run.output) == offer.cipher
    assert S_SERVER_PAGE in run.output


# --------------------------------------------------------------------------- A: refused clients


@pytest.mark.parametrize("flag", ["-tls1_3", "-tls1_2"])
def test_capif8sec_server_refuses_client_without_certificate(ec: Pki, flag: str) -> None:
    """R27, R56: a server that verifies clients refuses one that presents no certificate."""
    rejected = _assert_refused(_server_context(ec), ec, None, flag)
    assert "did not return a certificate" in str(rejected)


def test_capif8sec_server_refuses_client_from_untrusted_ca(ec: Pki, foreign: Pki) -> None:
    """R24: a client chain that does not lead to a configured trust anchor is refused."""
    rejected = _assert_refused(_server_context(ec), ec, foreign.client)
    assert "certificate verify failed" in str(rejected)


def test_capif8sec_server_refuses_expired_client_certificate(ec: Pki, tmp_path: Path) -> None:
    """R24: an expired client certificate is refused (OpenSSL already fails the handshake)."""
    expired = ec.pki.tls_ca.issue(ec.pki.spec("client", **_past_validity()))
    rejected = _assert_refused(_server_context(ec), ec, _write(expired, tmp_path, "expired"))
    assert "expired" in str(rejected)


def test_capif8sec_server_refuses_client_certificate_with_server_eku(
    ec: Pki, tmp_path: Path
) -> None:
    """R13, R58: a client certificate whose EKU is serverAuth only is refused."""
    wrong = ec.pki.client_cert(eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    rejected = _assert_refused(_server_context(ec), ec, _write(wrong, tmp_path, "server-eku"))
    # OpenSSL refuses it first (purpose sslclient); capif8sec's check would name ee.eku_role.
    assert "purpose" in str(rejected) or "ee.eku_role" in str(rejected)


def test_capif8sec_server_refuses_client_certificate_with_noncritical_key_usage(
    ec: Pki, tmp_path: Path
) -> None:
    """R12, R9: OpenSSL accepts a non-critical keyUsage; capif8sec's check refuses it."""
    cert = ec.pki.client_cert(key_usage_critical=False)
    rejected = _assert_refused(_server_context(ec), ec, _write(cert, tmp_path, "ku"))
    assert "common.extension_criticality" in str(rejected)


def test_capif8sec_server_refuses_client_certificate_without_crl_distribution_point(
    ec: Pki, tmp_path: Path
) -> None:
    """R14: a client certificate without cRLDistributionPoints is refused by the check."""
    cert = ec.pki.client_cert(crl_urls=())
    rejected = _assert_refused(_server_context(ec), ec, _write(cert, tmp_path, "no-cdp"))
    assert "ee.crl_distribution_point" in str(rejected)


def test_capif8sec_server_refuses_revoked_client_certificate(ec: Pki, tmp_path: Path) -> None:
    """R25: a client certificate listed on the TLS CA's CRL is refused."""
    cert = ec.pki.client_cert("rof-revoked")
    crl = ec.pki.crl(revoked=[cert])
    rejected = _assert_refused(
        _server_context(ec, crls=[crl]), ec, _write(cert, tmp_path, "revoked")
    )
    assert "revoked" in str(rejected)


# --------------------------------------------------------------------------- B: capif8sec client


def _connect(ctx: tls.CapifContext, server: RunningServer) -> tuple[tls.TlsPeer, str]:
    """Connect with the capif8sec client, check, send REQUEST, read the answer to EOF."""
    sock, peer = blocking.connect(
        server.host, server.port, ctx, server_hostname=SERVER_NAME, timeout=HANDSHAKE_TIMEOUT
    )
    with sock:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        sock.sendall(REQUEST)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ssl.SSLEOFError:  # s_server -www may close without close_notify
            pass
    return peer, data.decode(errors="replace")


@pytest.mark.parametrize(("flag", "version"), [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")])
def test_capif8sec_client_accepts_conformant_openssl_server(
    ec: Pki, flag: str, version: str
) -> None:
    """R27-R31, R58: mutual TLS with s_server demanding a client certificate."""
    with s_server([*_server_args(ec), flag]) as server:
        peer, page = _connect(_client_context(ec), server)
    assert peer.side == "client"
    assert peer.version == version
    assert tls.TS33210.allows(peer.version, peer.cipher)
    assert peer.authentication == "certificate"
    assert peer.identities is not None
    assert peer.identities.dns_names == (SERVER_NAME,)
    # s_server's status page shows it received and verified the ROF certificate.
    assert S_SERVER_PAGE in page
    assert f"Protocol  : {version}" in page
    assert ROF_URI in page


def _assert_client_refuses(ctx: tls.CapifContext, server: RunningServer) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as caught:
        _connect(ctx, server)
    return caught.value


def test_capif8sec_client_refuses_server_name_mismatch(ec: Pki, tmp_path: Path) -> None:
    """R57, R58: a server certificate for other.capif.example does not match ccf.capif.example."""
    other = _write(ec.pki.server_cert("other.capif.example"), tmp_path, "other")
    with s_server(_server_args(ec, other)) as server:
        rejected = _assert_client_refuses(_client_context(ec), server)
    assert "does not match" in str(rejected)


#: What a TS33210 client context offers (IANA names, as ``s_server -trace`` prints them).
PROFILE_OFFER_IANA = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",  # RFC 5746 signalling, not a suite (R35)
)


def _client_hello(trace: str) -> tuple[list[str], list[str]]:
    """(supported_versions, cipher_suites) of the first ClientHello in ``s_server -trace``."""
    hello = trace[trace.index("ClientHello") :]
    lines = hello.splitlines()

    def block(start: str, item: str) -> list[str]:
        first = next(i for i, line in enumerate(lines) if start in line)
        out: list[str] = []
        for line in lines[first + 1 :]:
            found = re.fullmatch(item, line.strip())
            if not found:
                break
            out.append(found.group(1))
        return out

    versions = block("extension_type=supported_versions", r"(TLS 1\.\d|SSL 3\.0) \(\d+\)")
    suites = block("cipher_suites (len=", r"\{0x[0-9A-F]{2}, 0x[0-9A-F]{2}\} (\S+)")
    return versions, suites


def test_capif8sec_client_refuses_tls11_only_server(ec: Pki) -> None:
    """R28-R31: the capif8sec client cannot end up on TLS 1.1.

    The refusal happens in the ClientHello: it offers TLS 1.3 and 1.2 only (and only the
    profile's suites), so a TLS 1.1-only server can but abort with ``protocol_version``.  The
    server's ``-trace`` shows what was offered; a control shows that server does speak TLS 1.1.
    """
    args = [*_server_args(ec), "-tls1_1", "-cipher", LEGACY_CIPHERS, "-trace"]
    with s_server(args, legacy=True) as server:
        control = s_client(
            _client_args(server.port, ec, ec.client, "-tls1_1", "-cipher", LEGACY_CIPHERS),
            stdin=REQUEST,
            legacy=True,
        )
        assert _protocol(control.output) == "TLSv1.1", control.output[-3000:]
        assert S_SERVER_PAGE in control.output
        mark = len(server.output)
        rejected = _assert_client_refuses(_client_context(ec), server)
        assert server.wait_for("Alert", 5.0)
        trace = server.output[mark:]
    assert "protocol version" in str(rejected)
    versions, suites = _client_hello(trace)
    assert versions == ["TLS 1.3", "TLS 1.2"], trace[:4000]
    assert tuple(suites) == PROFILE_OFFER_IANA, trace[:4000]


def test_capif8sec_client_refuses_server_with_rof_client_profile_certificate(
    ec: Pki, tmp_path: Path
) -> None:
    """R13, R58: a server certificate with EKU clientAuth only is refused (name matches)."""
    issued = ec.pki.tls_ca.issue(ec.pki.spec("client", dns_names=(SERVER_NAME,)))
    with s_server(_server_args(ec, _write(issued, tmp_path, "client-profile"))) as server:
        rejected = _assert_client_refuses(_client_context(ec), server)
    # OpenSSL refuses it first (purpose sslserver); capif8sec's check would name ee.eku_role.
    assert "purpose" in str(rejected) or "ee.eku_role" in str(rejected)


def test_capif8sec_client_refuses_revoked_server_certificate(ec: Pki, tmp_path: Path) -> None:
    """R25: a server certificate on the TLS CA's CRL is refused."""
    issued = ec.pki.server_cert(SERVER_NAME)
    crl = ec.pki.crl(revoked=[issued])
    with s_server(_server_args(ec, _write(issued, tmp_path, "revoked-server"))) as server:
        rejected = _assert_client_refuses(_client_context(ec, crls=[crl]), server)
    assert "revoked" in str(rejected)


def test_capif8sec_client_refuses_server_from_untrusted_ca(ec: Pki, foreign: Pki) -> None:
    """R24: a server chain that does not lead to the configured trust anchor is refused."""
    with s_server(_server_args(ec, foreign.server)) as server:
        rejected = _assert_client_refuses(_client_context(ec), server)
    assert "certificate verify failed" in str(rejected)


# --------------------------------------------------------------------------- C: the probe


@contextmanager
def capif8sec_serve(p: Pki) -> Iterator[tuple[str, int]]:
    """``capif8sec serve`` as a subprocess; yields (host, port) from its first stdout line."""
    argv = [
        *CLI,
        "serve",
        *("--cert", str(p.server.cert), "--key", str(p.server.key)),
        *("--ca", str(p.root), "--crl", str(p.directory / "tls-ca.crl.pem")),
        *("--handshake-timeout", "5"),
    ]
    with tempfile.TemporaryFile() as errors:  # its stderr, shown if it does not start
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        lines: queue.Queue[bytes] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw)
            lines.put(b"")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            try:
                first = lines.get(timeout=15.0).decode()
            except queue.Empty:
                first = "(nothing within 15 s)"
            found = re.fullmatch(r"listening on https://(\S+):(\d+)\n", first)
            if not found:
                errors.seek(0)
                raise AssertionError(f"serve printed {first!r}; stderr {errors.read()[-2000:]!r}")
            yield found.group(1), int(found.group(2))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
            reader.join(2.0)
            if proc.stdout is not None:
                proc.stdout.close()


def _probe(p: Pki, server: RunningServer) -> ProbeResult:
    return probe(
        server.host,
        server.port,
        cas=[p.pki.trust_anchor_pem],
        crls=[p.crl],
        cert=str(p.client.cert),
        key=str(p.client.key),
        server_name=SERVER_NAME,
        timeout=PROBE_TIMEOUT,
    )


def _results(result: ProbeResult) -> dict[str, str]:
    return {c.check: c.result for c in result.checks}


def _failed(result: ProbeResult) -> set[str]:
    return {c.check for c in result.checks if c.result == FAIL}


def test_probe_cli_finds_capif8sec_serve_compliant(ec: Pki) -> None:
    """R28-R35 as seen from outside: ``capif8sec probe`` exits 0 against ``capif8sec serve``."""
    with capif8sec_serve(ec) as (host, port):
        argv = [
            *CLI,
            "probe",
            f"{host}:{port}",
            *("--format", "json", "--server-name", SERVER_NAME, "--timeout", str(PROBE_TIMEOUT)),
            *("--cert", str(ec.client.cert), "--key", str(ec.client.key)),
            *("--ca", str(ec.root), "--crl", str(ec.directory / "tls-ca.crl.pem")),
        ]
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=45.0,
            check=False,
        )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["compliant"] is True
    results = {c["check"]: c["result"] for c in report["checks"]}
    for check in (
        "TLSv1.0 refused",
        "TLSv1.1 refused",
        "TLSv1.2 accepted",
        "TLSv1.3 accepted",
        "client-initiated renegotiation refused",
        "client certificate demanded",
        "server chain",
        "server identity",
    ):
        assert results[check] == PASS, (check, report)
    assert not [c for c in report["checks"] if c["result"] == FAIL]


def test_probe_flags_openssl_server_with_tls11(ec: Pki) -> None:
    """R28: a server that also speaks TLS 1.0/1.1 is not compliant."""
    args = [*_server_args(ec), "-cipher", LEGACY_CIPHERS]  # no version pin: 1.0 to 1.3 on
    with s_server(args, legacy=True) as server:
        result = _probe(ec, server)
    assert not result.compliant
    results = _results(result)
    assert results["TLSv1.1 refused"] == FAIL
    assert results["TLSv1.0 refused"] == FAIL
    assert results["TLSv1.3 accepted"] == PASS


def test_probe_flags_openssl_server_allowing_cbc(ec: Pki) -> None:
    """R31: a server that accepts a CBC suite is not compliant, and the suite is named."""
    args = [*_server_args(ec), "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA"]
    with s_server(args) as server:
        result = _probe(ec, server)
    assert not result.compliant
    assert _failed(result) == {"TLS 1.2 suite ECDHE-ECDSA-AES128-SHA"}
    failing = next(c for c in result.checks if c.result == FAIL)
    assert "CBC" in failing.message


def test_probe_names_aead_suite_outside_profile_truthfully(ec: Pki) -> None:
    """R31: ECDHE-ECDSA-CHACHA20-POLY1305 is AEAD with forward secrecy yet not on the TS 33.210
    list: flagged, without claiming it lacks AEAD or forward secrecy."""
    args = [
        *_server_args(ec),
        "-cipher",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
    ]
    with s_server(args) as server:
        result = _probe(ec, server)
    assert _failed(result) == {"TLS 1.2 suite ECDHE-ECDSA-CHACHA20-POLY1305"}
    failing = next(c for c in result.checks if c.result == FAIL)
    assert "outside the profile" in failing.message
    assert "AEAD" not in failing.message


def test_probe_flags_openssl_server_allowing_client_renegotiation(ec: Pki) -> None:
    """R35: a server that renegotiates at the client's request is not compliant."""
    args = [*_server_args(ec), "-client_renegotiation", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    with s_server(args) as server:
        result = _probe(ec, server)
    assert _failed(result) == {"client-initiated renegotiation refused"}


def test_probe_flags_openssl_server_not_demanding_client_certificate(ec: Pki) -> None:
    """R27, R56: a server that serves a client without a certificate is flagged."""
    args = [*_server_args(ec, verify=False), "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    with s_server(args) as server:
        result = _probe(ec, server)
    assert _failed(result) == {"client certificate demanded"}


def test_probe_reports_compression_as_not_testable(ec: Pki) -> None:
    """R34: this OpenSSL has no zlib, so compression cannot be offered by anyone here -- not
    even an s_server and s_client that both ask for it.  The probe must say so (``not
    testable``) rather than report a pass for a test it could not run."""
    args = [*_server_args(ec), "-comp", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    with s_server(args) as server:
        control = s_client(
            _client_args(server.port, ec, ec.client, "-comp", "-tls1_2"), stdin=REQUEST
        )
        result = _probe(ec, server)
    assert "Compression: NONE" in control.output, control.output[-3000:]
    check = next(c for c in result.checks if c.check == "TLS compression off")
    assert check.result == UNTESTABLE
    assert "none negotiated" in check.message
    assert result.compliant
