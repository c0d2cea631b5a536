"""The post-handshake check as the last step of the handshake, for code that does its own TLS.

Web servers (uvicorn, hypercorn) and HTTP clients (httpx, aiohttp) run the TLS handshake
themselves and hand the application a connection, or a request, afterwards; none of them has a
hook between "handshake finished" and "first application byte".  The standard library has one:
:attr:`ssl.SSLContext.sslobject_class` and :attr:`ssl.SSLContext.sslsocket_class` choose the
classes :meth:`~ssl.SSLContext.wrap_bio` and :meth:`~ssl.SSLContext.wrap_socket` return.
:func:`check_during_handshake` sets both on a capif8sec context to classes whose
``do_handshake()`` runs :func:`~capif8sec.tls.check_connection` as soon as OpenSSL reports the
handshake complete, and raises :class:`CheckFailed` (an :class:`ssl.SSLError`) when the check
fails.  Every library above sees a failed *handshake*:

- asyncio (what uvicorn, hypercorn and aiohttp use) calls the protocol's ``connection_made``
  only after ``do_handshake()`` returned, so a server application never sees a peer that failed
  the check, and a client never writes a request byte to a server that failed it;
- anyio (httpx's async transport) and ``ssl.SSLSocket`` (httpx's sync transport) raise the error
  from the connect call, before the request is written.

The :class:`~capif8sec.tls.TlsPeer` the check returned stays on the connection's SSL object
(:func:`peer_of`).  On the server side it is also stored in a context variable
(:func:`connection_peer`) in the asyncio callback that completed the handshake; the tasks the
server then creates for that connection's requests copy it (PEP 567), which is how the ASGI
middleware (:mod:`capif8sec.integrations.asgi`) learns the peer of a request although neither
uvicorn nor hypercorn exposes the connection to the application.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl
from typing import TypeVar

from capif8sec.errors import HandshakeRejected, TlsConfigError
from capif8sec.tls.check import TlsPeer, check_connection
from capif8sec.tls.context import CapifContext

__all__ = [
    "CheckFailed",
    "CheckedSSLObject",
    "CheckedSSLSocket",
    "asyncio_own_loop",
    "check_during_handshake",
    "connection_peer",
    "fresh_context",
    "peer_of",
    "require_asyncio_own_loop",
]

log = logging.getLogger("capif8sec.integrations.handshake")

_T = TypeVar("_T", ssl.SSLObject, ssl.SSLSocket)

#: The checked peer of the server-side connection whose handshake completed in this context.
_CONNECTION_PEER: contextvars.ContextVar[TlsPeer | None] = contextvars.ContextVar(
    "capif8sec_connection_peer", default=None
)


class CheckFailed(ssl.SSLError, HandshakeRejected):
    """The handshake completed but the post-handshake check refused the peer.

    An :class:`ssl.SSLError` (so TLS libraries treat it as a failed handshake and close the
    connection) and a :class:`~capif8sec.errors.HandshakeRejected`.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "the post-handshake check failed"


def _finish(conn: ssl.SSLObject | ssl.SSLSocket) -> None:
    """Run the check once on a connection whose handshake just completed."""
    if getattr(conn, "capif8sec_peer", None) is not None:
        return
    try:
        peer = check_connection(conn)
    except HandshakeRejected as exc:
        side = "server" if conn.server_side else "client"
        log.info("%s: connection refused after the handshake: %s", side, exc)
        raise CheckFailed(str(exc)) from exc
    conn.capif8sec_peer = peer  # type: ignore[union-attr]
    if conn.server_side and isinstance(conn, ssl.SSLObject):
        _CONNECTION_PEER.set(peer)


class CheckedSSLObject(ssl.SSLObject):
    """An :class:`ssl.SSLObject` whose handshake ends with the post-handshake check."""

    #: The check's result, once the handshake completed and the check passed.
    capif8sec_peer: TlsPeer | None = None

    def do_handshake(self) -> None:
        """Run the TLS handshake, then the post-handshake check.

        :raises CheckFailed: the check refused the peer.
        """
        super().do_handshake()
        _finish(self)


