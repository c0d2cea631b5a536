"""The checked peer of a connection, on event loops and contexts it cannot be trusted on.

The ASGI servers carry each connection's checked peer in the context of asyncio's own
transports (:mod:`capif8sec.integrations.handshake`).  Found in review: uvloop runs every
connection of a listener in one shared context, so a request was served as the ROF whose
handshake completed last; and a peer set in the caller's context leaked into a plain-HTTP
server started from it.  Both must fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any

import pytest
import uvicorn
from integrations_helpers import CCF, TIMEOUT, WhoAmI, mtls_server, rof_client

from capif8sec.errors import TlsConfigError
from capif8sec.integrations import handshake
from capif8sec.integrations import hypercorn as capif_hypercorn
from capif8sec.integrations import uvicorn as capif_uvicorn
from capif8sec.integrations.asgi import Capif8secMiddleware
from capif8sec.testing import TestPKI

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (test extra)")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.mark.parametrize("serve", [capif_uvicorn.serve, capif_hypercorn.serve])
def test_the_server_helpers_refuse_uvloop(serve: Any, pki: TestPKI) -> None:
    async def main() -> None:
        await serve(Capif8secMiddleware(WhoAmI()), mtls_server(pki))

    with pytest.raises(TlsConfigError, match="asyncio's own event loop"):
        uvloop.run(main())


async def _get(port: int, ctx: ssl.SSLContext | None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=CCF if ctx else None
    )
    writer.write(b"GET /whoami HTTP/1.1\r\nHost: ccf\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return answer


def test_under_uvloop_no_request_gets_a_peer(pki: TestPKI) -> None:
    """uvicorn run by hand under uvloop with a checked context: every ROF's request is a 500
    problem (no peer), never another ROF's identity; the app is never called."""
    app = WhoAmI()
    config = capif_uvicorn.config(Capif8secMiddleware(app), mtls_server(pki), log_level="error")

    async def main() -> list[bytes]:
        sock = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        try:
            return await asyncio.gather(
                *(_get(port, rof_client(pki, f"rof-{i}")) for i in range(3))
            )
        finally:
            server.should_exit = True
            await task

    answers = uvloop.run(main())
    assert all(a.startswith(b"HTTP/1.1 500 ") for a in answers), answers
    assert b"urn:capif:rof" not in b"".join(answers)
    assert app.calls == 0


def test_a_peer_in_the_callers_context_does_not_reach_a_plain_http_server(
    pki: TestPKI,
) -> None:
    """A checked server-side handshake done in the caller's own task sets the context
    variable there; a plain-HTTP server started from that task must not serve a request as
    that peer (the middleware needs an https request)."""
    app = WhoAmI()
    server_ctx = handshake.check_during_handshake(mtls_server(pki))
    client_ctx = rof_client(pki, "victim")

    async def main() -> bytes:
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        client = client_ctx.wrap_bio(c_in, c_out, server_hostname=CCF)
        for _ in range(10):
            for obj in (client, server):
                with contextlib.suppress(ssl.SSLWantReadError):
                    obj.do_handshake()
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        assert handshake.connection_peer() is not None  # set in this task's context
        sock = socket.create_server(("127.0.0.1", 0))
        plain = uvicorn.Server(uvicorn.Config(Capif8secMiddleware(app), log_level="error"))
        task = asyncio.create_task(plain.serve(sockets=[sock]))
        while not plain.started:
            await asyncio.sleep(0.01)
        try:
            return await _get(sock.getsockname()[1], None)
        finally:
            plain.should_exit = True
            await task

    answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 500 "), answer
    assert b"victim" not in answer and app.calls == 0


def test_the_server_helpers_start_without_an_inherited_peer() -> None:
    ctx = handshake.fresh_context()
    assert ctx.run(handshake.connection_peer) is None
