"""``capif8sec serve`` from outside, in each ROF authentication mode (real TLS over loopback).

- mutual TLS (``--ca``): certificate ROFs;
- ``--credentials-db``: SCRAM-SHA-256-PLUS and the in-channel PSK proof over RFC 7804 headers;
- ``--psk-file``: TLS-level PSK (Python 3.13; a clear refusal elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from capif8sec import tls
from capif8sec.auth import PskCredential
from capif8sec.auth.http import HttpPskClient, HttpScramClient
from capif8sec.auth.inchannel import InChannelPskClient
from capif8sec.auth.scram import ScramClient
from capif8sec.errors import AuthenticationFailed
from capif8sec.integrations import blocking
from capif8sec.testing import TestPKI
from capif8sec.tls.binding import ChannelBinding
from capif8sec.tls.psk import HAS_PSK, psk_client_context

CLI = [sys.executable, "-c", "import sys; from capif8sec.cli import main; sys.exit(main())"]
KEK = "11" * 32
PSK_HEX = "a5" * 32


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    TestPKI().write(d)
    return d


def _server_args(pki_dir: Path) -> list[str]:
    """--cert/--key of the test PKI's CCF certificate."""
    return ["--cert", str(pki_dir / "ccf-server.pem"), "--key", str(pki_dir / "ccf-server.key")]


def _mtls_args(pki_dir: Path) -> list[str]:
    """The mutual-TLS mode: the CCF certificate, the root as trust anchor, the TLS CA's CRL."""
    return [
        *_server_args(pki_dir),
        "--ca",
        str(pki_dir / "root-ca.pem"),
        "--crl",
        str(pki_dir / "tls-ca.crl.pem"),
    ]


@contextmanager
def _serve(*args: str, env: dict[str, str] | None = None) -> Iterator[int]:
    with _serve_process(*args, env=env) as (port, _):
        yield port


@contextmanager
def _serve_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on https://"):
            proc.kill()
            raise AssertionError(f"serve did not start: {line!r} {proc.communicate()[1]!r}")
        yield int(line.rsplit(":", 1)[1]), proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _request(
    port: int, ctx: ssl.SSLContext, authorization: str | None = None
) -> tuple[int, dict[str, list[str]], dict[str, object], tls.TlsPeer]:
    sock, peer = blocking.connect("127.0.0.1", port, ctx, server_hostname="ccf.capif.example")
    head = "GET /whoami HTTP/1.1\r\nHost: ccf.capif.example\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    sock.sendall((head + "\r\n").encode())
    data = b""
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, json.loads(body), peer


def _client(pki_dir: Path, *, certificate: bool) -> tls.CapifContext:
    present: tls.Identity | object = (
        tls.Identity.from_files(pki_dir / "rof-client.pem", pki_dir / "rof-client.key")
        if certificate
        else tls.PRESENT_NO_CERTIFICATE
    )
    return tls.client_context(
        present=present,  # type: ignore[arg-type]
        verify=tls.PeerVerification(
            (pki_dir / "root-ca.pem").read_bytes(), crls=[(pki_dir / "tls-ca.crl.pem").read_bytes()]
        ),
    )


def test_mutual_tls_mode(pki_dir: Path) -> None:
    """R56: /whoami names the certificate's URI-ID and the method."""
    with _serve(
        *_mtls_args(pki_dir),
    ) as port:
        status, _, body, _ = _request(port, _client(pki_dir, certificate=True))
        assert status == 200
        assert body["identity"] == "urn:capif:rof:rof-1"
        assert body["method"] == "certificate"
        assert body["tls_version"] == "TLSv1.3"
        with pytest.raises(Exception):  # noqa: B017 -- no client certificate: refused
            _request(port, _client(pki_dir, certificate=False))


