"""A reference AzF endpoint: HTTPS (HTTP/1.1) on asyncio, every connection checked.

This is what ``capif8sec serve`` runs, so the whole path -- TS 33.210 TLS, the post-handshake
check, the ROF authenticators -- can be exercised from outside (openssl, curl, sslyze, load
tests).  HTTP handling is deliberately small: one request per connection, a bounded request head,
``Connection: close``.

How a request's ROF is authenticated depends on the TLS context:

- client certificate required: the certificate authenticator (mutual TLS);
- TLS-level PSK context (Python 3.13): the PSK authenticator;
- client certificate not requested: in-channel, over RFC 7804 headers bound to the channel by
  tls-server-end-point -- ``SCRAM-SHA-256-PLUS`` (password) or ``CAPIF8-PSK`` (in-channel PSK
  proof); an unauthenticated request gets ``401`` with a ``WWW-Authenticate`` per scheme.

Paths:

- ``GET /whoami`` -- 200, JSON: the authenticated identity, the authentication method, TLS
  version and suite.
- with a policy (``capif8sec serve --policy``): ``POST /capif8/v1/authorization-responses`` and
  ``POST /capif8/v1/revocations`` -- a CAPIF-8 message from the authenticated ROF, checked by
  the :class:`~capif8sec.capif8.MessageGuard`: 204, or problem details (400 malformed, 403
  refused with the reason code as ``cause``, 404 unknown ``requestId`` -- only to an ROF the
  policy knows, see :class:`Capif8Endpoint` -- 413 too large).
- the ROF side (an :class:`RofEndpoint`, as in ``capif8sec demo``): ``POST
  /capif8/v1/authorization-requests`` -- the CCF's request, checked against the ROF's
  ``[[ccf]]`` rules; ``200`` with the owner's answer, or problem details.
- anything else -- 404 (405 for a wrong method).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from attrs import frozen

from capif8sec.auth.base import AuthenticatedPeer
from capif8sec.auth.http import HttpExchangeServer
from capif8sec.capif8.guard import MessageGuard, MessageRefused, UnknownRequest
from capif8sec.capif8.messages import (
    MAX_JSON_BYTES,
    MessageError,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)
from capif8sec.integrations._memory import IdleTrimmer
from capif8sec.integrations.aio import DEFAULT_HANDSHAKE_TIMEOUT, start_server
from capif8sec.integrations.httpauth import Authenticated, RequestAuthenticator
from capif8sec.policy.model import Reason
from capif8sec.tls.check import TlsPeer
from capif8sec.tls.context import CapifContext

__all__ = [
    "DEFAULT_BACKLOG",
    "MAX_REQUEST_HEAD",
    "REQUESTS_PATH",
    "REQUEST_TIMEOUT",
    "RESPONSES_PATH",
    "REVOCATIONS_PATH",
    "AzfApp",
    "Capif8Endpoint",
    "Decide",
    "Endpoint",
    "Request",
    "RofEndpoint",
    "parse_request",
    "problem_details",
    "serve",
]

log = logging.getLogger("capif8sec.integrations.azf")

#: Largest request head (request line + headers) accepted, in bytes.
MAX_REQUEST_HEAD = 16 * 1024
#: Most header fields accepted in one request.
MAX_HEADERS = 64
#: Largest request body accepted (a CAPIF-8 message is at most 64 KiB).
MAX_BODY = MAX_JSON_BYTES
#: Seconds a client gets to send its request head after the handshake.
REQUEST_TIMEOUT = 10.0
#: Listen backlog of :func:`serve`.  asyncio's default, 100, is too short for a burst: a SYN
#: beyond a full queue is dropped and the client retries a second later (measured: 500
#: connections at once took 1.1 to 2.2 s to connect with 100, 0.1 to 0.2 s with 1024).
DEFAULT_BACKLOG = 1024


@frozen
class Request:
    """A parsed request head: method, path, and header fields (names lower-cased)."""

    method: str
    path: str
    headers: dict[str, list[str]]

    def header(self, name: str) -> str | None:
        """The single value of a header field (None if absent or repeated)."""
        values = self.headers.get(name.lower(), [])
        return values[0] if len(values) == 1 else None


def parse_request(head: bytes) -> Request | None:
    """Parse an HTTP/1.1 request head; None when it is malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, list[str]] = {}
    fields = 0
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        fields += 1
        # RFC 9110 5.1/5.5: a field name is a token; no control characters in a value (a bare
        # CR or LF inside a line would be read differently by another parser)
        if not sep or _TOKEN.fullmatch(name) is None or fields > MAX_HEADERS:
            return None
        if _CONTROL.search(value) is not None:
            return None
        headers.setdefault(name.lower(), []).append(value.strip(" \t"))
    # One request per connection, and no chunked bodies: a request that frames its body any
    # other way than by one Content-Length is refused (no framing a proxy could read otherwise)
    if "transfer-encoding" in headers or len(headers.get("content-length", ())) > 1:
        return None
    return Request(parts[0], parts[1], headers)


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _json_response(
    status: int,
    reason: str,
    content_type: str,
    payload: bytes,
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in extra)
    head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    return head.encode("latin-1") + payload


