"""SCRAM over HTTP authentication headers (RFC 7804), sans-I/O: header strings in and out.

The exchange takes two round trips; the server keeps the half-finished SCRAM exchange between
them under a session id (``sid``)::

    C: GET /...                                  (no credentials)
    S: 401  WWW-Authenticate: SCRAM-SHA-256-PLUS realm="capif8"
    C:      Authorization: SCRAM-SHA-256-PLUS realm="capif8", data=<base64 client-first>
    S: 401  WWW-Authenticate: SCRAM-SHA-256-PLUS sid=<sid>, data=<base64 server-first>
    C:      Authorization: SCRAM-SHA-256-PLUS sid=<sid>, data=<base64 client-final>
    S: 200  Authentication-Info: sid=<sid>, data=<base64 server-final>

:class:`HttpScramServer` builds the challenges, parses ``Authorization`` and produces
``Authentication-Info``; its table of pending exchanges is bounded in size and age (an
attacker opening exchanges evicts the oldest, never grows memory).  Plain ``SCRAM-SHA-256``
is accepted only when the channel binding passed in is
:data:`~capif8sec.auth.scram.ALLOW_PLAIN_SCRAM` (R52).  :class:`HttpScramClient` is the ROF
side.  Parsing is strict and bounded (:data:`MAX_HEADER_CHARS`); anything malformed raises
:class:`~capif8sec.errors.AuthenticationFailed`.

Channel binding: every request passes the binding of the TLS connection it arrived on; the
second request must arrive with the same binding as the first (with tls-server-end-point:
through the same server certificate).  Not implemented from RFC 7804: the ``ttl`` re-use of a
successful exchange and the ``sr`` re-authentication shortcut -- every login is a full SCRAM
exchange.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from attrs import frozen

from capif8sec.auth.base import AuthenticatedPeer, Exchange
from capif8sec.auth.inchannel import InChannelPskClient
from capif8sec.auth.scram import (
    ALLOW_PLAIN_SCRAM,
    MAX_MESSAGE_BYTES,
    MECHANISM,
    MECHANISM_PLUS,
    AllowPlainScram,
    ChannelBinding,
    ScramClient,
    ScramServer,
)
from capif8sec.errors import AuthenticationFailed, UsageError

__all__ = [
    "MAX_HEADER_CHARS",
    "PSK_SCHEME",
    "HttpAuthenticated",
    "HttpChallenge",
    "HttpExchangeServer",
    "HttpPskClient",
    "HttpScramClient",
    "HttpScramServer",
    "http_psk_server",
    "parse_auth_params",
    "parse_challenges",
    "parse_credentials",
]

#: The longest header value parsed (a SCRAM client-final in base64 is about 200 characters).
MAX_HEADER_CHARS: Final = 4096
#: The most auth-params one credentials/challenge list may carry.
MAX_PARAMS: Final = 16

_FAILED: Final = "authentication failed"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: RFC 7804 sends base64 unquoted (``=`` and ``/`` are not tchars): accept them in values.
_BARE_VALUE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z/=]+")
_QUOTED = re.compile(r'"((?:[\t !#-\[\]-~]|\\[\t !-~])*)"')
_OWS = re.compile(r"[ \t]*")
_SID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_REALM = re.compile(r"[ !#-\[\]-~]{1,256}")
_SPACES = re.compile(r"[ \t]+")
_TOKEN68 = re.compile(r"([A-Za-z0-9\-._~+/]+=*)[ \t]*(?=,|$)")


def _fail() -> AuthenticationFailed:
    return AuthenticationFailed(_FAILED)


# --------------------------------------------------------------------------- header grammar


class _Scanner:
    """A bounded cursor over one header value (RFC 9110 section 11 grammar)."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise UsageError("header values are str")
        if len(text) > MAX_HEADER_CHARS or not text.isascii():
            raise _fail()
        self.text = text
        self.pos = 0

    def ows(self) -> None:
        match = _OWS.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group(0)

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _fail()
        self.pos += 1

    def value(self) -> str:
        if self.peek() == '"':
            match = _QUOTED.match(self.text, self.pos)
            if match is None:
                raise _fail()
            self.pos = match.end()
            return re.sub(r"\\(.)", r"\1", match.group(1))
        bare = self.take(_BARE_VALUE)
        if bare is None:
            raise _fail()
        return bare


