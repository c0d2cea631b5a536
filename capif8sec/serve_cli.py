"""``capif8sec serve``: the reference AzF endpoint, in each of its ROF authentication modes.

================================  ============================================================
options                           ROFs authenticate by
================================  ============================================================
``--cert --key --ca``             client certificate (mutual TLS, TS 33.310 6.1.3a), required
``--cert --key --credentials-db`` password (SCRAM-SHA-256-PLUS) or in-channel PSK proof, over
                                  RFC 7804 headers bound to the server certificate; no client
                                  certificate is requested
``--psk-file``                    TLS-level external PSK (Python 3.13+), no certificate at all
================================  ============================================================

With ``--policy FILE`` (and ``--requests FILE``, the authorization requests this CCF sent) the
endpoint also accepts CAPIF-8 messages from authenticated ROFs, checked by the policy guard:
``POST /capif8/v1/authorization-responses`` and ``POST /capif8/v1/revocations``.  SIGHUP reloads
the policy file.

The first line on stdout, flushed, is ``listening on https://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from capif8sec import tls
from capif8sec.auth.http import HttpExchangeServer, HttpScramServer, http_psk_server
from capif8sec.auth.inchannel import InChannelPskAuthenticator
from capif8sec.auth.pskfile import load_psk_file
from capif8sec.auth.scram import ScramAuthenticator
from capif8sec.auth.stores import KeyEncryptionKey, MemoryStore, SqliteStore
from capif8sec.capif8 import MessageGuard, ResourceOwnerAuthorizationRequest
from capif8sec.certs import DEVIATIONS, identities_of, load_certificates
from capif8sec.errors import Capif8secError, TlsConfigError, UsageError
from capif8sec.integrations.azf import DEFAULT_BACKLOG, AzfApp, Capif8Endpoint, serve
from capif8sec.policy import PolicyEngine

__all__ = ["add_subparser", "run"]

KEK_ENV = "CAPIF8SEC_KEK"
REALM = "capif8"


def add_subparser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``serve`` on the main parser."""
    p = sub.add_parser("serve", help="run the reference AzF endpoint (HTTPS)")
    p.add_argument("--cert", metavar="CHAIN.pem", help="server certificate chain")
    p.add_argument("--key", metavar="KEY.pem", help="server private key")
    p.add_argument(
        "--ca",
        action="append",
        default=[],
        metavar="CA.pem",
        help="trust anchors for ROF client certificates (mutual TLS)",
    )
    p.add_argument("--crl", action="append", default=[], metavar="FILE")
    p.add_argument("--deviation", action="append", default=[], choices=sorted(DEVIATIONS))
    p.add_argument(
        "--psk-file",
        metavar="FILE",
        help="lines 'IDENTITY HEXKEY': a TLS-level PSK-only endpoint (Python 3.13+)",
    )
    p.add_argument(
        "--credentials-db",
        metavar="FILE",
        help="SQLite credential store: password and in-channel PSK ROFs",
    )
    p.add_argument(
        "--kek-file",
        metavar="FILE",
        help=f"key-encryption key of --credentials-db (hex); or set {KEK_ENV}",
    )
    p.add_argument(
        "--ccf-identity",
        metavar="NAME",
        help="this CCF's identity PSKs are bound to (default: the certificate's "
        "first DNS name, else ccf.capif.example)",
    )
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="TOML policy: enables the CAPIF-8 endpoints (reloaded on SIGHUP)",
    )
    p.add_argument(
        "--requests",
        metavar="FILE",
        help="JSON list of the authorization requests this CCF sent (responses "
        "are matched to them by requestId)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls13-only", action="store_true")
    p.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a peer that has not completed the TLS handshake (or the closing one) by then is cut",
    )
    p.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        metavar="N",
        help=f"listen backlog (default {DEFAULT_BACKLOG})",
    )


def _ccf_identity(args: argparse.Namespace) -> str:
    if args.ccf_identity:
        return str(args.ccf_identity)
    if args.cert:
        try:
            names = identities_of(load_certificates(Path(args.cert).read_bytes())[0]).dns_names
        except (OSError, Capif8secError):
            names = ()
        if names:
            return names[0]
    return "ccf.capif.example"


def _kek(args: argparse.Namespace) -> KeyEncryptionKey:
    if args.kek_file:
        return KeyEncryptionKey.from_file(args.kek_file)
    if os.environ.get(KEK_ENV):
        return KeyEncryptionKey.from_hex(os.environ[KEK_ENV])
    raise UsageError(f"--credentials-db needs a key-encryption key: --kek-file FILE or {KEK_ENV}")


def _capif8(args: argparse.Namespace) -> tuple[Capif8Endpoint | None, PolicyEngine | None]:
    if not args.policy:
        if args.requests:
            raise UsageError("--requests goes with --policy")
        return None, None
    engine = PolicyEngine.from_file(args.policy)
    outstanding: list[ResourceOwnerAuthorizationRequest] = []
    if args.requests:
        try:
            items = json.loads(Path(args.requests).read_bytes())
        except ValueError as exc:
            raise UsageError(f"--requests {args.requests}: not JSON: {exc}") from None
        if not isinstance(items, list):
            raise UsageError(f"--requests {args.requests}: a JSON list of requests")
        for i, item in enumerate(items):
            try:
                outstanding.append(ResourceOwnerAuthorizationRequest.from_dict(item))
            except UsageError as exc:
                raise UsageError(f"--requests {args.requests} [{i}]: {exc}") from None
    return Capif8Endpoint(MessageGuard(engine), outstanding), engine


