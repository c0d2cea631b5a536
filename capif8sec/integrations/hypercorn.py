"""Serve an ASGI app on hypercorn with capif8sec's server context (extra ``asgi-hypercorn``).

What hypercorn offers (checked on 0.17 and 0.18): ``Config.create_ssl_context()`` is the method
its asyncio worker calls for the context it passes to ``asyncio.start_server(ssl=...)``, and
``Config.ssl_enabled`` decides whether it is called; both are overridden by :class:`Config`
here to return the :class:`~capif8sec.tls.CapifContext`, prepared by
:func:`~capif8sec.integrations.handshake.check_during_handshake` (the post-handshake check runs
inside every handshake, so a client failing it never reaches hypercorn's ``TCPServer``).

hypercorn puts nothing about TLS in the ASGI scope (no ``tls`` extension: hypercorn issue 62 is
open; it reads the ``ssl_object`` for ALPN only) and offers no per-connection hook, so the
checked peer reaches :class:`~capif8sec.integrations.asgi.Capif8secMiddleware` through
:func:`~capif8sec.integrations.handshake.connection_peer`.  Only the asyncio worker is
supported (:func:`serve` runs ``hypercorn.asyncio.serve``); the trio worker is not tested.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import hypercorn.asyncio
import hypercorn.config

from capif8sec.errors import TlsConfigError, UsageError
from capif8sec.integrations.asgi import ASGIApp
from capif8sec.integrations.handshake import (
    check_during_handshake,
    fresh_context,
    require_asyncio_own_loop,
)
from capif8sec.tls.context import CapifContext

__all__ = ["Config", "serve"]

log = logging.getLogger("capif8sec.integrations.hypercorn")

#: Config attributes the capif8sec context (or :func:`serve`) decides.
_FORBIDDEN = frozenset(
    {"certfile", "keyfile", "keyfile_password", "ca_certs", "ciphers", "verify_mode"}
    | {"verify_flags", "cert_reqs", "bind", "insecure_bind", "quic_bind", "worker_class"}
)


class Config(hypercorn.config.Config):
    """A hypercorn ``Config`` whose TLS is the capif8sec server context (every handshake checked).

    :raises TlsConfigError: not a capif8sec server context.
    """

    def __init__(self, context: CapifContext) -> None:
        super().__init__()
        if not isinstance(context, CapifContext) or context.settings.side != "server":
            raise TlsConfigError("use a context built by capif8sec.tls.server_context (or tls.psk)")
        self._capif8sec_context = check_during_handshake(context)

    @property
    def ssl_enabled(self) -> bool:
        """Always: the capif8sec context is the TLS configuration."""
        return True

    def create_ssl_context(self) -> ssl.SSLContext | None:
        """The capif8sec context (hypercorn's own ``certfile``/``ciphers``/... are not used)."""
        return self._capif8sec_context


async def serve(
    app: ASGIApp,
    context: CapifContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    **settings: Any,
) -> None:
    """Serve ``app`` on hypercorn (asyncio worker) until ``stop`` is set (or forever).

    ``port=0`` picks a free port; ``on_ready(host, port)`` runs once the socket listens (a
    client connecting before hypercorn accepts waits in the backlog).  ``settings`` are set on
    the :class:`Config` (``errorlog``, ``keep_alive_timeout``, ...); the TLS settings and binds
    are refused.  Like :func:`capif8sec.integrations.azf.serve`.
    """
    require_asyncio_own_loop()
    config = Config(context)
    given = _FORBIDDEN.intersection(settings)
    if given:
        raise TlsConfigError(f"the capif8sec context decides TLS; do not set {sorted(given)}")
    for name, value in settings.items():
        if not hasattr(config, name):
            raise UsageError(f"hypercorn's Config has no setting {name!r}")
        setattr(config, name, value)
    sock = socket.create_server((host, port))
    name = sock.getsockname()
    # hypercorn wraps the descriptor in a socket of its own and closes it at shutdown.
    config.bind = [f"fd://{sock.detach()}"]
    if on_ready is not None:
        on_ready(name[0], name[1])
    try:
        # in a context without any connection peer: nothing set by the caller is inherited
        await asyncio.create_task(
            hypercorn.asyncio.serve(
                app,  # type: ignore[arg-type]
                config,
                shutdown_trigger=stop.wait if stop is not None else None,
            ),
            context=fresh_context(),
        )
    except ssl.SSLError as exc:
        # hypercorn (0.18) gathers its connection tasks at shutdown and re-raises the TLS error
        # of a connection whose peer kept sending after close_notify (e.g. after a 413): the
        # server has stopped; the peer's fault is not the caller's error.
        log.info("hypercorn stopped; a connection ended with a TLS error: %s", exc)
