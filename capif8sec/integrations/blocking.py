"""Blocking-socket helpers: connect or accept, handshake with a timeout, run the check."""

from __future__ import annotations

import socket
import ssl

from capif8sec.errors import HandshakeRejected, TlsConfigError
from capif8sec.tls.check import TlsPeer, check_connection
from capif8sec.tls.context import CapifContext

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "accept", "connect"]

#: Seconds a peer gets to complete the TLS handshake.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


def _handshake(sock: ssl.SSLSocket, timeout: float) -> None:
    sock.settimeout(timeout)
    try:
        sock.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        raise HandshakeRejected(f"TLS handshake failed: {reason}") from exc
    sock.settimeout(None)


def connect(
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    server_hostname: str | None = None,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> tuple[ssl.SSLSocket, TlsPeer]:
    """Connect, handshake within ``timeout`` and check the server; return the socket and peer."""
    if not isinstance(context, CapifContext):
        raise TlsConfigError("use a context built by capif8sec.tls.client_context")
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        sock = context.wrap_socket(
            raw, server_hostname=server_hostname or host, do_handshake_on_connect=False
        )
    except Exception:
        raw.close()
        raise
    _handshake(sock, timeout)
    return sock, check_connection(sock)


def accept(
    listener: socket.socket,
    context: ssl.SSLContext,
    *,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> tuple[ssl.SSLSocket, TlsPeer]:
    """Accept one connection, handshake within ``timeout`` and check the client."""
    if not isinstance(context, CapifContext):
        raise TlsConfigError("use a context built by capif8sec.tls.server_context")
    raw, _ = listener.accept()
    try:
        sock = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    except Exception:
        raw.close()
        raise
    _handshake(sock, timeout)
    return sock, check_connection(sock)