def _param(scan: _Scanner, params: dict[str, str]) -> None:
    name = scan.take(_TOKEN)
    if name is None:
        raise _fail()
    scan.ows()
    scan.expect("=")
    scan.ows()
    key = name.lower()
    if key in params or len(params) >= MAX_PARAMS:
        raise _fail()
    params[key] = scan.value()


def _params_until_end(scan: _Scanner) -> dict[str, str]:
    params: dict[str, str] = {}
    scan.ows()
    while not scan.at_end():
        _param(scan, params)
        scan.ows()
        if scan.at_end():
            break
        scan.expect(",")
        scan.ows()
    return params


def parse_credentials(value: str) -> tuple[str, dict[str, str]]:
    """Parse an ``Authorization`` value: ``scheme param=value, ...`` -> (scheme, params).

    Parameter names are lower-cased; duplicates, token68 forms and anything outside the
    RFC 9110 grammar (plus unquoted base64, as RFC 7804 sends it) are refused.

    :raises AuthenticationFailed: malformed or longer than :data:`MAX_HEADER_CHARS`.
    """
    scan = _Scanner(value)
    scan.ows()
    scheme = scan.take(_TOKEN)
    if scheme is None:
        raise _fail()
    if not scan.at_end() and scan.peek() not in " \t":
        raise _fail()
    return scheme, _params_until_end(scan)


def parse_auth_params(value: str) -> dict[str, str]:
    """Parse a bare ``#auth-param`` list (``Authentication-Info``).

    :raises AuthenticationFailed: malformed or too long.
    """
    return _params_until_end(_Scanner(value))


