"""TLS-level external PSK against the ``openssl`` binary over loopback (R42-R45, R47).

OpenSSL's ``s_client`` / ``s_server`` are an independent PSK peer (their own callbacks, their
own TLS 1.3 session setup), so these tests show capif8sec's PSK contexts hold against a peer it
does not control:

- A: capif8sec PSK server (:func:`psk_server_context` + ``blocking.accept`` in a thread) with
  ``openssl s_client -psk HEX -psk_identity ID``: the right key is accepted (TLS 1.3 psk_dhe_ke,
  TLS 1.2 DHE-PSK-AES-GCM) and the server-side check attributes that identity; a wrong key, an
  unknown identity and another identity's key are refused alike; a PSK suite without forward
  secrecy and TLS 1.1 are refused -- each with a control showing the very same ``s_client``
  invocation completes against a permissive ``openssl s_server``, so the refusal is the
  capif8sec server's doing.
- B: ``openssl s_server -nocert -psk HEX -psk_identity ID`` with a capif8sec
  :func:`psk_client_context`: the right key is accepted, a wrong key and a server offering only
  a non-forward-secret PSK suite (again with a control) or only a certificate are refused.

TLS-level PSK needs Python 3.13 (``ssl`` PSK callbacks): on older interpreters this module
skips.  ``OPENSSL_CONF=/dev/null`` plus ``@SECLEVEL=0`` lets the peer *offer* TLS 1.1 (Debian's
``openssl.cnf`` pins TLS 1.2).  OpenSSL's TLS 1.3 PSK is psk_dhe_ke: ``s_client`` prints the
server's key share (``Server Temp Key``) on every accepted TLS 1.3 handshake (R43).  OpenSSL
always offers psk_dhe_ke and prefers it, so a psk_ke-only offer cannot be produced here: the R43
refusal of psk_ke is not testable with this peer.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from openssl_peer import OPENSSL, OneShotServer, SClientRun, one_shot_server, s_client, s_server

from capif8sec import tls
from capif8sec.auth.credentials import PskCredential
from capif8sec.auth.stores import MemoryStore
from capif8sec.errors import HandshakeRejected
from capif8sec.integrations import blocking
from capif8sec.testing import TestPKI
from capif8sec.tls.psk import (
    HAS_PSK,
    PSK_TLS12_SUITES,
    PSK_TLS13_SUITES,
    psk_client_context,
    psk_server_context,
)

_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(OPENSSL is None, reason="the openssl binary is not on PATH"),
    pytest.mark.skipif(
        not HAS_PSK,
        reason="the capif8sec side needs ssl PSK callbacks (Python >= 3.13); "
        f"this is Python {_VERSION}",
    ),
    pytest.mark.timeout(60),
]

CCF = "ccf-1"
APP_DATA = "capif8sec-psk-application-data"
REQUEST = b"GET / HTTP/1.0\r\nHost: ccf.capif.example\r\n\r\n"
S_SERVER_PAGE = "HTTP/1.0 200 ok"
HANDSHAKE_TIMEOUT = 5.0
#: What the TLS 1.2 PSK offers use.
DHE_PSK = "DHE-PSK-AES128-GCM-SHA256"
NON_FS_PSK = "PSK-AES128-GCM-SHA256"
LEGACY_PSK = "PSK:@SECLEVEL=0"

KEY_1 = secrets.token_bytes(32)
KEY_2 = secrets.token_bytes(32)


@pytest.fixture(scope="module")
def store() -> MemoryStore:
    """rof-1 and rof-2, each with its own key, bound to this CCF."""
    s = MemoryStore()
    s.add_psk(PskCredential(b"rof-1", KEY_1, CCF, key_id="k-rof-1"))
    s.add_psk(PskCredential(b"rof-2", KEY_2, CCF, key_id="k-rof-2"))
    return s


@pytest.fixture(scope="module")
def dhparam() -> Iterator[Path]:
    """RFC 7919 ffdhe3072, the group capif8sec's own DHE-PSK server uses."""
    resource = importlib.resources.files("capif8sec.tls").joinpath("ffdhe3072.pem")
    with importlib.resources.as_file(resource) as path:
        yield path


