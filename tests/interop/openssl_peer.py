"""The ``openssl`` binary as an independent TLS peer for the interop tests (not a test module).

- :func:`s_server` starts ``openssl s_server`` on a free loopback port, waits (bounded) until it
  reports ``ACCEPT``, and always stops it: terminate, then kill, then reap.
- :func:`s_client` runs ``openssl s_client`` with arguments and stdin under a timeout; a run that
  overstays is killed and reported as :class:`PeerTimeout`.

``legacy=True`` runs the peer with ``OPENSSL_CONF=/dev/null``: Debian's system ``openssl.cnf``
pins ``MinProtocol = TLSv1.2`` and ``SECLEVEL=2``, which would stop the peer from *offering*
what the refusal tests need it to offer (TLS 1.0/1.1, NULL suites).  Combine it with
:data:`LEGACY_CIPHERS` (``@SECLEVEL=0``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from capif8sec import tls
from capif8sec.integrations import blocking

__all__ = [
    "LEGACY_CIPHERS",
    "OPENSSL",
    "PeerTimeout",
    "RunningServer",
    "SClientRun",
    "free_port",
    "peer_env",
    "s_client",
    "s_server",
]

#: The openssl binary, or None when it is not installed (the tests skip then).
OPENSSL: str | None = shutil.which("openssl")
#: Cipher string that lets an OpenSSL 3 peer offer everything, weak suites included.
LEGACY_CIPHERS = "ALL:@SECLEVEL=0"
#: Seconds s_server gets to report ``ACCEPT``.
START_TIMEOUT = 5.0
#: Seconds an s_client run may take before it is killed.
CLIENT_TIMEOUT = 10.0


class PeerTimeout(AssertionError):
    """An openssl peer did not finish (or start) in time; it has been killed."""


class SClientRun(NamedTuple):
    """What one ``openssl s_client`` run produced: exit status and stdout+stderr."""

    returncode: int
    output: str


def _binary() -> str:
    if OPENSSL is None:
        raise RuntimeError("the openssl binary is not on PATH")
    return OPENSSL


def peer_env(*, legacy: bool = False) -> dict[str, str]:
    """The environment for an openssl peer; ``legacy`` bypasses the system ``openssl.cnf``."""
    env = dict(os.environ)
    if legacy:
        env["OPENSSL_CONF"] = os.devnull
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago: bind port 0, read it, release it (may race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RunningServer:
    """A running ``openssl s_server``: where it listens and what it printed so far."""

    def __init__(self, host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.host = host
        self.port = port
        self.proc = proc
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.proc.stdout
        if stream is None:
            return
        for raw in stream:
            with self._lock:
                self._lines.append(raw.decode(errors="replace"))

    @property
    def output(self) -> str:
        """Everything s_server printed so far (stdout and stderr)."""
        with self._lock:
            return "".join(self._lines)

    def wait_ready(self, timeout: float) -> bool:
        """True once s_server printed ``ACCEPT``; False if it exited first or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ACCEPT" in self.output:
                return True
            if self.proc.poll() is not None:
                self._reader.join(1.0)
                return "ACCEPT" in self.output
            time.sleep(0.01)
        return False

    def wait_for(self, text: str, timeout: float) -> bool:
        """True once ``text`` appears in the output; False when ``timeout`` runs out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            time.sleep(0.01)
        return text in self.output

    def stop(self) -> None:
        """Terminate, kill if needed, reap, close the pipe: never leaves an orphan."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        self._reader.join(2.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def s_server(
    args: Sequence[str],
    *,
    legacy: bool = False,
    host: str = "127.0.0.1",
    attempts: int = 5,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[RunningServer]:
    """Run ``openssl s_server -accept HOST:PORT ARGS...`` for the duration of the block.

    The port is found by binding port 0 and releasing it; if another process takes it before
    s_server binds, s_server fails to start and a new port is tried (``attempts`` times).
    """
    binary = _binary()
    failures: list[str] = []
    for _ in range(attempts):
        port = free_port(host)
        proc = subprocess.Popen(
            [binary, "s_server", "-accept", f"{host}:{port}", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=peer_env(legacy=legacy),
        )
        server = RunningServer(host, port, proc)
        try:
            ready = server.wait_ready(start_timeout)
        except BaseException:
            server.stop()
            raise
        if ready:
            try:
                yield server
            finally:
                server.stop()
            return
        server.stop()
        output = server.output
        if "in use" not in output and "unable to bind" not in output:
            # Not a port collision: do not retry a server that cannot start (or hung).
            raise PeerTimeout(
                f"openssl s_server did not start within {start_timeout}s: {output[-2000:]}"
            )
        failures.append(f"port {port}: {output.strip()[-200:]}")
    raise PeerTimeout(f"openssl s_server found no free port: {failures}")


def s_client(
    args: Sequence[str],
    *,
    stdin: bytes = b"",
    legacy: bool = False,
    timeout: float = CLIENT_TIMEOUT,
) -> SClientRun:
    """Run ``openssl s_client ARGS...`` with ``stdin``; return (returncode, stdout+stderr).

    :raises PeerTimeout: it did not exit within ``timeout`` (it has been killed and reaped).
    """
    try:
        done = subprocess.run(
            [_binary(), "s_client", *args],
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=peer_env(legacy=legacy),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed and reaped the child
        partial = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
        raise PeerTimeout(f"openssl s_client ran over {timeout}s: {partial[-2000:]}") from None
    return SClientRun(done.returncode, done.stdout.decode(errors="replace"))


class OneShotServer:
    """A capif8sec server accepting one connection in a thread via ``blocking.accept``.

    After the post-handshake check passes it reads the request head and answers with
    ``app_data``; nothing is written to a refused peer.
    """

    def __init__(
        self, ctx: tls.CapifContext, app_data: str, handshake_timeout: float = 5.0
    ) -> None:
        self.ctx = ctx
        self.app_data = app_data
        self.timeout = handshake_timeout
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(self.timeout + 5.0)  # bounded: no connection, no hang
        self.port: int = self.listener.getsockname()[1]
        self.peer: tls.TlsPeer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            sock, peer = blocking.accept(self.listener, self.ctx, timeout=self.timeout)
        except BaseException as exc:
            self.error = exc
            return
        self.peer = peer
        with sock:
            sock.settimeout(self.timeout)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 8192:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                body = self.app_data.encode()
                sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError as exc:
                self.error = exc
                return
            with contextlib.suppress(OSError, ValueError):
                sock.unwrap()  # close_notify, so s_client sees a clean end

    def outcome(self) -> tls.TlsPeer | BaseException:
        """Wait (bounded) for the thread; the checked peer, or what refused it."""
        self.thread.join(self.timeout + 10.0)
        assert not self.thread.is_alive(), "the capif8sec server thread did not finish"
        if self.peer is not None and self.error is None:
            return self.peer
        assert self.error is not None
        return self.error


@contextmanager
def one_shot_server(
    ctx: tls.CapifContext, app_data: str, handshake_timeout: float = 5.0
) -> Iterator[OneShotServer]:
    """Run a :class:`OneShotServer`; on the way out its thread is always ended (bounded)."""
    server = OneShotServer(ctx, app_data, handshake_timeout)
    server.thread.start()
    try:
        yield server
    finally:
        with contextlib.suppress(OSError):  # wakes a still-blocked accept() (Linux)
            server.listener.shutdown(socket.SHUT_RDWR)
        server.thread.join(handshake_timeout + 10.0)
        server.listener.close()
