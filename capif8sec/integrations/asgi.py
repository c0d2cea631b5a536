"""ASGI middleware: the authenticated ROF (or CCF) of every request, policy, problem details.

Framework-free (plain ASGI 3), so it wraps a Starlette, FastAPI, Quart or hand-written app::

    app = Capif8secMiddleware(my_app, in_channel=[scram_server], endpoints=[ccf_endpoint])

For each ``http`` request it

1. finds what the post-handshake check established about the connection
   (:class:`~capif8sec.tls.TlsPeer`): from the checked handshake
   (:func:`~capif8sec.integrations.handshake.connection_peer`, set when the server runs with a
   context prepared by :func:`~capif8sec.integrations.handshake.check_during_handshake`, as
   :mod:`capif8sec.integrations.uvicorn` and :mod:`capif8sec.integrations.hypercorn` do), else
   from the ASGI ``tls`` scope extension, checked here against ``context``
   (:func:`tls_peer_from_extension`).  Neither uvicorn 0.54 nor hypercorn 0.18 provides that
   extension; a request with neither source is answered ``500`` and never reaches the app;
2. authenticates the peer (:class:`~capif8sec.integrations.httpauth.RequestAuthenticator`):
   client certificate, TLS-level PSK, or in-channel SCRAM-SHA-256-PLUS / CAPIF8-PSK over RFC
   7804 headers; ``401`` with ``WWW-Authenticate`` challenges when it is not;
3. ``POST`` to a path of one of the ``endpoints`` (the CAPIF-8 endpoints of
   :mod:`capif8sec.integrations.azf`: :class:`~capif8sec.integrations.azf.Capif8Endpoint` on a
   CCF, :class:`~capif8sec.integrations.azf.RofEndpoint` on an ROF): the body (at most
   :data:`~capif8sec.integrations.azf.MAX_BODY` bytes) goes to the endpoint, whose
   :class:`~capif8sec.capif8.MessageGuard` checks it against the policy -- ``403`` with the
   reason code as ``cause`` when refused; the endpoint answers, the app never sees the request;
4. anything else goes to the app, with the peer in the scope: ``scope["extensions"]["capif8sec"]``
   (``{"peer": AuthenticatedPeer, "tls_peer": TlsPeer}``) and ``scope["state"]["capif8sec_peer"]``
   (Starlette: ``request.state.capif8sec_peer``); :func:`authenticated_peer` reads it.

Every refusal is RFC 9457 problem details (``application/problem+json``).  Fail closed: an error
in any of these steps is a ``500`` problem, never a request passed on unauthenticated.
WebSocket connections are refused (close code 1008): CAPIF-8 is plain HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.auth.certificate import CertificateAuthenticator
from capif8sec.auth.http import HttpExchangeServer
from capif8sec.errors import Capif8secError, HandshakeRejected, TlsConfigError, UsageError
from capif8sec.integrations.azf import MAX_BODY, Endpoint, problem_details
from capif8sec.integrations.handshake import connection_peer
from capif8sec.integrations.httpauth import Authenticated, RequestAuthenticator
from capif8sec.tls.binding import TLS_SERVER_END_POINT, ChannelBinding, tls_server_end_point_cached
from capif8sec.tls.check import TlsPeer
from capif8sec.tls.context import CapifContext

__all__ = [
    "EXTENSION",
    "STATE_KEY",
    "ASGIApp",
    "Capif8secMiddleware",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "authenticated_peer",
    "tls_peer_from_extension",
]

log = logging.getLogger("capif8sec.integrations.asgi")

#: An ASGI connection scope (the same shapes as Starlette's ``starlette.types``).
Scope = MutableMapping[str, Any]
#: An ASGI event message.
Message = MutableMapping[str, Any]
#: The ASGI ``receive`` callable.
Receive = Callable[[], Awaitable[Message]]
#: The ASGI ``send`` callable.
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The key of ``scope["extensions"]`` the middleware fills: ``{"peer": ..., "tls_peer": ...}``.
EXTENSION = "capif8sec"
#: The key of ``scope["state"]`` holding the :class:`~capif8sec.auth.AuthenticatedPeer`.
STATE_KEY = "capif8sec_peer"

#: The ASGI TLS extension's ``tls_version`` values the TS 33.210 profile can allow.
_TLS_VERSIONS = {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
#: IANA cipher suite numbers -> OpenSSL names, for the suites the profile can allow.
_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0x009E: "DHE-RSA-AES128-GCM-SHA256",
}


def authenticated_peer(scope: Mapping[str, Any]) -> AuthenticatedPeer:
    """The peer the middleware authenticated for this request.

    :raises UsageError: the request did not come through :class:`Capif8secMiddleware`.
    """
    found = (scope.get("extensions") or {}).get(EXTENSION, {}).get("peer")
    if not isinstance(found, AuthenticatedPeer):
        raise UsageError("no authenticated peer: wrap the app in Capif8secMiddleware")
    return found


def tls_peer_from_extension(
    tls: Mapping[str, Any], context: CapifContext, *, at: Any = None
) -> TlsPeer:
    """The post-handshake check, from what a server put in the ASGI ``tls`` scope extension.

    For servers that expose the connection only through that extension (ASGI TLS extension
    0.2): the negotiated version and suite must belong to ``context``'s profile, and the client
    chain (``client_cert_chain``, leaf first) is path-validated from ``context``'s trust
    anchors, with its CRLs and the TS 33.310 client profile.  ``server_cert`` (or, when the
    server leaves it out, the certificate ``context`` presents) gives the channel binding.

    :param context: the server context the server was configured with (its trust anchors,
        CRLs and profile are the ones applied).
    :raises HandshakeRejected: the connection does not satisfy the profile.
    """
    settings = context.settings
    if settings.side != "server" or settings.mode != "certificate":
        raise TlsConfigError("the tls extension is checked against a certificate server context")
    try:
        version = _TLS_VERSIONS.get(tls.get("tls_version"))  # type: ignore[arg-type]
        cipher = _SUITES.get(tls.get("cipher_suite"))  # type: ignore[arg-type]
        if version is None or cipher is None or not settings.profile.allows(version, cipher):
            raise HandshakeRejected(
                f"negotiated {tls.get('tls_version')!r} with {tls.get('cipher_suite')!r}, "
                f"outside the {settings.profile.name} profile"
            )
        if tls.get("client_cert_error") is not None:
            raise HandshakeRejected("the server reports a client certificate error")
        server_pem = tls.get("server_cert")
        end_point = settings.own_end_point
        if server_pem:
            der = x509.load_pem_x509_certificate(str(server_pem).encode("ascii")).public_bytes(
                serialization.Encoding.DER
            )
            end_point = tls_server_end_point_cached(der)
        binding = ChannelBinding(TLS_SERVER_END_POINT, end_point) if end_point else None
        if settings.validator is None:  # client certificates not requested
            return TlsPeer(
                "server", version, cipher, "none", None, None, None, None, channel_binding=binding
            )
        chain = [str(pem) for pem in tls.get("client_cert_chain") or ()]
        if not chain:
            raise HandshakeRejected(
                "no certificate authentication happened: the peer presented no certificate"
            )
        verified = settings.validator.verify(chain[0], chain[1:], role="client", at=at)
    except HandshakeRejected:
        raise
    except Capif8secError as exc:
        raise HandshakeRejected(f"peer refused: {exc}") from exc
    except Exception as exc:  # malformed extension values: fail closed
        raise HandshakeRejected(
            f"the tls extension cannot be checked: {type(exc).__name__}"
        ) from exc
    return TlsPeer(
        "server",
        version,
        cipher,
        "certificate",
        verified.identities,
        verified,
        None,
        None,
        channel_binding=binding,
    )


class _Refused(Exception):
    """Answer with problem details (internal control flow of the middleware)."""

    def __init__(self, status: int, title: str, detail: str, headers: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.challenges = tuple(headers)


async def _send_problem(send: Send, refused: _Refused) -> None:
    payload = json.dumps(
        problem_details(refused.status, refused.title, refused.detail), sort_keys=True
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(payload)).encode("ascii")),
    ]
    headers += [(b"www-authenticate", c.encode("latin-1")) for c in refused.challenges]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _split_response(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """An endpoint's HTTP/1.1 response (as :mod:`~capif8sec.integrations.azf` builds it) as
    ASGI status, headers and body; hop-by-hop ``Connection`` dropped."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() != b"connection":
            headers.append((name.strip().lower(), value.strip()))
    return status, headers, body