def _handshake_line(output: str) -> tuple[str, str] | None:
    """(protocol label, suite) of s_client's ``New,``/``Reused,`` line; None if it failed.

    A TLS 1.3 PSK handshake prints ``Reused`` (s_client models the external PSK as a session).
    """
    found = re.search(r"^(?:New|Reused), (\S+), Cipher is (\S+)$", output, re.MULTILINE)
    if not found or found.group(2) == "(NONE)":
        return None
    return found.group(1), found.group(2)


def _protocol(output: str) -> str | None:
    found = re.search(r"^\s*Protocol\s*:\s*(\S+)\s*$", output, re.MULTILINE)
    return found.group(1) if found else None


def _alert(output: str) -> str | None:
    """The alert s_client received, e.g. ``sslv3 alert illegal parameter ... number 47``."""
    found = re.search(r":([^:]*alert[^:]*):.*?(SSL alert number \d+)", output)
    return f"{found.group(1)} ({found.group(2)})" if found else None


# --------------------------------------------------------------------------- capif8sec server


def capif8sec_server(ctx: tls.CapifContext) -> AbstractContextManager[OneShotServer]:
    """A one-connection capif8sec server answering :data:`APP_DATA` (see openssl_peer)."""
    return one_shot_server(ctx, APP_DATA, HANDSHAKE_TIMEOUT)


def _psk_args(identity: str, key: bytes, *extra: str) -> list[str]:
    return ["-psk", key.hex(), "-psk_identity", identity, *extra]


def _against_capif8sec(
    store: MemoryStore, identity: str, key: bytes, *extra: str, legacy: bool = False
) -> tuple[tls.TlsPeer | BaseException, SClientRun]:
    ctx = psk_server_context(store=store, ccf_identity=CCF)
    with capif8sec_server(ctx) as server:
        args = ["-connect", f"127.0.0.1:{server.port}", "-ign_eof"]
        run = s_client([*args, *_psk_args(identity, key, *extra)], stdin=REQUEST, legacy=legacy)
        outcome = server.outcome()
    return outcome, run


def _assert_refused(
    store: MemoryStore, identity: str, key: bytes, *extra: str, legacy: bool = False
) -> tuple[HandshakeRejected, SClientRun]:
    outcome, run = _against_capif8sec(store, identity, key, *extra, legacy=legacy)
    assert isinstance(outcome, HandshakeRejected), (outcome, run.output[-3000:])
    assert APP_DATA not in run.output
    # s_client prints a "New, TLSv1.2, Cipher is ..." block even after a TLS 1.2 handshake the
    # server broke off at its Finished: the alert and the exit status are what count.
    assert _alert(run.output) is not None, run.output[-3000:]
    assert run.returncode != 0
    return outcome, run


def _control(
    identity: str, key: bytes, server_extra: list[str], client_extra: list[str], *, legacy: bool
) -> SClientRun:
    """The same s_client offer against a permissive openssl s_server (-nocert -psk)."""
    server_args = ["-nocert", *_psk_args(identity, key), "-www", *server_extra]
    with s_server(server_args, legacy=legacy) as server:
        args = ["-connect", f"127.0.0.1:{server.port}", "-ign_eof"]
        return s_client(
            [*args, *_psk_args(identity, key, *client_extra)], stdin=REQUEST, legacy=legacy
        )


TLS_VERSIONS = pytest.mark.parametrize(
    "extra",
    [("-tls1_3",), ("-tls1_2", "-cipher", DHE_PSK)],
    ids=["tls1.3", "tls1.2-dhe-psk"],
)


# --------------------------------------------------------------------------- A: accepted