def parse_challenges(value: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a ``WWW-Authenticate`` value (one or more challenges, joined by commas).

    Join several header lines with ``", "`` first.  Challenges of other schemes are returned
    too; a token68 challenge (``Basic abc==``-style) is returned with its token under ``""``.

    :raises AuthenticationFailed: malformed or too long.
    """
    scan = _Scanner(value)
    out: list[tuple[str, dict[str, str]]] = []
    scan.ows()
    while not scan.at_end():
        if len(out) >= MAX_PARAMS:
            raise _fail()
        scheme = scan.take(_TOKEN)
        if scheme is None:
            raise _fail()
        params: dict[str, str] = {}
        out.append((scheme, params))
        if scan.take(_SPACES) is not None and not scan.at_end() and scan.peek() != ",":
            token68 = _TOKEN68.match(scan.text, scan.pos)
            if token68 is not None:
                params[""] = token68.group(1)
                scan.pos = token68.end()
            else:
                _challenge_params(scan, params)
        scan.ows()
        if scan.at_end():
            break
        scan.expect(",")
        scan.ows()
    return out


def _challenge_params(scan: _Scanner, params: dict[str, str]) -> None:
    """Parameters up to the next ``token SP`` that is not ``token =`` (the next challenge)."""
    while True:
        _param(scan, params)
        scan.ows()
        if scan.at_end() or scan.peek() != ",":
            return
        after = scan.pos
        scan.pos += 1
        scan.ows()
        name = scan.take(_TOKEN)
        scan.ows()
        is_param = name is not None and scan.peek() == "="
        scan.pos = after
        if not is_param:
            return
        scan.expect(",")
        scan.ows()


def _data(params: dict[str, str]) -> bytes:
    text = params.get("data")
    if text is None:
        raise _fail()
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise _fail() from None
    if not raw or len(raw) > MAX_MESSAGE_BYTES or base64.b64encode(raw).decode() != text:
        raise _fail()
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _mechanism(binding: ChannelBinding | AllowPlainScram) -> str:
    if binding is ALLOW_PLAIN_SCRAM:
        return MECHANISM
    if not isinstance(binding, ChannelBinding):
        raise UsageError("channel_binding must be a ChannelBinding or ALLOW_PLAIN_SCRAM")
    return MECHANISM_PLUS


def _same_binding(a: ChannelBinding | AllowPlainScram, b: ChannelBinding | AllowPlainScram) -> bool:
    if a is ALLOW_PLAIN_SCRAM or b is ALLOW_PLAIN_SCRAM:
        return a is b
    assert isinstance(a, ChannelBinding) and isinstance(b, ChannelBinding)
    return a.type == b.type and hmac.compare_digest(a.data, b.data)


# --------------------------------------------------------------------------- server


@frozen
class HttpChallenge:
    """Answer 401 with this ``WWW-Authenticate`` value (the exchange continues)."""

    www_authenticate: str


@frozen
class HttpAuthenticated:
    """The ROF authenticated: serve the request, adding this ``Authentication-Info`` value."""

    peer: AuthenticatedPeer
    authentication_info: str


@frozen
class _Pending:
    exchange: Exchange
    binding: ChannelBinding | AllowPlainScram
    scheme: str
    started: float


class HttpExchangeServer:
    """The server side of an RFC 7804-style two-round-trip exchange, for one realm.

    Exchange-agnostic: ``new_exchange(binding)`` makes a fresh sans-I/O
    :class:`~capif8sec.auth.Exchange` (SCRAM, the in-channel PSK proof, ...), and ``scheme``
    names the HTTP authentication scheme for a binding.  Thread-safe; half-finished exchanges
    are kept in a bounded table keyed by a random ``sid``, single use, expiring.

    :param max_pending: the most half-finished exchanges kept; beyond it the oldest is dropped.
    :param max_age: seconds a half-finished exchange is kept.
    :param clock: monotonic seconds (tests).

    On :class:`~capif8sec.errors.AuthenticationFailed` answer 401 with :meth:`challenge` again
    (or 403); never say what failed.
    """

    def __init__(
        self,
        new_exchange: Callable[[ChannelBinding | AllowPlainScram], Exchange],
        *,
        scheme: Callable[[ChannelBinding | AllowPlainScram], str],
        realm: str,
        max_pending: int = 1024,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(realm, str) or _REALM.fullmatch(realm) is None:
            raise UsageError("realm: 1 to 256 printable ASCII characters, without '\"' or '\\'")
        if max_pending < 1 or max_age <= 0:
            raise UsageError("max_pending and max_age must be positive")
        self._new = new_exchange
        self._scheme = scheme
        self._realm = realm
        self._max_pending = max_pending
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} realm={self._realm!r} pending={len(self._pending)}>"

    @property
    def pending(self) -> int:
        """How many half-finished exchanges are held now."""
        with self._lock:
            return len(self._pending)

    def scheme(self, channel_binding: ChannelBinding | AllowPlainScram) -> str:
        """The authentication scheme name used on a connection with this binding."""
        return self._scheme(channel_binding)

    def challenge(self, channel_binding: ChannelBinding | AllowPlainScram) -> str:
        """The initial ``WWW-Authenticate`` value for a request on this connection."""
        return f'{self._scheme(channel_binding)} realm="{self._realm}"'

    def handle(
        self, authorization: str, channel_binding: ChannelBinding | AllowPlainScram
    ) -> HttpChallenge | HttpAuthenticated:
        """Process an ``Authorization`` value received on a connection with ``channel_binding``.

        :raises AuthenticationFailed: malformed header, wrong scheme or realm, unknown or
            expired ``sid``, a binding different from the first request's, or a failed
            exchange step -- all with the same message.
        """
        scheme = self._scheme(channel_binding)
        name, params = parse_credentials(authorization)
        if name.upper() != scheme.upper():
            raise _fail()
        realm = params.get("realm")
        if realm is not None and realm != self._realm:
            raise _fail()
        data = _data(params)
        sid = params.get("sid")
        if sid is None:
            return self._first(data, channel_binding, scheme)
        return self._final(sid, data, channel_binding, scheme)

    def _accepts(self, exchange: Exchange, scheme: str) -> bool:
        """Whether a started exchange agrees with the scheme it came under (hook)."""
        return True

    def _first(
        self, data: bytes, binding: ChannelBinding | AllowPlainScram, scheme: str
    ) -> HttpChallenge:
        exchange = self._new(binding)
        reply = exchange.receive(data)
        if reply is None or not self._accepts(exchange, scheme):
            raise _fail()
        sid = secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            self._expire(now)
            while len(self._pending) >= self._max_pending:
                self._pending.popitem(last=False)
            self._pending[sid] = _Pending(exchange, binding, scheme, now)
        return HttpChallenge(f"{scheme} sid={sid}, data={_b64(reply)}")

    def _final(
        self, sid: str, data: bytes, binding: ChannelBinding | AllowPlainScram, scheme: str
    ) -> HttpAuthenticated:
        if _SID.fullmatch(sid) is None:
            raise _fail()
        now = self._clock()
        with self._lock:
            self._expire(now)
            pending = self._pending.pop(sid, None)  # single use, success or not
        if pending is None or pending.scheme != scheme:
            raise _fail()
        if not _same_binding(pending.binding, binding):
            raise _fail()
        reply = pending.exchange.receive(data)
        if reply is None or not pending.exchange.complete:
            raise _fail()
        return HttpAuthenticated(pending.exchange.result(), f"sid={sid}, data={_b64(reply)}")

    def _expire(self, now: float) -> None:
        while self._pending:
            sid, oldest = next(iter(self._pending.items()))
            if now - oldest.started < self._max_age:
                break
            del self._pending[sid]


class HttpScramServer(HttpExchangeServer):
    """RFC 7804 SCRAM-SHA-256(-PLUS) authentication for one realm.  Thread-safe.

    :param new_exchange: makes a fresh :class:`~capif8sec.auth.scram.ScramServer` for a
        channel binding, e.g. :meth:`ScramAuthenticator.exchange
        <capif8sec.auth.scram.ScramAuthenticator.exchange>`.
    :param realm: the protection space named in challenges (printable ASCII, no ``"``/``\\``).
    """

    def __init__(
        self,
        new_exchange: Callable[[ChannelBinding | AllowPlainScram], ScramServer],
        *,
        realm: str,
        max_pending: int = 1024,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            new_exchange,
            scheme=_mechanism,
            realm=realm,
            max_pending=max_pending,
            max_age=max_age,
            clock=clock,
        )

    def _accepts(self, exchange: Exchange, scheme: str) -> bool:
        return isinstance(exchange, ScramServer) and exchange.mechanism == scheme


#: The HTTP scheme of the in-channel PSK proof (capif8sec.auth.inchannel) over RFC 7804 framing.
PSK_SCHEME: Final = "CAPIF8-PSK"


def http_psk_server(
    new_exchange: Callable[[ChannelBinding], Exchange], *, realm: str, **kwargs: Any
) -> HttpExchangeServer:
    """The in-channel PSK proof over RFC 7804-style headers (scheme ``CAPIF8-PSK``).

    Only on channels whose server presented a certificate (a tls-server-end-point binding).
    """

    def make(binding: ChannelBinding | AllowPlainScram) -> Exchange:
        if not isinstance(binding, ChannelBinding):
            raise _fail()
        return new_exchange(binding)

    return HttpExchangeServer(make, scheme=lambda _: PSK_SCHEME, realm=realm, **kwargs)


# --------------------------------------------------------------------------- client


class HttpScramClient:
    """The ROF side of RFC 7804 SCRAM authentication, around a :class:`ScramClient`.

    ``first(www_authenticate)`` -> ``Authorization`` for the retry; ``final(www_authenticate)``
    (the 401 carrying ``sid`` and ``data``) -> ``Authorization``; ``verify(authentication_info)``
    checks the server's signature.  A server that does not offer the client's mechanism is
    refused: the client never downgrades itself.
    """

    def __init__(self, client: ScramClient, *, realm: str | None = None) -> None:
        if not isinstance(client, ScramClient):
            raise UsageError("HttpScramClient wraps a ScramClient")
        self._client = client
        self._realm = realm
        self._sid: str | None = None

    def __repr__(self) -> str:
        return f"<HttpScramClient {self._client.mechanism}>"

    def _find(self, www_authenticate: str) -> dict[str, str]:
        for scheme, params in parse_challenges(www_authenticate):
            if scheme.upper() == self._client.mechanism:
                return params
        raise AuthenticationFailed(f"the server does not offer {self._client.mechanism}")

    def first(self, www_authenticate: str | None = None) -> str:
        """The first ``Authorization`` value (checks the server's challenge when given)."""
        realm = self._realm
        if www_authenticate is not None:
            params = self._find(www_authenticate)
            offered = params.get("realm")
            if realm is None:
                realm = offered
            elif offered is not None and offered != realm:
                raise AuthenticationFailed("the server's realm is not the expected one")
        data = _b64(self._client.first())
        if realm is not None:
            if _REALM.fullmatch(realm) is None:
                raise _fail()
            return f'{self._client.mechanism} realm="{realm}", data={data}'
        return f"{self._client.mechanism} data={data}"

    def final(self, www_authenticate: str) -> str:
        """The second ``Authorization`` value, answering the server-first challenge."""
        params = self._find(www_authenticate)
        sid = params.get("sid")
        if sid is None or _SID.fullmatch(sid) is None:
            raise _fail()
        self._sid = sid
        data = _b64(self._client.final(_data(params)))
        return f"{self._client.mechanism} sid={sid}, data={data}"

    def verify(self, authentication_info: str) -> None:
        """Check the server-final in ``Authentication-Info`` (mutual authentication).

        :raises AuthenticationFailed: malformed, another ``sid``, or a wrong server signature.
        """
        params = parse_auth_params(authentication_info)
        sid = params.get("sid")
        if self._sid is None or sid is None or not hmac.compare_digest(sid, self._sid):
            raise _fail()
        self._client.verify(_data(params))


class HttpPskClient:
    """The ROF side of the in-channel PSK proof over RFC 7804-style headers (``CAPIF8-PSK``)."""

    def __init__(self, client: InChannelPskClient) -> None:
        self._client = client
        self._sid: str | None = None

    def __repr__(self) -> str:
        return "<HttpPskClient>"

    def first(self) -> str:
        """The first ``Authorization`` value."""
        return f"{PSK_SCHEME} data={_b64(self._client.first())}"

    def final(self, www_authenticate: str) -> str:
        """The second ``Authorization`` value, answering the server's challenge."""
        for scheme, params in parse_challenges(www_authenticate):
            if scheme.upper() == PSK_SCHEME:
                sid = params.get("sid")
                if sid is None or _SID.fullmatch(sid) is None:
                    raise _fail()
                self._sid = sid
                return f"{PSK_SCHEME} sid={sid}, data={_b64(self._client.final(_data(params)))}"
        raise _fail()

    def verify(self, authentication_info: str) -> None:
        """Check the server's proof in ``Authentication-Info``."""
        params = parse_auth_params(authentication_info)
        sid = params.get("sid")
        if self._sid is None or sid is None or not hmac.compare_digest(sid, self._sid):
            raise _fail()
        self._client.verify(_data(params))
