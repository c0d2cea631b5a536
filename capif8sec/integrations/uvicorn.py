"""Serve an ASGI app on uvicorn with capif8sec's server context (extra ``asgi-uvicorn``).

What uvicorn offers (checked on 0.54): ``Config`` takes ``ssl_*`` *file* options, and -- from
0.47 on -- ``ssl_context_factory(config, default_factory)``, whose return value uvicorn hands to
``loop.create_server(ssl=...)`` unchanged.  That is the hook used here: the factory returns the
:class:`~capif8sec.tls.CapifContext`, prepared by
:func:`~capif8sec.integrations.handshake.check_during_handshake` so that the post-handshake
check runs inside every handshake (a client failing it never reaches a protocol instance).
Older uvicorn releases have no such hook and are refused.

uvicorn puts nothing about TLS in the ASGI scope (no ``tls`` extension; it reads the transport's
``ssl_object`` for ALPN only), so the checked peer reaches
:class:`~capif8sec.integrations.asgi.Capif8secMiddleware` through
:func:`~capif8sec.integrations.handshake.connection_peer`.  That needs asyncio's own event
loop: :func:`config` sets ``loop="asyncio"`` (for ``uvicorn.Server.run``), :func:`serve` refuses
to run on any other loop (uvloop shares one context among the connections of a listener), and
the middleware finds no peer -- and answers 500 -- on any other loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from capif8sec.errors import TlsConfigError
from capif8sec.integrations.asgi import ASGIApp
from capif8sec.integrations.handshake import (
    check_during_handshake,
    fresh_context,
    require_asyncio_own_loop,
)
from capif8sec.tls.context import CapifContext

__all__ = ["config", "serve"]

_FORBIDDEN = frozenset(
    {"ssl_keyfile", "ssl_certfile", "ssl_keyfile_password", "ssl_version", "ssl_cert_reqs"}
    | {"ssl_ca_certs", "ssl_ciphers", "ssl_context_factory", "loop", "uds", "fd"}
)


def _server_context(context: CapifContext) -> CapifContext:
    if not isinstance(context, CapifContext) or context.settings.side != "server":
        raise TlsConfigError("use a context built by capif8sec.tls.server_context (or tls.psk)")
    return check_during_handshake(context)


def config(app: ASGIApp, context: CapifContext, **kwargs: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` serving ``app`` with ``context`` (every handshake checked).

    ``kwargs`` go to ``uvicorn.Config`` (``host``, ``port``, ``log_level``, ...); the TLS
    options, ``loop``, ``uds`` and ``fd`` are refused: the context decides TLS.

    :raises TlsConfigError: not a capif8sec server context, a TLS option given, or a uvicorn
        release without ``ssl_context_factory`` (before 0.47).
    """
    ctx = _server_context(context)
    given = _FORBIDDEN.intersection(kwargs)
    if given:
        raise TlsConfigError(f"the capif8sec context decides TLS; do not pass {sorted(given)}")
    if "ssl_context_factory" not in inspect.signature(uvicorn.Config).parameters:
        raise TlsConfigError(
            f"uvicorn {uvicorn.__version__} cannot take an SSLContext (ssl_context_factory, "
            "uvicorn >= 0.47): refusing to serve without the capif8sec context"
        )

    def factory(_config: uvicorn.Config, _default: Callable[[], Any]) -> CapifContext:
        return ctx

    return uvicorn.Config(app, ssl_context_factory=factory, loop="asyncio", **kwargs)


async def serve(
    app: ASGIApp,
    context: CapifContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    **kwargs: Any,
) -> None:
    """Serve ``app`` on uvicorn until ``stop`` is set (or forever), in the running loop.

    ``port=0`` picks a free port; ``on_ready(host, port)`` runs once uvicorn listens.  Like
    :func:`capif8sec.integrations.azf.serve`.  ``kwargs`` go to :func:`config`.
    """
    require_asyncio_own_loop()  # Config(loop="asyncio") applies to Server.run() only
    sock = socket.create_server((host, port))
    server = uvicorn.Server(config(app, context, **kwargs))
    # in a context without any connection peer: nothing set by the caller is inherited
    task = asyncio.create_task(server.serve(sockets=[sock]), context=fresh_context())
    try:
        while not server.started:
            if task.done():
                await task  # startup failed: raise its error
                raise TlsConfigError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        if on_ready is not None:
            name = sock.getsockname()
            on_ready(name[0], name[1])
        if stop is None:
            await task
        else:
            await stop.wait()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