def _add_headers(response: bytes, extra: Sequence[tuple[str, str]]) -> bytes:
    """``response`` with ``extra`` header fields after its status line."""
    if not extra:
        return response
    status_line, _, rest = response.partition(b"\r\n")
    fields = "".join(f"{name}: {value}\r\n" for name, value in extra).encode("latin-1")
    return status_line + b"\r\n" + fields + rest


def _response(
    status: int, reason: str, body: dict[str, Any], extra: Sequence[tuple[str, str]] = ()
) -> bytes:
    payload = json.dumps(body, sort_keys=True).encode()
    return _json_response(status, reason, "application/json", payload, extra)


def whoami(peer: AuthenticatedPeer, tls: TlsPeer) -> dict[str, Any]:
    """The body of ``GET /whoami``: no secrets, only what identifies the peer."""
    return {
        "identity": peer.identity,
        "method": str(peer.method),
        "security_method": peer.as_dict()["security_method"],
        "tls_version": tls.version,
        "cipher": tls.cipher,
        "evidence": dict(peer.evidence),
    }


#: The CAPIF-8 paths the reference AzF endpoint serves (POST, application/json).
RESPONSES_PATH = "/capif8/v1/authorization-responses"
REVOCATIONS_PATH = "/capif8/v1/revocations"
#: The CAPIF-8 path an ROF endpoint serves: the CCF's authorization requests.
REQUESTS_PATH = "/capif8/v1/authorization-requests"


_UNKNOWN_REQUEST = str(Reason.UNKNOWN_REQUEST)


