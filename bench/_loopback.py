"""Shared by the handshake benches: a threaded loopback TLS server and a timed client round."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

Check = Callable[[ssl.SSLSocket], object]


def no_check(sock: ssl.SSLSocket) -> object:
    """The baseline's post-handshake work: none."""
    return None


class Server:
    """One listening socket served by a thread: handshake, optional check, one byte, close."""

    def __init__(self, ctx: ssl.SSLContext, check: Check) -> None:
        self.ctx, self.check = ctx, check
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.pending = threading.Semaphore(0)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.pending.acquire()
            if self.stop:
                return
            raw, _ = self.sock.accept()
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                self.check(conn)
                conn.sendall(b"k")

    def close(self) -> None:
        """Stop the thread and the listener."""
        self.stop = True
        self.pending.release()
        self.thread.join(2)
        self.sock.close()


def handshake_round(
    server: Server,
    ctx: ssl.SSLContext,
    check: Check,
    n: int,
    server_hostname: str = "ccf.capif.example",
) -> float:
    """``n`` full handshakes (each with ``check`` and one byte read); returns handshakes/s."""
    start = time.perf_counter()
    for _ in range(n):
        server.pending.release()
        raw = socket.create_connection(("127.0.0.1", server.port))
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as conn:
            check(conn)
            conn.recv(1)
    return n / (time.perf_counter() - start)