@TLS_VERSIONS
def test_capif8sec_server_accepts_the_right_key(store: MemoryStore, extra: tuple[str, ...]) -> None:
    """R43, R45, R47: s_client with rof-1's key completes; the check attributes rof-1."""
    outcome, run = _against_capif8sec(store, "rof-1", KEY_1, *extra)
    assert isinstance(outcome, tls.TlsPeer), (outcome, run.output[-3000:])
    assert outcome.side == "server"
    assert outcome.authentication == "psk"
    assert outcome.psk_identity == "rof-1"
    assert outcome.psk_key_id == "k-rof-1"
    assert outcome.identities is None
    assert run.returncode == 0, run.output[-3000:]
    assert APP_DATA in run.output
    line = _handshake_line(run.output)
    assert line is not None
    assert line[1] == outcome.cipher
    if extra[0] == "-tls1_3":
        assert outcome.version == "TLSv1.3"
        assert outcome.cipher in PSK_TLS13_SUITES
        assert line[0] == "TLSv1.3"
        # R43: psk_dhe_ke -- the server sent a key share.
        assert re.search(r"Server Temp Key: (X25519|X448|ECDH|DH)", run.output), run.output
    else:
        assert outcome.version == "TLSv1.2"
        assert outcome.cipher == DHE_PSK
        assert outcome.cipher in PSK_TLS12_SUITES
        assert _protocol(run.output) == "TLSv1.2"
        assert "Server Temp Key: DH, 3072 bits" in run.output  # RFC 7919 ffdhe3072


# --------------------------------------------------------------------------- A: refused keys


@TLS_VERSIONS
def test_capif8sec_server_refuses_a_wrong_key(store: MemoryStore, extra: tuple[str, ...]) -> None:
    _assert_refused(store, "rof-1", secrets.token_bytes(32), *extra)


@TLS_VERSIONS
def test_capif8sec_server_refuses_an_unknown_identity_like_a_wrong_key(
    store: MemoryStore, extra: tuple[str, ...]
) -> None:
    """R45: the openssl client receives the same alert for an unknown identity and a wrong key,
    and the server fails the same way for both."""
    wrong_key, wrong_run = _assert_refused(store, "rof-1", secrets.token_bytes(32), *extra)
    unknown, unknown_run = _assert_refused(store, "nobody", secrets.token_bytes(32), *extra)
    assert _alert(wrong_run.output) is not None, wrong_run.output[-3000:]
    assert _alert(unknown_run.output) == _alert(wrong_run.output)
    assert str(unknown) == str(wrong_key)


@TLS_VERSIONS
def test_capif8sec_server_refuses_another_identitys_key(
    store: MemoryStore, extra: tuple[str, ...]
) -> None:
    """R44: rof-2's key does not authenticate rof-1."""
    _assert_refused(store, "rof-1", KEY_2, *extra)


# --------------------------------------------------------------------------- A: refused offers


def test_capif8sec_server_refuses_a_psk_suite_without_forward_secrecy(
    store: MemoryStore,
) -> None:
    """R47: TLS_PSK_WITH_AES_128_GCM_SHA256 (no DHE) is never negotiated."""
    offer = ("-tls1_2", "-cipher", NON_FS_PSK)
    outcome, _ = _assert_refused(store, "rof-1", KEY_1, *offer)
    assert "NO_SHARED_CIPHER" in str(outcome)
    # Control: the same offer completes against an openssl s_server that allows it.
    control = _control(
        "rof-1", KEY_1, ["-tls1_2", "-cipher", NON_FS_PSK], list(offer), legacy=False
    )
    assert control.returncode == 0, control.output[-3000:]
    assert _handshake_line(control.output) == ("TLSv1.2", NON_FS_PSK)
    assert S_SERVER_PAGE in control.output


def test_capif8sec_server_refuses_tls11_psk(store: MemoryStore) -> None:
    """R28: a TLS 1.1 PSK offer is refused (protocol version)."""
    offer = ("-tls1_1", "-cipher", LEGACY_PSK)
    outcome, run = _assert_refused(store, "rof-1", KEY_1, *offer, legacy=True)
    assert "UNSUPPORTED_PROTOCOL" in str(outcome)
    assert "protocol version" in (_alert(run.output) or ""), run.output[-3000:]
    # Control: the same offer completes TLS 1.1 PSK against a permissive openssl s_server.
    control = _control("rof-1", KEY_1, ["-tls1_1", "-cipher", LEGACY_PSK], list(offer), legacy=True)
    assert control.returncode == 0, control.output[-3000:]
    assert _protocol(control.output) == "TLSv1.1", control.output[-3000:]
    line = _handshake_line(control.output)
    assert line is not None
    assert "PSK" in line[1]
    assert S_SERVER_PAGE in control.output