@pytest.fixture(scope="module")
def credentials_db(pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("db") / "creds.sqlite"
    env = {**os.environ, "CAPIF8SEC_KEK": KEK}
    subprocess.run(
        [
            *CLI,
            "credentials",
            "add-password",
            "--db",
            str(db),
            "--username",
            "rof-pw",
            "--password-stdin",
            "--iterations",
            "4096",
        ],
        input="correct horse battery staple\n",
        text=True,
        check=True,
        env=env,
        capture_output=True,
    )
    subprocess.run(
        [
            *CLI,
            "credentials",
            "add-psk",
            "--db",
            str(db),
            "--identity",
            "rof-psk",
            "--ccf",
            "ccf.capif.example",
            "--key-hex",
            PSK_HEX,
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    return db


def _scram_login(port: int, ctx: ssl.SSLContext, password: str) -> tuple[int, dict[str, object]]:
    status, headers, _, peer = _request(port, ctx)
    assert status == 401
    challenges = ", ".join(headers["www-authenticate"])
    assert "SCRAM-SHA-256-PLUS" in challenges
    assert "CAPIF8-PSK" in challenges
    assert peer.channel_binding is not None
    client = HttpScramClient(ScramClient("rof-pw", password, peer.channel_binding))
    status, headers, _, _ = _request(port, ctx, client.first(headers["www-authenticate"][0]))
    assert status == 401
    status, headers, body, _ = _request(port, ctx, client.final(headers["www-authenticate"][0]))
    if status == 200:
        client.verify(headers["authentication-info"][0])  # the server proved the password too
    return status, body


def test_password_mode(pki_dir: Path, credentials_db: Path) -> None:
    """R52-R54: SCRAM-SHA-256-PLUS over RFC 7804, bound to the server certificate."""
    with _serve(
        *_server_args(pki_dir),
        "--credentials-db",
        str(credentials_db),
        env={"CAPIF8SEC_KEK": KEK},
    ) as port:
        ctx = _client(pki_dir, certificate=False)
        status, body = _scram_login(port, ctx, "correct horse battery staple")
        assert status == 200
        assert body["identity"] == "rof-pw"
        assert body["method"] == "password"
        status, body = _scram_login(port, ctx, "wrong")
        assert status == 401
        assert "horse" not in json.dumps(body)


def test_in_channel_psk_mode(pki_dir: Path, credentials_db: Path) -> None:
    """R48: the CCF proven by certificate, the ROF by a PSK proof bound to the channel."""
    with _serve(
        *_server_args(pki_dir),
        "--credentials-db",
        str(credentials_db),
        env={"CAPIF8SEC_KEK": KEK},
    ) as port:
        ctx = _client(pki_dir, certificate=False)
        for key, expected in ((bytes.fromhex(PSK_HEX), 200), (b"\x00" * 32, 401)):
            _, _, _, peer = _request(port, ctx)
            assert peer.channel_binding is not None
            cred = PskCredential(b"rof-psk", key, "ccf.capif.example")
            client = HttpPskClient(
                InChannelPskClient(credential=cred, binding=peer.channel_binding)
            )
            status, headers, _, _ = _request(port, ctx, client.first())
            assert status == 401
            status, headers, body, _ = _request(
                port, ctx, client.final(headers["www-authenticate"][0])
            )
            assert status == expected
            if expected == 200:
                client.verify(headers["authentication-info"][0])
                assert body["identity"] == "rof-psk"
                assert body["method"] == "psk-in-channel"


def test_credentials_db_needs_the_kek(pki_dir: Path, credentials_db: Path) -> None:
    proc = subprocess.run(
        [
            *CLI,
            "serve",
            *_server_args(pki_dir),
            "--credentials-db",
            str(credentials_db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "CAPIF8SEC_KEK"},
    )
    assert proc.returncode == 2
    assert "key-encryption key" in proc.stderr
    wrong = subprocess.run(
        [
            *CLI,
            "serve",
            *_server_args(pki_dir),
            "--credentials-db",
            str(credentials_db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CAPIF8SEC_KEK": "22" * 32},
    )
    assert wrong.returncode == 2
    assert "22" * 8 not in wrong.stderr


@pytest.mark.parametrize("args", [[], ["--cert", "x.pem"], ["--psk-file", "f", "--ca", "c"]])
def test_inconsistent_options_are_usage_errors(args: list[str]) -> None:
    proc = subprocess.run([*CLI, "serve", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2


def test_psk_file_with_a_short_key_is_refused(tmp_path: Path) -> None:
    """R42: a key under 16 bytes stops the server with a message naming the line, not the key."""
    psk = tmp_path / "psk.txt"
    psk.write_text(f"rof-1 {PSK_HEX}\nrof-2 00112233445566778899aabbccdd\n")
    proc = subprocess.run(
        [*CLI, "serve", "--psk-file", str(psk)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "2" in proc.stderr
    assert "00112233445566778899aabbccdd" not in proc.stderr


@pytest.mark.skipif(HAS_PSK, reason="this interpreter has TLS-level PSK (tested below)")
def test_psk_file_needs_python_313(tmp_path: Path) -> None:
    psk = tmp_path / "psk.txt"
    psk.write_text(f"rof-1 {PSK_HEX}\n")
    proc = subprocess.run(
        [*CLI, "serve", "--psk-file", str(psk)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "3.13" in proc.stderr


@pytest.mark.skipif(not HAS_PSK, reason="TLS-level PSK needs Python >= 3.13 (ssl PSK callbacks)")
def test_psk_file_mode(tmp_path: Path) -> None:
    """R42-R45: a PSK-only endpoint; /whoami names the PSK identity; a wrong key is refused."""
    psk = tmp_path / "psk.txt"
    psk.write_text(f"# ROF PSKs\nrof-1 {PSK_HEX}\n")
    with _serve("--psk-file", str(psk)) as port:
        good = psk_client_context(
            credential=PskCredential(b"rof-1", bytes.fromhex(PSK_HEX), "ccf.capif.example")
        )
        status, _, body, _ = _request(port, good)
        assert status == 200
        assert body["identity"] == "rof-1"
        assert body["method"] == "psk"
        bad = psk_client_context(
            credential=PskCredential(b"rof-1", b"\x01" * 32, "ccf.capif.example")
        )
        with pytest.raises(Exception):  # noqa: B017 -- the handshake fails
            _request(port, bad)


def test_unauthenticated_requests_get_no_identity(pki_dir: Path, credentials_db: Path) -> None:
    with _serve(
        *_server_args(pki_dir),
        "--credentials-db",
        str(credentials_db),
        env={"CAPIF8SEC_KEK": KEK},
    ) as port:
        ctx = _client(pki_dir, certificate=False)
        status, _, body, _ = _request(port, ctx, "SCRAM-SHA-256-PLUS data=!!!")
        assert status == 401
        assert "identity" not in body
        with pytest.raises(AuthenticationFailed):
            HttpPskClient(
                InChannelPskClient(
                    credential=PskCredential(b"rof-psk", b"k" * 32, "ccf.capif.example"),
                    binding=ChannelBinding("tls-server-end-point", b"x"),
                )
            ).final('Basic realm="x"')
        s = socket.create_connection(("127.0.0.1", port))  # a hostile non-TLS client ...
        s.sendall(b"not tls at all\r\n\r\n")
        s.settimeout(5)
        with contextlib.suppress(OSError):
            s.recv(100)
        s.close()
        status, _, _, _ = _request(port, ctx)  # ... and the server keeps serving
        assert status == 401


POLICY = """
version = "test"
[[rule]]
id = "rof-1-answers"
identities = ["uri:urn:capif:rof:rof-1"]
owners = ["msisdn-491700000001"]
operations = ["authorize"]
methods = ["certificate"]

[[rule]]
id = "rof-1-revokes"
identities = ["uri:urn:capif:rof:rof-1"]
owners = ["msisdn-491700000001"]
operations = ["revoke"]
methods = ["certificate"]
"""


def _post(
    port: int, ctx: ssl.SSLContext, path: str, body: bytes, declared: int | None = None
) -> tuple[int, bytes]:
    sock, _ = blocking.connect("127.0.0.1", port, ctx, server_hostname="ccf.capif.example")
    length = len(body) if declared is None else declared
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: ccf\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n".encode()
        + body
    )
    data = b""
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def test_capif8_endpoint_with_policy(pki_dir: Path, tmp_path: Path) -> None:
    """R56, R59: TLS, authentication, policy and the message guard, exercised from outside."""
    import datetime as dt

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    request = {
        "requestId": "req-1",
        "apiInvokerInfo": {"apiInvokerId": "INV-42"},
        "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
        "purposeOfDataProcessing": "service-assurance",
        "resOwnerId": "msisdn-491700000001",
        "requestedItems": [{"apiName": "3gpp-monitoring-event", "operations": ["read"]}],
        "expiry": later,
    }
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "requests.json").write_text(json.dumps([request]))

    def response(**changes: object) -> bytes:
        body: dict[str, object] = {
            "requestId": "req-1",
            "resOwnerId": "msisdn-491700000001",
            "expiry": soon,
            "decisions": [{"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read"]}],
        }
        body.update(changes)
        return json.dumps(body).encode()

    revocation = {
        "resOwnerId": "msisdn-491700000001",
        "apiInvokerId": "INV-42",
        "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
        "reason": "the owner withdrew consent",
        "allItems": True,
    }
    with _serve(
        *_mtls_args(pki_dir),
        "--policy",
        str(tmp_path / "policy.toml"),
        "--requests",
        str(tmp_path / "requests.json"),
    ) as port:
        ctx = _client(pki_dir, certificate=True)
        status, _ = _post(port, ctx, "/capif8/v1/authorization-responses", response())
        assert status == 204
        status, body = _post(
            port,
            ctx,
            "/capif8/v1/authorization-responses",
            response(
                decisions=[
                    {
                        "apiName": "3gpp-monitoring-event",
                        "granted": True,
                        "scope": ["read", "write"],
                    }
                ]
            ),
        )
        assert status == 403  # grants more than was asked
        assert json.loads(body)["cause"] == "exceeds-request"
        status, _ = _post(
            port, ctx, "/capif8/v1/authorization-responses", response(requestId="req-unknown")
        )
        assert status == 404
        status, body = _post(port, ctx, "/capif8/v1/authorization-responses", b"{not json")
        assert status == 400
        status, _ = _post(port, ctx, "/capif8/v1/revocations", json.dumps(revocation).encode())
        assert status == 204
        other = {**revocation, "resOwnerId": "msisdn-491700000002"}
        status, body = _post(port, ctx, "/capif8/v1/revocations", json.dumps(other).encode())
        assert status == 403  # an owner this ROF does not serve
        assert json.loads(body)["cause"] == "owner-not-allowed"
        # a body over 64 KiB is refused from its Content-Length, before it is read
        status, _ = _post(port, ctx, "/capif8/v1/revocations", b"", declared=1 << 20)
        assert status == 413


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX only")
def test_the_policy_is_reloaded_on_sighup_and_a_broken_file_is_not(
    pki_dir: Path, tmp_path: Path
) -> None:
    """Issue 5 (reloadable at run time): SIGHUP puts the edited policy file in force for the
    next request; a broken file -- a TOML syntax error, an integer tomllib cannot read (it
    raised a bare ValueError that stopped the server; review) -- leaves the policy in force and
    the server serving."""
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    revocation = json.dumps(
        {"resOwnerId": "msisdn-491700000001", "reason": "consent withdrawn", "allItems": True}
    ).encode()
    with _serve_process(*_mtls_args(pki_dir), "--policy", str(path)) as (port, proc):
        ctx = _client(pki_dir, certificate=True)

        def status() -> int:
            return _post(port, ctx, "/capif8/v1/revocations", revocation)[0]

        def after_sighup(expected: int) -> int:
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while (got := status()) != expected and time.monotonic() < deadline:
                time.sleep(0.05)
            return got

        assert status() == 204
        path.write_text(POLICY.replace('operations = ["revoke"]', 'operations = ["query"]'))
        assert after_sighup(403) == 403  # rof-1 may no longer revoke
        for broken in ("[[rule]\n", "version = " + "1" * 4301 + "\n"):
            path.write_text(broken)
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            assert proc.poll() is None, "the server stopped"
            assert status() == 403  # the edited policy is still in force
        path.write_text(POLICY)
        assert after_sighup(204) == 204


def test_malformed_content_length_is_a_400(pki_dir: Path) -> None:
    """A Content-Length int() cannot read ('²', thousands of digits) is refused, not a crash."""
    with _serve(
        *_mtls_args(pki_dir),
    ) as port:
        ctx = _client(pki_dir, certificate=True)
        for value in ("\u00b2", "1" * 5000, "-1", "1e3"):
            sock, _ = blocking.connect("127.0.0.1", port, ctx, server_hostname="ccf.capif.example")
            sock.sendall(
                f"POST /capif8/v1/revocations HTTP/1.1\r\nHost: ccf\r\n"
                f"Content-Length: {value}\r\n\r\n".encode("latin-1")
            )
            sock.settimeout(5)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            sock.close()
            assert data.split(b" ", 2)[1] == b"400", value[:10]
        status, _, _, _ = _request(port, ctx)  # and it keeps serving
        assert status == 200
