"""A deliberately non-compliant TLS server: the control of the sslyze scan (not a test module).

``python misconfigured_server.py CERT KEY`` serves TLS on a free loopback port with the stdlib
:mod:`ssl` configured the way TS 33.210 forbids: TLS 1.0 and 1.1 enabled, every OpenSSL suite
(CBC, static RSA, SHA-1 MACs) at ``@SECLEVEL=0``.  It prints ``listening on https://HOST:PORT``
once ready, answers any request with a fixed HTTP response, and runs until terminated.

Run it with ``OPENSSL_CONF=/dev/null``: Debian's ``openssl.cnf`` pins ``MinProtocol = TLSv1.2``.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import sys

#: Everything OpenSSL has except the NULL ciphers, at security level 0.
LEGACY_CIPHERS = "ALL:@SECLEVEL=0"


def context(cert: str, key: str) -> ssl.SSLContext:
    """The misconfigured server context."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(LEGACY_CIPHERS)
    ctx.load_cert_chain(cert, key)
    return ctx


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str]) -> int:
    cert, key = argv[1], argv[2]
    ctx = context(cert, key)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(5.0)
            try:
                with ctx.wrap_socket(sock, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            except (OSError, ValueError):
                pass  # scanners abort handshakes all the time

    with _Server(("127.0.0.1", 0), Handler) as server:
        host, port = server.server_address[:2]
        print(f"listening on https://{host!s}:{port}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