class Capif8Endpoint:
    """The CCF side of CAPIF-8: ROFs deliver responses and revocations, checked by the guard.

    A response whose ``requestId`` is not outstanding is refused without being accepted
    (:meth:`~capif8sec.capif8.guard.MessageGuard.refuse_unknown_response`), but only after the
    policy has checked the ROF as far as it can without the request: an ROF with no identity,
    one no rule names, a revoked one, or one no rule allows the method or ``authorize``, gets
    the same ``403`` (same ``cause``) as for an outstanding request, so it cannot tell
    outstanding ``requestId`` values from unknown ones; an ROF that may not act for the owner
    the response names gets ``403`` (``owner-not-allowed`` or ``owner-revoked``); only an ROF
    the policy knows gets ``404``.  Each of these refusals is audited with the ``requestId``.
    Nothing in the body can make a response to an unknown request be accepted.  A response
    that names another owner than the outstanding request it claims to answer is answered
    exactly as one to an unknown ``requestId`` (so an ROF cannot learn which ``requestId``
    values are outstanding for owners it does not serve); what an ROF can still learn is
    whether a request is outstanding for an owner it serves.

    :param guard: the policy guard (its engine's reloads and revocations apply at once).
    :param outstanding: the authorization requests this CCF sent, by ``requestId``; a response
        is checked against the request it answers (R59: no more than was asked).
    """

    def __init__(
        self,
        guard: MessageGuard,
        outstanding: Sequence[ResourceOwnerAuthorizationRequest] = (),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._guard = guard
        self._outstanding = {r.request_id: r for r in outstanding}
        self._clock = clock

    #: The paths this endpoint answers (``POST``).
    paths: ClassVar[frozenset[str]] = frozenset({RESPONSES_PATH, REVOCATIONS_PATH})

    def expect(self, request: ResourceOwnerAuthorizationRequest) -> None:
        """Register a request this CCF sent, so that its response is accepted when it comes."""
        self._outstanding[request.request_id] = request

    def handle(self, path: str, body: bytes, peer: AuthenticatedPeer) -> bytes:
        """The HTTP response to ``POST path`` with ``body`` from the authenticated ``peer``."""

        def act() -> bytes:
            if path == RESPONSES_PATH:
                response = ResourceOwnerAuthorizationResponse.from_json(body)
                original = self._outstanding.get(response.request_id)
                if original is None or original.res_owner_id != response.res_owner_id:
                    # An answer for another owner is answered as if the request were unknown:
                    # otherwise an ROF naming its own owner could tell another owner's
                    # outstanding requestIds (403) from unknown ones (404).
                    try:  # the policy first: an unknown ROF gets its 403, as for any request
                        self._guard.refuse_unknown_response(peer, response, original)
                    except UnknownRequest:  # the same answer whatever the audit records
                        return _problem(
                            404, "Not Found", "unknown requestId", cause=_UNKNOWN_REQUEST
                        )
                self._guard.check_response(peer, response, original, self._clock())
            else:
                self._guard.check_revocation(peer, RevocationNotification.from_json(body))
            return b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"

        return _guarded(act)


#: The resource owner's answer to an authorization request (the ROF's application logic).
Decide = Callable[[ResourceOwnerAuthorizationRequest], ResourceOwnerAuthorizationResponse]


class RofEndpoint:
    """The ROF side of CAPIF-8: the CCF asks for a resource owner's authorization.

    ``POST /capif8/v1/authorization-requests`` from the authenticated CCF ``peer``: the guard
    checks the request (the CCF must be one the ROF accepts, the request must not have
    expired), then ``decide`` gives the owner's answer, which goes back as the ``200``
    response body (``application/json``).

    :param guard: the ROF's policy guard (its ``[[ccf]]`` rules).
    :param decide: the owner's decision on an accepted request.
    """

    paths: ClassVar[frozenset[str]] = frozenset({REQUESTS_PATH})

    def __init__(
        self,
        guard: MessageGuard,
        decide: Decide,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._guard = guard
        self._decide = decide
        self._clock = clock

    def handle(self, path: str, body: bytes, peer: AuthenticatedPeer) -> bytes:
        """The HTTP response to ``POST path`` with ``body`` from the authenticated CCF."""

        def act() -> bytes:
            request = ResourceOwnerAuthorizationRequest.from_json(body)
            self._guard.check_request(peer, request, self._clock())
            answer = self._decide(request)
            if not isinstance(answer, ResourceOwnerAuthorizationResponse) or (
                answer.request_id,
                answer.res_owner_id,
            ) != (request.request_id, request.res_owner_id):
                log.error("decide() did not answer request %s", request.request_id)
                return _problem(500, "Internal Server Error", "no answer for this request")
            return _json_response(200, "OK", "application/json", answer.to_json())

        return _guarded(act)


class Endpoint(Protocol):
    """What :class:`AzfApp` routes CAPIF-8 ``POST`` requests to (a CCF or an ROF endpoint)."""

    @property
    def paths(self) -> frozenset[str]:
        """The paths it serves."""

    def handle(self, path: str, body: bytes, peer: AuthenticatedPeer) -> bytes:
        """The full HTTP response to ``POST path`` from the authenticated ``peer``."""


def _guarded(act: Callable[[], bytes]) -> bytes:
    """Run a message handler; malformed messages and policy refusals become problem details."""
    try:
        return act()
    except MessageError as exc:
        return _problem(
            400,
            "Bad Request",
            "malformed message",
            invalid=[{"param": exc.path or "$", "reason": exc.problem}],
        )
    except MessageRefused as exc:
        return _problem(403, "Forbidden", "refused by policy", cause=str(exc.reason))


def problem_details(
    status: int,
    title: str,
    detail: str,
    *,
    cause: str | None = None,
    invalid: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem details object (``application/problem+json``), with the TS 29.571
    ``cause`` and ``invalidParams`` members where given."""
    body: dict[str, Any] = {"status": status, "title": title, "detail": detail}
    if cause is not None:
        body["cause"] = cause
    if invalid is not None:
        body["invalidParams"] = invalid
    return body


def _problem(
    status: int,
    title: str,
    detail: str,
    *,
    cause: str | None = None,
    invalid: list[dict[str, str]] | None = None,
) -> bytes:
    body = problem_details(status, title, detail, cause=cause, invalid=invalid)
    payload = json.dumps(body, sort_keys=True).encode()
    return _json_response(status, title, "application/problem+json", payload)


class AzfApp:
    """The request logic of the reference AzF endpoint (no sockets: see :func:`serve`).

    :param in_channel: RFC 7804-style servers (SCRAM, in-channel PSK) used on connections where
        no client credential was part of the TLS handshake.
    :param capif8: the CAPIF-8 endpoint its ``POST`` paths go to: a :class:`Capif8Endpoint`
        (CCF side) or a :class:`RofEndpoint` (ROF side).
    """

    def __init__(
        self,
        *,
        in_channel: Sequence[HttpExchangeServer] = (),
        capif8: Endpoint | None = None,
    ) -> None:
        self._auth = RequestAuthenticator(in_channel=in_channel)
        self._capif8 = capif8

    def respond(self, request: Request | None, tls: TlsPeer, body: bytes = b"") -> bytes:
        """The full HTTP response to one request on a checked connection."""
        if request is None:
            return _response(400, "Bad Request", {"error": "malformed request"})
        capif8 = self._capif8 is not None and request.path in self._capif8.paths
        if request.path != "/whoami" and not capif8:
            return _response(404, "Not Found", {"error": "no such path"})
        if request.method != ("POST" if capif8 else "GET"):
            return _response(405, "Method Not Allowed", {"error": "wrong method"})
        outcome = self._auth.authenticate(tls, request.header("authorization"))
        if not isinstance(outcome, Authenticated):
            challenges = [("WWW-Authenticate", c) for c in outcome.challenges]
            return _response(401, "Unauthorized", {"error": outcome.detail}, challenges)
        peer = outcome.peer
        extra: list[tuple[str, str]] = []
        if outcome.authentication_info is not None:
            extra.append(("Authentication-Info", outcome.authentication_info))
        log.info("authenticated %s by %s", peer.identity, peer.method)
        if capif8 and self._capif8 is not None:
            # the in-channel server's proof (Authentication-Info) goes with every answer
            return _add_headers(self._capif8.handle(request.path, body, peer), extra)
        return _response(200, "OK", whoami(peer, tls), extra)


async def _handle(
    app: AzfApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: TlsPeer
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return
    request = parse_request(head)
    body = b""
    length = request.header("content-length") if request is not None else None
    if length is not None:
        # ASCII digits only ("²".isdigit() is true), and short enough for int() to be cheap
        if not (length.isascii() and length.isdigit() and len(length) <= 9):
            writer.write(_problem(400, "Bad Request", "malformed Content-Length"))
            return
        if int(length) > MAX_BODY:
            writer.write(_problem(413, "Content Too Large", f"at most {MAX_BODY} bytes"))
            return
        try:
            body = await asyncio.wait_for(reader.readexactly(int(length)), REQUEST_TIMEOUT)
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            return
    try:
        response = app.respond(request, tls, body)
    except Exception:  # an application bug: answer 500, log it, say nothing more to the peer
        log.exception("error while answering a request")
        response = _problem(500, "Internal Server Error", "internal error")
    writer.write(response)
    with contextlib.suppress(OSError, ConnectionError):
        await writer.drain()


async def serve(
    context: CapifContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    app: AzfApp | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    backlog: int = DEFAULT_BACKLOG,
) -> None:
    """Serve until ``stop`` is set (or forever).  ``on_ready(host, port)`` runs once listening.

    ``backlog``: connections the kernel completes and queues before they are accepted.
    Once no connection has been served for a second after a burst, the heap pages the burst
    freed are handed back to the OS (glibc's ``malloc_trim``; at most every 10 s), so the
    resident memory does not stay at the burst's high-water mark.
    """
    the_app = app or AzfApp()
    trimmer = IdleTrimmer()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, tls: TlsPeer) -> None:
        trimmer.enter()
        try:
            await _handle(the_app, r, w, tls)
        finally:
            trimmer.leave()

    server = await start_server(
        handler,
        host,
        port,
        ssl=context,
        handshake_timeout=handshake_timeout,
        limit=MAX_REQUEST_HEAD,
        backlog=backlog,
    )
    sockname = server.sockets[0].getsockname()
    if on_ready is not None:
        on_ready(sockname[0], sockname[1])
    async with server:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()
