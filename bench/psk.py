"""TLS 1.3 external-PSK handshakes per second: capif8sec vs bare stdlib PSK contexts (3.13+).

Same keys, same loopback TCP, rounds alternating between the two.  capif8sec's side includes
the store lookup, the per-connection identity attribution and the post-handshake check on both
sides.  Last line: the ratio capif8sec/stdlib (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence

from capif8sec.auth.credentials import PskCredential
from capif8sec.tls import check_connection
from capif8sec.tls.psk import HAS_PSK, psk_client_context, psk_server_context

Check = Callable[[ssl.SSLSocket], object]
CCF = "ccf.capif.example"


class _Store:
    """A dict-backed CredentialStore (the lookup itself costs what a dict costs)."""

    def __init__(self, creds: Sequence[PskCredential]) -> None:
        self._by_identity = {c.identity: [c] for c in creds}

    def psk_credentials(self, identity: bytes, *, at: dt.datetime) -> Sequence[PskCredential]:
        return self._by_identity.get(identity, [])

    def scram_verifier(self, username: str, *, at: dt.datetime) -> None:
        return None


def _no_check(sock: ssl.SSLSocket) -> object:
    return None


class _Server:
    def __init__(self, ctx: ssl.SSLContext, check: Check) -> None:
        self.ctx, self.check = ctx, check
        self.sock = socket.socket()
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
        self.stop = True
        self.pending.release()
        self.thread.join(2)
        self.sock.close()


def _round(server: _Server, ctx: ssl.SSLContext, check: Check, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        server.pending.release()
        with ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", server.port)), server_hostname=CCF
        ) as conn:
            check(conn)
            conn.recv(1)
    return n / (time.perf_counter() - start)


def _stdlib(identity: str, key: bytes) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = client_min = ssl.TLSVersion.TLSv1_2
    server.num_tickets = 0
    keys = {identity: key}
    server.set_psk_server_callback(lambda ident: keys.get(ident or "", b""))  # type: ignore[attr-defined]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = client_min
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_psk_client_callback(lambda hint: (identity, key))  # type: ignore[attr-defined]
    return server, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=200, help="handshakes per round")
    args = parser.parse_args()
    if not HAS_PSK:
        print(f"TLS-level PSK needs Python >= 3.13; this is {sys.version.split()[0]}")
        print("ratio capif8sec/stdlib PSK handshakes: n/a (run with Python 3.13)")
        return
    creds = [PskCredential(f"rof-{i}".encode(), bytes([i]) * 32, CCF) for i in range(1, 101)]
    cred = creds[41]
    s_cap = psk_server_context(store=_Store(creds), ccf_identity=CCF)
    c_cap = psk_client_context(credential=cred)
    s_std, c_std = _stdlib(cred.identity.decode(), cred.key)
    std_server, cap_server = _Server(s_std, _no_check), _Server(s_cap, check_connection)
    std: list[float] = []
    cap: list[float] = []
    try:
        _round(std_server, c_std, _no_check, 20)
        _round(cap_server, c_cap, check_connection, 20)
        for _ in range(args.rounds):
            std.append(_round(std_server, c_std, _no_check, args.n))
            cap.append(_round(cap_server, c_cap, check_connection, args.n))
    finally:
        std_server.close()
        cap_server.close()
    s, c = statistics.median(std), statistics.median(cap)
    print(f"TLS 1.3 PSK: stdlib {s:.0f}/s, capif8sec {c:.0f}/s (medians of {args.rounds} rounds)")
    print(f"ratio capif8sec/stdlib PSK handshakes: {c / s:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