def _build(args: argparse.Namespace) -> tuple[tls.CapifContext, AzfApp]:
    profile = tls.TS33210_TLS13_ONLY if args.tls13_only else tls.TS33210
    ccf = _ccf_identity(args)
    capif8, engine = _capif8(args)
    if engine is not None:
        _reload_on_sighup(engine, args.policy)
    if args.psk_file:
        if args.cert or args.ca or args.credentials_db:
            raise UsageError(
                "--psk-file makes a PSK-only endpoint: no --cert/--ca/--credentials-db"
            )
        from capif8sec.tls.psk import psk_server_context

        store = MemoryStore()
        store.add_psks(load_psk_file(Path(args.psk_file), ccf_identity=ccf))
        ctx = psk_server_context(store=store, ccf_identity=ccf, profile=profile)
        return ctx, AzfApp(capif8=capif8)
    if not (args.cert and args.key):
        raise UsageError("serve needs --cert and --key (or --psk-file)")
    if bool(args.ca) == bool(args.credentials_db):
        raise UsageError(
            "choose one way for ROFs to authenticate: --ca (client certificates) or "
            "--credentials-db (password / in-channel PSK)"
        )
    present = tls.Identity.from_files(args.cert, args.key)
    if args.ca:
        verify = tls.PeerVerification(
            tuple(Path(p).read_bytes() for p in args.ca),
            crls=tuple(Path(p).read_bytes() for p in args.crl),
            deviations=tuple(args.deviation),
        )
        ctx = tls.server_context(present=present, verify=verify, profile=profile, alpn=["http/1.1"])
        return ctx, AzfApp(capif8=capif8)
    db = SqliteStore(Path(args.credentials_db), _kek(args), create=False)
    servers: list[HttpExchangeServer] = [
        HttpScramServer(ScramAuthenticator(db).exchange, realm=REALM),
        http_psk_server(InChannelPskAuthenticator(db, ccf).exchange, realm=REALM),
    ]
    ctx = tls.server_context(
        present=present,
        verify=tls.CLIENT_CERTIFICATE_NOT_REQUESTED,
        profile=profile,
        alpn=["http/1.1"],
    )
    return ctx, AzfApp(in_channel=servers, capif8=capif8)


def _reload_on_sighup(engine: PolicyEngine, path: str) -> None:
    """Reload the policy on SIGHUP; a broken file is logged and the old policy kept."""
    if not hasattr(signal, "SIGHUP"):  # pragma: no cover - not on Windows
        return

    def reload(signum: int, frame: object) -> None:
        try:
            engine.reload_file(path)
            logging.getLogger("capif8sec.serve").info("policy %s reloaded", path)
        except Capif8secError as exc:
            logging.getLogger("capif8sec.serve").error("policy %s not reloaded: %s", path, exc)
        except Exception as exc:  # never let a reload stop the server; the old policy stays
            logging.getLogger("capif8sec.serve").error(
                "policy %s not reloaded: %s: %s", path, type(exc).__name__, exc
            )

    signal.signal(signal.SIGHUP, reload)


#: accept() errors after which asyncio stops accepting for a second: the process is out of
#: file descriptors (or buffers).
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _LoopErrors:
    """The event loop's exception handler: running out of fds is one WARNING a second at most.

    asyncio logs every failed ``accept()`` at ERROR with a traceback and, up to CPython 3.13
    at least (python/cpython#151615), goes on trying up to ``backlog`` times per wake-up:
    measured, 7,378 tracebacks (3 MB of log) in 4 s when 300 connections met a limit of 128
    fds.  A flood of connections must not turn into a flood of log.  Everything else goes to
    asyncio's default handler.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None
        self._more = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not isinstance(exc, OSError) or exc.errno not in _EXHAUSTED:
            loop.default_exception_handler(context)
            return
        now = self._clock()
        if self._last is not None and now - self._last < 1.0:
            self._more += 1
            return
        more, self._more, self._last = self._more, 0, now
        logging.getLogger("capif8sec.serve").warning(
            "cannot accept connections: %s (%d more times since the last report); "
            "new connections wait in the backlog, accepting resumes within a second",
            exc.strerror or exc,
            more,
        )


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the endpoint until interrupted; 2 on unusable configuration."""
    if not args.handshake_timeout > 0:
        raise UsageError("--handshake-timeout must be a positive number of seconds")
    if args.backlog < 1:
        raise UsageError("--backlog must be at least 1")
    try:
        ctx, app = _build(args)
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except TlsConfigError as exc:
        raise UsageError(str(exc)) from None
    except Capif8secError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        out.write(f"listening on https://{shown}:{port}\n")
        out.flush()

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(_LoopErrors())
        await serve(
            ctx,
            args.host,
            args.port,
            app=app,
            handshake_timeout=args.handshake_timeout,
            on_ready=ready,
            backlog=args.backlog,
        )

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0