# --------------------------------------------------------------------------- B: openssl server


def _capif8sec_client(
    server_args: list[str], key: bytes, *, tls12: bool = False
) -> tuple[tls.TlsPeer | HandshakeRejected, str]:
    """A capif8sec PSK client (rof-1, ``key``) against ``openssl s_server ARGS -www``.

    Returns the checked server (after a GET answered by s_server) or the refusal, and what
    s_server printed.
    """
    ctx = psk_client_context(credential=PskCredential(b"rof-1", key, CCF))
    if tls12:
        ctx.maximum_version = tls.TS33210.minimum_version  # TLS 1.2
    with s_server([*server_args, "-www"]) as server:
        try:
            sock, peer = blocking.connect("127.0.0.1", server.port, ctx, timeout=HANDSHAKE_TIMEOUT)
        except HandshakeRejected as exc:
            server.wait_for(":error:", 2.0)  # s_server reports its side asynchronously
            return exc, server.output
        with sock:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            sock.sendall(REQUEST)
            page = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(4096):
                    page += chunk
        assert page.startswith(S_SERVER_PAGE.encode()), page[:200]
        return peer, server.output


def _psk_server_args(*extra: str) -> list[str]:
    return ["-nocert", *_psk_args("rof-1", KEY_1), *extra]


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2-dhe-psk"])
def test_capif8sec_client_accepts_openssl_server_with_the_right_key(
    dhparam: Path, tls12: bool
) -> None:
    extra = ["-tls1_2", "-cipher", DHE_PSK, "-dhparam", str(dhparam)] if tls12 else []
    peer, _ = _capif8sec_client(_psk_server_args(*extra), KEY_1, tls12=tls12)
    assert isinstance(peer, tls.TlsPeer), peer
    assert peer.side == "client"
    assert peer.authentication == "psk"
    assert peer.psk_identity == "rof-1"
    assert peer.identities is None
    if tls12:
        assert (peer.version, peer.cipher) == ("TLSv1.2", DHE_PSK)
    else:
        assert peer.version == "TLSv1.3"
        assert peer.cipher in PSK_TLS13_SUITES


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2-dhe-psk"])
def test_capif8sec_client_refuses_openssl_server_with_a_wrong_key(
    dhparam: Path, tls12: bool
) -> None:
    """The server proves the key too (R48: the PSK is the mutual proof)."""
    extra = ["-tls1_2", "-cipher", DHE_PSK, "-dhparam", str(dhparam)] if tls12 else []
    outcome, _ = _capif8sec_client(_psk_server_args(*extra), secrets.token_bytes(32), tls12=tls12)
    assert isinstance(outcome, HandshakeRejected), outcome


def test_capif8sec_client_refuses_a_server_offering_only_non_fs_psk() -> None:
    """R47: the client never negotiates TLS_PSK_* (no forward secrecy), not even when that is
    all the server has."""
    server_args = _psk_server_args("-tls1_2", "-cipher", NON_FS_PSK)
    outcome, output = _capif8sec_client(server_args, KEY_1, tls12=True)
    assert isinstance(outcome, HandshakeRejected), outcome
    assert "no shared cipher" in output
    # Control: that s_server does complete a PSK handshake, with a client that offers it.
    control = _control(
        "rof-1", KEY_1, ["-tls1_2", "-cipher", NON_FS_PSK], ["-tls1_2"], legacy=False
    )
    assert _handshake_line(control.output) == ("TLSv1.2", NON_FS_PSK), control.output[-3000:]


def test_capif8sec_client_refuses_an_openssl_certificate_server(tmp_path: Path) -> None:
    """An openssl s_server with a certificate and no PSK cannot complete with the PSK client."""
    issued = TestPKI().server_cert()
    issued.write(tmp_path / "server.pem", tmp_path / "server.key")
    server_args = ["-cert", str(tmp_path / "server.pem"), "-key", str(tmp_path / "server.key")]
    outcome, _ = _capif8sec_client(server_args, KEY_1)
    assert isinstance(outcome, HandshakeRejected), outcome
    assert "CERTIFICATE_VERIFY_FAILED" in str(outcome)