class CheckedSSLSocket(ssl.SSLSocket):
    """An :class:`ssl.SSLSocket` whose handshake ends with the post-handshake check."""

    #: The check's result, once the handshake completed and the check passed.
    capif8sec_peer: TlsPeer | None = None

    def do_handshake(self, block: bool = False) -> None:
        """Run the TLS handshake, then the post-handshake check (which closes on failure).

        :raises CheckFailed: the check refused the peer.
        """
        super().do_handshake(block)
        _finish(self)


def check_during_handshake(context: ssl.SSLContext) -> CapifContext:
    """Make every connection of ``context`` run the post-handshake check inside its handshake.

    Sets ``sslobject_class`` and ``sslsocket_class`` on the context (it is changed in place and
    returned; calling again does nothing more).  Contexts built by
    :func:`~capif8sec.tls.server_context`, :func:`~capif8sec.tls.client_context` and
    :mod:`capif8sec.tls.psk` only.

    :raises TlsConfigError: not a capif8sec context.
    """
    if not isinstance(context, CapifContext) or not hasattr(context, "_capif8sec"):
        raise TlsConfigError("use a context built by capif8sec.tls (server_context/client_context)")
    # A context may bring classes of its own (the TLS-level PSK server context does, to tell its
    # callback which connection it serves): the checked class derives from those.
    context.sslobject_class = _checked(context.sslobject_class, CheckedSSLObject)
    context.sslsocket_class = _checked(context.sslsocket_class, CheckedSSLSocket)
    return context


_DERIVED: dict[tuple[type, type], type] = {}


def _checked(current: type[_T], checked: type[_T]) -> type[_T]:
    """``checked``, or a class doing its check around ``current``'s handshake."""
    if issubclass(current, checked):
        return current
    if current in (ssl.SSLObject, ssl.SSLSocket):
        return checked
    derived = _DERIVED.get((checked, current))
    if derived is None:
        derived = _DERIVED[checked, current] = type(
            f"Checked{current.__name__.lstrip('_')}", (checked, current), {}
        )
    return derived


def peer_of(connection: object) -> TlsPeer:
    """The checked peer of a connection: its ``SSLObject``/``SSLSocket``, as TLS libraries expose
    it (``transport.get_extra_info("ssl_object")``).

    :raises HandshakeRejected: not a connection of a context prepared by
        :func:`check_during_handshake` (or its check did not pass).
    """
    peer = getattr(connection, "capif8sec_peer", None)
    if not isinstance(peer, TlsPeer):
        raise HandshakeRejected(
            "no checked TLS connection: use a context prepared by check_during_handshake()"
        )
    return peer


def asyncio_own_loop() -> bool:
    """Whether the running event loop is one of asyncio's own (not uvloop or another).

    The per-connection context that carries :func:`connection_peer` is a property of asyncio's
    own transports: each transport's read callback runs in a context of its own, in which the
    handshake completes and from which the server's tasks for that connection are created.
    uvloop runs every connection of a listener in one shared context, so the value would be
    the peer of whichever handshake completed last (measured: one ROF's requests served as
    another's).  Only asyncio's own loops are trusted.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return isinstance(loop, asyncio.BaseEventLoop)


def require_asyncio_own_loop() -> None:
    """Refuse to serve on an event loop other than asyncio's own (see :func:`asyncio_own_loop`).

    :raises TlsConfigError: uvloop or another loop implementation is running.
    """
    if not asyncio_own_loop():
        raise TlsConfigError(
            "capif8sec's ASGI servers need asyncio's own event loop (not uvloop): the checked "
            "peer of a connection is carried in the context of asyncio's transports"
        )


def fresh_context() -> contextvars.Context:
    """A copy of the current context in which no connection peer is set: run a server's
    tasks in it, so that no peer set earlier in the caller's context is inherited."""
    ctx = contextvars.copy_context()
    ctx.run(_CONNECTION_PEER.set, None)
    return ctx


def connection_peer() -> TlsPeer | None:
    """The checked client of the server-side connection the current task serves, or None.

    Set when an asyncio server-side handshake on a context prepared by
    :func:`check_during_handshake` completes, in the callback that completes it; inherited by
    the tasks the server creates for that connection from there on.  None on any event loop
    other than asyncio's own (:func:`asyncio_own_loop`): there the value cannot be trusted.
    """
    peer = _CONNECTION_PEER.get()
    if peer is None or not asyncio_own_loop():
        return None
    return peer
