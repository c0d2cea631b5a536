"""Load with hostile peers, on loopback: the peers, the rounds, and a server watched via /proc.

Used by ``bench/load.py`` and by the regression test of the same name; for tests and benches
only.  Every peer here refuses any address that is not a loopback address.

A round connects all its peers first (TCP only, so that the server holds every connection at
once), then lets them all go: good ROFs send ``GET /whoami`` and must get ``200``; hostile peers
do what their kind says and must never be served.  Each peer reports an :class:`Outcome`.

Hostile kinds (:func:`tls_peer` with a wrong credential, and the raw ones here):

- a TLS client with the wrong credential (untrusted CA, non-conformant certificate, wrong PSK),
  or offering TLS 1.1 only (:func:`tls11_context`);
- :func:`garbage_peer`: bytes that are not a ClientHello;
- :func:`stalling_peer` (slowloris): part of a real ClientHello, then nothing;
- :func:`hangup_peer`: a whole ClientHello, the first bytes of the server's answer, then gone.

:class:`ServerProcess` runs a server command in a subprocess, waits for its
``listening on https://HOST:PORT`` line, sends its log to a file (a pipe nobody reads would
block a server that logs every connection) and reads its resident memory, open file
descriptors and CPU time from ``/proc`` (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import select
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from attrs import frozen

from capif8sec.errors import Capif8secError, UsageError
from capif8sec.integrations.aio import check_stream

__all__ = [
    "FAILED",
    "HUNG",
    "LEFT",
    "REFUSED",
    "SERVED",
    "Outcome",
    "Peer",
    "RoundResult",
    "ServerProcess",
    "Steps",
    "client_hello",
    "garbage_peer",
    "hangup_peer",
    "https_get",
    "raise_fd_limit",
    "run_round",
    "stalling_peer",
    "tls11_context",
    "tls_peer",
]

#: Got ``200`` (a good ROF must; a hostile peer never may).
SERVED = "served"
#: The server refused: a TLS alert or error, a close, a reset, or an HTTP status other than 200.
REFUSED = "refused"
#: The peer itself went away mid-handshake (as its kind says).
LEFT = "left"
#: The server still held the connection when the peer's patience ran out.
HUNG = "hung"
#: The peer could not do its part (e.g. the TCP connect failed).
FAILED = "failed"


@frozen
class Outcome:
    """What became of one peer; ``seconds`` run from its TCP connect to the end."""

    kind: str
    result: str
    seconds: float
    detail: str = ""


#: A peer: given the target (host, port), its connected socket and the time of the connect.
Peer = Callable[[tuple[str, int], socket.socket, float], Awaitable[Outcome]]
#: What a TLS peer does on its established connection: ``steps(target, reader, writer, peer)``
#: returns the final HTTP status and headers (``peer``: the checked TlsPeer, or None).
Steps = Callable[
    [tuple[str, int], asyncio.StreamReader, asyncio.StreamWriter, object],
    Awaitable[tuple[int | None, dict[str, list[str]]]],
]


def _loopback(host: str) -> str:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise UsageError(f"load-test peers talk to loopback addresses only, not {host!r}")


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; return (soft, hard)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def client_hello(
    server_name: str = "ccf.capif.example", ctx: ssl.SSLContext | None = None
) -> bytes:
    """A real TLS ClientHello (a fresh one each call), as the bytes a client sends first.

    :param ctx: the client context that says it (default: TLS 1.2/1.3, verifying nothing); a
        TLS-level PSK context offers its PSK, so that a PSK-only server answers it.
    """
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def tls11_context(
    cert: str | os.PathLike[str] | None = None, key: str | os.PathLike[str] | None = None
) -> ssl.SSLContext:
    """A client context that offers TLS 1.1 only (security level 0), verifying nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # offering TLS 1.1 is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _status(data: bytes) -> tuple[int | None, dict[str, list[str]]]:
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return None, {}
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None, {}
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(parts[1]), headers


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes; what arrived before an unclean close counts too."""
    data = b""
    with contextlib.suppress(OSError, EOFError, asyncio.IncompleteReadError):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def https_get(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    authorization: str | None = None,
) -> tuple[int | None, dict[str, list[str]]]:
    """``GET /whoami`` on an open connection, read to the end: the status and headers."""
    head = "GET /whoami HTTP/1.1\r\nHost: ccf.capif.example\r\n"
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    writer.write((head + "\r\n").encode("latin-1"))
    await writer.drain()
    return _status(await _read_all(reader))


def tls_peer(
    kind: str,
    ctx: ssl.SSLContext,
    *,
    patience: float,
    check: bool = False,
    server_hostname: str = "ccf.capif.example",
    steps: Steps | None = None,
) -> Peer:
    """A TLS client on ``ctx`` that asks for ``GET /whoami``: SERVED on 200, else REFUSED.

    :param check: run capif8sec's post-handshake check on the server (a good ROF does).
    :param steps: instead of one plain GET, ``steps(target, reader, writer, peer)`` runs the
        request(s) and returns the final status (e.g. an RFC 7804 exchange over two
        connections); ``peer`` is the :class:`~capif8sec.tls.TlsPeer` when ``check`` is set.
    :param patience: seconds before the peer gives up (HUNG) on a server that neither serves
        nor refuses it.
    """

    async def run(target: tuple[str, int], sock: socket.socket, t0: float) -> Outcome:
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(patience):
                try:
                    reader, writer = await asyncio.open_connection(
                        sock=sock,
                        ssl=ctx,
                        server_hostname=server_hostname,
                        ssl_handshake_timeout=patience + 1,  # the patience decides: HUNG
                    )
                    peer = check_stream(writer) if check else None
                    if steps is None:
                        status, _ = await https_get(reader, writer)
                    else:
                        status, _ = await steps(target, reader, writer, peer)
                except (OSError, EOFError, Capif8secError) as exc:
                    return Outcome(kind, REFUSED, time.monotonic() - t0, type(exc).__name__)
        except TimeoutError:
            return Outcome(kind, HUNG, time.monotonic() - t0)
        finally:
            if writer is not None:
                writer.transport.abort()
            else:
                sock.close()
        result = SERVED if status == 200 else REFUSED
        return Outcome(kind, result, time.monotonic() - t0, f"HTTP {status}")

    return run


async def _until_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError, EOFError):
        while await reader.read(65536):
            pass


def garbage_peer(kind: str, data: bytes, *, patience: float) -> Peer:
    """Sends ``data`` (not a ClientHello) and waits for the server to hang up."""

    async def run(target: tuple[str, int], sock: socket.socket, t0: float) -> Outcome:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(data)
            async with asyncio.timeout(patience):
                await _until_closed(reader)
        except TimeoutError:
            return Outcome(kind, HUNG, time.monotonic() - t0)
        except OSError as exc:
            return Outcome(kind, REFUSED, time.monotonic() - t0, type(exc).__name__)
        finally:
            writer.transport.abort()
        return Outcome(kind, REFUSED, time.monotonic() - t0)

    return run


def stalling_peer(kind: str, *, patience: float, fraction: float = 0.5) -> Peer:
    """Slowloris: sends the first ``fraction`` of a real ClientHello, then nothing."""

    async def run(target: tuple[str, int], sock: socket.socket, t0: float) -> Outcome:
        hello = client_hello()
        prefix = hello[: max(1, int(len(hello) * fraction))]
        return await garbage_peer(kind, prefix, patience=patience)(target, sock, t0)

    return run


def hangup_peer(kind: str, *, patience: float, hello: Callable[[], bytes] = client_hello) -> Peer:
    """Sends a whole ClientHello (``hello()``), reads the first bytes of the answer, then
    disconnects: LEFT when the server had answered, REFUSED when it had closed."""

    async def run(target: tuple[str, int], sock: socket.socket, t0: float) -> Outcome:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(hello())
            async with asyncio.timeout(patience):
                first = await reader.read(5)
        except TimeoutError:
            return Outcome(kind, HUNG, time.monotonic() - t0)
        except OSError as exc:
            return Outcome(kind, REFUSED, time.monotonic() - t0, type(exc).__name__)
        finally:
            writer.transport.abort()  # mid-handshake: the server is waiting for our Finished
        return Outcome(kind, LEFT if first else REFUSED, time.monotonic() - t0)

    return run


@frozen
class RoundResult:
    """One round: every outcome, and when the good ROFs were done."""

    outcomes: tuple[Outcome, ...]
    #: Seconds the TCP connects of all peers took (before "go").
    connect_seconds: float
    #: Seconds from "go" to the last good ROF's outcome.
    good_seconds: float
    #: Whatever ``at_good_done()`` returned when the last good ROF was done (e.g. server CPU).
    at_good_done: object = None


async def _connect(target: tuple[str, int]) -> tuple[socket.socket, float]:
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, target)
    except BaseException:
        sock.close()
        raise
    return sock, time.monotonic()


async def run_round(
    host: str,
    port: int,
    good: Sequence[Peer],
    hostile: Sequence[Peer],
    *,
    at_go: Callable[[], object] | None = None,
    at_good_done: Callable[[], object] | None = None,
) -> RoundResult:
    """Connect every peer, then run them all at once; good ROFs are timed from "go"."""
    target = (_loopback(host), port)
    peers = [*good, *hostile]
    start = time.monotonic()
    connected = await asyncio.gather(*(_connect(target) for _ in peers), return_exceptions=True)
    t_connected = time.monotonic()
    if at_go is not None:
        at_go()
    go = time.monotonic()

    async def one(
        peer: Peer, conn: tuple[socket.socket, float] | BaseException, kind: str
    ) -> Outcome:
        if isinstance(conn, BaseException):
            return Outcome(kind, FAILED, 0.0, f"connect: {conn}")
        return await peer(target, *conn)

    good_tasks = [
        asyncio.ensure_future(one(p, s, "good")) for p, s in zip(good, connected, strict=False)
    ]
    hostile_tasks = [
        asyncio.ensure_future(one(p, s, "hostile"))
        for p, s in zip(hostile, connected[len(good) :], strict=True)
    ]
    good_outcomes = await asyncio.gather(*good_tasks)
    good_seconds = time.monotonic() - go
    marker = at_good_done() if at_good_done is not None else None
    hostile_outcomes = await asyncio.gather(*hostile_tasks)
    return RoundResult(
        (*good_outcomes, *hostile_outcomes), t_connected - start, good_seconds, marker
    )


class ServerProcess:
    """A server subprocess on loopback, its log in a file, watched through ``/proc/PID``.

    :param argv: the command; it must print ``listening on https://HOST:PORT`` first.
    :param log: where its stderr goes.
    :param fd_limit: the server's soft ``RLIMIT_NOFILE`` (default: this process's).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        fd_limit: int | None = None,
    ) -> None:
        self.log_path = Path(log)

        def limit() -> None:  # in the child, before exec
            import resource

            assert fd_limit is not None
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, hard))

        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(  # noqa: S603 -- the caller's argv, no shell
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, **(env or {})},
                preexec_fn=limit if fd_limit is not None else None,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], startup_timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on https://"):
            self.close()
            raise UsageError(f"the server did not start: {line!r}; log: {self.log()[-2000:]!r}")
        address = line.strip().removeprefix("listening on https://")
        host, _, port = address.rpartition(":")
        self.host = _loopback(host.strip("[]"))
        self.port = int(port)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident memory (``VmRSS``), KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise UsageError("no VmRSS in /proc/PID/status")

    def fds(self) -> int:
        """Open file descriptors."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far (``/proc/PID/stat``; clock-tick resolution)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_fds(self, at_most: int, timeout: float) -> int:
        """Poll until the server holds at most ``at_most`` fds (or ``timeout``); the count."""
        deadline = time.monotonic() + timeout
        while (n := self.fds()) > at_most and time.monotonic() < deadline:
            time.sleep(0.05)
        return n

    def log(self) -> str:
        """The server's stderr so far."""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