def _header(scope: Scope, name: bytes) -> str | None:
    """The single value of a request header (None if absent or repeated)."""
    values = [v for k, v in scope.get("headers", ()) if k.lower() == name]
    return values[0].decode("latin-1") if len(values) == 1 else None


class Capif8secMiddleware:
    """Authenticate every request, check CAPIF-8 messages by policy, refuse with problem details.

    :param app: the ASGI application the authenticated requests go to.
    :param in_channel: RFC 7804-style servers (:class:`~capif8sec.auth.http.HttpScramServer`,
        :func:`~capif8sec.auth.http.http_psk_server`) for connections without a client
        certificate or TLS-level PSK.
    :param endpoints: CAPIF-8 endpoints (``paths`` + ``handle``) that answer ``POST`` to their
        paths after their guard checked the message.
    :param context: the server's capif8sec context; needed only to check the ASGI ``tls``
        extension of a server that provides one.
    :param certificate: the certificate authenticator (default: SAN identities only, R57).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        in_channel: Sequence[HttpExchangeServer] = (),
        endpoints: Sequence[Endpoint] = (),
        context: CapifContext | None = None,
        certificate: CertificateAuthenticator | None = None,
    ) -> None:
        self.app = app
        self._auth = RequestAuthenticator(in_channel=in_channel, certificate=certificate)
        self._endpoints = tuple(endpoints)
        self._context = context

    def __repr__(self) -> str:
        return f"<Capif8secMiddleware endpoints={len(self._endpoints)} {self._auth!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            tls = self._tls_peer(scope)
            outcome = self._auth.authenticate(tls, _header(scope, b"authorization"))
            if not isinstance(outcome, Authenticated):
                status = "continue" if outcome.detail == "continue" else "refused"
                log.info("401 (%s) for %r %r", status, scope.get("method"), scope.get("path"))
                raise _Refused(401, "Unauthorized", outcome.detail, outcome.challenges)
            log.info("authenticated %s by %s", outcome.peer.identity, outcome.peer.method)
            extra = []
            if outcome.authentication_info is not None:
                extra.append(
                    (b"authentication-info", outcome.authentication_info.encode("latin-1"))
                )
            endpoint = next((e for e in self._endpoints if scope.get("path") in e.paths), None)
            if endpoint is not None:
                await self._endpoint(endpoint, scope, receive, send, outcome.peer, extra)
                return
            inner = self._with_peer(scope, tls, outcome.peer)
        except _Refused as refused:
            await _send_problem(send, refused)
            return
        except Exception as exc:  # fail closed: never pass a request on unauthenticated
            log.error("request refused: %s: %s", type(exc).__name__, exc)
            await _send_problem(send, _Refused(500, "Internal Server Error", "internal error"))
            return
        await self.app(inner, receive, self._adding(send, extra))

    def _tls_peer(self, scope: Scope) -> TlsPeer:
        peer = connection_peer()
        # a request that did not come over TLS never takes a checked peer from the context
        if peer is not None and peer.side == "server" and scope.get("scheme") == "https":
            return peer
        tls = (scope.get("extensions") or {}).get("tls")
        if tls is not None and self._context is not None:
            try:
                return tls_peer_from_extension(tls, self._context)
            except HandshakeRejected as exc:
                log.info("connection refused by the check of the tls extension: %s", exc)
                raise _Refused(403, "Forbidden", "the TLS connection was refused") from None
        log.error(
            "no checked TLS connection for this request: serve the app with "
            "capif8sec.integrations.uvicorn/hypercorn (or a server context prepared by "
            "check_during_handshake), or pass context= for a server with the ASGI tls extension"
        )
        raise _Refused(500, "Internal Server Error", "no checked TLS connection")

    @staticmethod
    def _with_peer(scope: Scope, tls: TlsPeer, peer: AuthenticatedPeer) -> Scope:
        inner = dict(scope)
        extensions = dict(scope.get("extensions") or {})
        extensions[EXTENSION] = {"peer": peer, "tls_peer": tls}
        inner["extensions"] = extensions
        state = dict(scope.get("state") or {})
        state[STATE_KEY] = peer
        inner["state"] = state
        return inner

    @staticmethod
    def _adding(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
        if not extra:
            return send

        async def wrapped(message: Message) -> None:
            if message.get("type") == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return wrapped

    async def _endpoint(
        self,
        endpoint: Endpoint,
        scope: Scope,
        receive: Receive,
        send: Send,
        peer: AuthenticatedPeer,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        if scope.get("method") != "POST":
            raise _Refused(405, "Method Not Allowed", "CAPIF-8 messages are POSTed")
        length = _header(scope, b"content-length")
        if length is not None and not (length.isascii() and length.isdigit() and len(length) < 10):
            raise _Refused(400, "Bad Request", "malformed Content-Length")
        if length is not None and int(length) > MAX_BODY:
            raise _Refused(413, "Content Too Large", f"at most {MAX_BODY} bytes")
        body = bytearray()
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                raise _Refused(413, "Content Too Large", f"at most {MAX_BODY} bytes")
            if not message.get("more_body", False):
                break
        status, headers, payload = _split_response(
            endpoint.handle(scope["path"], bytes(body), peer)
        )
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": payload})
