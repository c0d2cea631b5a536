"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677): the ROF password authenticator.

The ROF proves a password inside a TLS channel where the CCF/AzF was authenticated by its
certificate (R52); the password never becomes a TLS PSK (R51).  Both sides are sans-I/O state
machines (bytes in, bytes out), so the same code runs over a raw TLS stream or inside HTTP
headers (RFC 7804, :mod:`capif8sec.auth.http`)::

    client-first   n,,n=<user>,r=<client nonce>                      (gs2 flag p=, y or n)
    server-first   r=<client nonce + server nonce>,s=<salt>,i=<iterations>
    client-final   c=<base64(gs2 header + channel binding)>,r=<nonces>,p=<ClientProof>
    server-final   v=<ServerSignature>

Channel binding (-PLUS): Python's :mod:`ssl` has no keying-material exporter, so the
``tls-exporter`` binding of the digest's R52 (RFC 9266) cannot be computed; and ``tls-unique``
is undefined on TLS 1.3 (RFC 8446 C.5).  capif8sec binds to ``tls-server-end-point`` (RFC 5929
section 4.1): the hash of the server's DER certificate with the hash of its signature algorithm
(SHA-256 when that is MD5 or SHA-1).  It ties the exchange to the certificate the ROF saw, so a
relay through any endpoint with a different certificate (an interception proxy, a mis-issued
certificate) is refused.  It does not distinguish two connections to the same certificate; the
fresh server nonce makes each exchange single use.  Because it does not depend on the TLS 1.2
master secret, the EMS/renegotiation condition of R55 (written for tls-exporter) has no
tls-server-end-point counterpart: the binding is equally strong on TLS 1.2 and 1.3.

Where the binding comes from (:func:`channel_binding_for`):

- the ROF (TLS client) hashes the certificate it received: ``getpeercert(binary_form=True)``;
- the CCF (TLS server) must hash the certificate it *presents*, which :mod:`ssl` does not expose
  on the connection: it comes from the configuration (``server_certificate=`` DER), or from the
  :class:`~capif8sec.tls.CapifContext` the connection used (the per-handshake context that the
  SNI callback installs, so a rotated certificate is picked up), or from
  :attr:`capif8sec.tls.TlsPeer.channel_binding` after :func:`~capif8sec.tls.check_connection`.

The server never runs PBKDF2 at login (R53): it holds only StoredKey and ServerKey
(:class:`~capif8sec.auth.credentials.ScramVerifier`) and does two HMACs and one SHA-256 per
login.  Proofs and signatures are compared with :func:`hmac.compare_digest` (R54).  An unknown
user, an inactive credential, a blocked user and a wrong password fail in the same place, with
the same :class:`~capif8sec.errors.AuthenticationFailed` message, after the same work: an
unknown user gets a deterministic decoy salt (HMAC of a per-server secret and the username) and
the configured iteration count, so its server-first message looks like a real one (R54).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import logging
import re
import secrets
import ssl
import stringprep
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Literal, Protocol, runtime_checkable

from capif8sec.auth.base import AuthenticatedPeer, ContextNeeds, Method
from capif8sec.auth.credentials import CredentialStore, ScramVerifier, Validity
from capif8sec.errors import AuthenticationFailed, Capif8secError, UsageError
from capif8sec.tls.binding import TLS_SERVER_END_POINT, ChannelBinding, tls_server_end_point
from capif8sec.tls.check import TlsPeer

__all__ = [
    "ALLOW_PLAIN_SCRAM",
    "DEFAULT_ITERATIONS",
    "MAX_CLIENT_ITERATIONS",
    "MAX_MESSAGE_BYTES",
    "MAX_NONCE_CHARS",
    "MAX_USERNAME_CHARS",
    "MECHANISM",
    "MECHANISM_PLUS",
    "MIN_ITERATIONS",
    "MIN_SALT_BYTES",
    "SERVER_ERROR_MESSAGE",
    "TLS_SERVER_END_POINT",
    "AllowPlainScram",
    "AttemptLimiter",
    "ChannelBinding",
    "FailureLimiter",
    "ScramAuthenticator",
    "ScramClient",
    "ScramServer",
    "VerifierLookup",
    "channel_binding_for",
    "make_verifier",
    "saslprep",
    "tls_server_end_point",
]

_log = logging.getLogger(__name__)

MECHANISM: Final = "SCRAM-SHA-256"
MECHANISM_PLUS: Final = "SCRAM-SHA-256-PLUS"
#: R53: the iteration floor (RFC 7677 section 4: at least 4096).
MIN_ITERATIONS: Final = 4096
#: R53: the default iteration count of new verifiers (OWASP 2023 figure for PBKDF2-HMAC-SHA256).
DEFAULT_ITERATIONS: Final = 600_000
#: R53: salts are at least 16 random bytes.
MIN_SALT_BYTES: Final = 16
#: A client refuses a server asking for more iterations than this (a CPU-exhaustion guard).
MAX_CLIENT_ITERATIONS: Final = 10_000_000
#: No SCRAM message, in either direction, may be longer than this.
MAX_MESSAGE_BYTES: Final = 2048
#: The longest client nonce, username (characters, after SASLprep) accepted.
MAX_NONCE_CHARS: Final = 256
MAX_USERNAME_CHARS: Final = 256
#: A server-final message a raw-stream deployment may send on any failure (RFC 5802
#: ``server-error``); it never says which check failed.
SERVER_ERROR_MESSAGE: Final = b"e=other-error"

_FAILED: Final = "authentication failed"
_HASH_BYTES: Final = 32
_SERVER_NONCE_BYTES: Final = 24
_PROCESS_SECRET: Final = secrets.token_bytes(32)


class _Downgrade(enum.Enum):
    ALLOW_PLAIN_SCRAM = "allow plain SCRAM-SHA-256 without channel binding"

    def __repr__(self) -> str:
        return self.name


#: The explicit, named downgrade: SCRAM-SHA-256 without channel binding.  Pass it instead of a
#: :class:`ChannelBinding` only where no certificate-bound channel binding can be had; the
#: exchange is then not tied to the TLS channel (a relay is not detected).
ALLOW_PLAIN_SCRAM: Final = _Downgrade.ALLOW_PLAIN_SCRAM
AllowPlainScram = Literal[_Downgrade.ALLOW_PLAIN_SCRAM]

#: A verifier lookup: username (after SASLprep) -> its verifier, or None.
VerifierLookup = Callable[[str], ScramVerifier | None]


# --------------------------------------------------------------------------- SASLprep


class _PrepError(ValueError):
    """A string SASLprep refuses (never carries the string)."""


_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space (mapped to SPACE before; must not remain)
    stringprep.in_table_c21_c22,  # control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties / deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(value: str, *, allow_unassigned: bool = False) -> str:
    """RFC 4013 SASLprep (the RFC 3454 stringprep profile used by SCRAM for names and passwords).

    Mapping (non-ASCII spaces to SPACE, table B.1 to nothing), NFKC normalisation with the
    Unicode 3.2 tables stringprep is defined on, the prohibited-output tables C.1.2 and C.2.1
    to C.9, the bidirectional rules of RFC 3454 section 6, and -- for stored strings, the default
    -- unassigned code points (A.1).  RFC 5802 prepares passwords as stored strings and usernames
    as queries (``allow_unassigned=True``).

    :raises UsageError: the string is empty after preparation or contains a prohibited
        character (the message never repeats the string).
    """
    try:
        return _saslprep(value, allow_unassigned=allow_unassigned)
    except _PrepError as exc:
        raise UsageError(f"SASLprep (RFC 4013) refuses this string: {exc}") from None


def _saslprep(value: str, *, allow_unassigned: bool) -> str:
    if not isinstance(value, str):
        raise _PrepError("not a str")
    if value.isascii() and value.isprintable():  # fast path: SASLprep is the identity here
        if not value:
            raise _PrepError("empty")
        return value
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in value if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if not prepared:
        raise _PrepError("empty after preparation")
    for ch in prepared:
        if any(table(ch) for table in _PROHIBITED):
            raise _PrepError("prohibited character")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise _PrepError("unassigned code point")
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise _PrepError("mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise _PrepError("a right-to-left string must start and end right-to-left")
    return prepared


# --------------------------------------------------------------------------- primitives


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64: the canonical encoding only (padding, alphabet, no stray bits)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuthenticationFailed(_FAILED) from None
    if _b64(raw) != text:
        raise AuthenticationFailed(_FAILED)
    return raw


def _keys(salted_password: bytes) -> tuple[bytes, bytes, bytes]:
    client_key = _hmac(salted_password, b"Client Key")
    server_key = _hmac(salted_password, b"Server Key")
    return client_key, hashlib.sha256(client_key).digest(), server_key


def _salted_password(password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations)


def _escape(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def _unescape(saslname: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(saslname):
        ch = saslname[i]
        if ch == "=":
            code = saslname[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise AuthenticationFailed(_FAILED)
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_NONCE = re.compile(rf"[\x21-\x2b\x2d-\x7e]{{1,{MAX_NONCE_CHARS}}}")


def _printable_nonce(nonce: str) -> bool:
    """RFC 5802 ``printable``: %x21-2B / %x2D-7E (no comma)."""
    return _NONCE.fullmatch(nonce) is not None


def _attributes(text: str) -> list[tuple[str, str]]:
    """Split ``a=v,b=w,...``: one ASCII letter, ``=``, a non-empty value without NUL."""
    out: list[tuple[str, str]] = []
    for part in text.split(","):
        if len(part) < 3 or part[1] != "=" or not (part[0].isascii() and part[0].isalpha()):
            raise AuthenticationFailed(_FAILED)
        if "\x00" in part:
            raise AuthenticationFailed(_FAILED)
        out.append((part[0], part[2:]))
    return out


def _decode(message: bytes) -> str:
    if not isinstance(message, bytes | bytearray | memoryview):
        raise UsageError("SCRAM messages are bytes")
    if len(message) > MAX_MESSAGE_BYTES:
        raise AuthenticationFailed(_FAILED)
    try:
        return bytes(message).decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationFailed(_FAILED) from None


def _check_binding(binding: ChannelBinding | AllowPlainScram) -> ChannelBinding | None:
    if binding is ALLOW_PLAIN_SCRAM:
        return None
    if not isinstance(binding, ChannelBinding):
        raise UsageError(
            "channel_binding must be a ChannelBinding (tls-server-end-point) or ALLOW_PLAIN_SCRAM"
        )
    if binding.type != TLS_SERVER_END_POINT:
        raise UsageError(
            f"only {TLS_SERVER_END_POINT} channel binding is supported, not {binding.type!r} "
            "(no exporter in Python's ssl; tls-unique is undefined on TLS 1.3)"
        )
    if not isinstance(binding.data, bytes) or not 28 <= len(binding.data) <= 64:
        raise UsageError("tls-server-end-point data is a certificate hash of 28 to 64 bytes")
    return binding


def _gs2_header(flag: str) -> str:
    return f"{flag},,"


# --------------------------------------------------------------------------- channel binding


def channel_binding_for(
    conn: ssl.SSLSocket | ssl.SSLObject | TlsPeer,
    *,
    server_certificate: bytes | None = None,
) -> ChannelBinding:
    """The tls-server-end-point channel binding of a finished TLS connection (RFC 5929).

    - A :class:`~capif8sec.tls.TlsPeer` (from :func:`~capif8sec.tls.check_connection`): its
      ``channel_binding``, computed by the check on either side.
    - The client side of a connection: the hash of the certificate the server sent
      (``getpeercert(binary_form=True)``).
    - The server side: ``ssl`` does not expose the certificate a server presents, so give it as
      ``server_certificate`` (the DER leaf of the chain you configured); otherwise a connection
      made with a :class:`~capif8sec.tls.CapifContext` takes it from the context the handshake
      used.

    The data is public (a certificate hash); what it protects is the binding between the SCRAM
    exchange and the certificate the ROF authenticated (R52).

    :raises UsageError: no certificate-authenticated server on this connection (a PSK handshake,
        an unfinished handshake, or a server connection without ``server_certificate`` outside
        a capif8sec context).
    """
    if isinstance(conn, TlsPeer):
        if conn.channel_binding is None:
            raise UsageError(
                "this connection has no tls-server-end-point: the server presented no certificate"
            )
        return conn.channel_binding
    if not isinstance(conn, ssl.SSLSocket | ssl.SSLObject):
        raise UsageError("channel_binding_for takes an SSLSocket, an SSLObject or a TlsPeer")
    if server_certificate is not None:
        return ChannelBinding(TLS_SERVER_END_POINT, _end_point(server_certificate))
    if conn.server_side:
        own = getattr(getattr(conn.context, "settings", None), "own_end_point", None)
        if not isinstance(own, bytes):
            raise UsageError(
                "a server cannot read the certificate it presents from ssl: pass "
                "server_certificate= (the DER leaf it was configured with)"
            )
        return ChannelBinding(TLS_SERVER_END_POINT, own)
    peer = conn.getpeercert(binary_form=True)
    if not peer:
        raise UsageError(
            "no server certificate on this connection: SCRAM-PLUS needs a TLS channel in "
            "which the server was authenticated by its certificate (R52)"
        )
    return ChannelBinding(TLS_SERVER_END_POINT, _end_point(peer))


def _end_point(cert_der: bytes) -> bytes:
    try:
        return tls_server_end_point(cert_der)
    except Capif8secError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------- verifiers


def make_verifier(
    username: str,
    password: str,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
    validity: Validity | None = None,
) -> ScramVerifier:
    """What the server stores for ``username``: salt, iterations, StoredKey, ServerKey (R53).

    The password itself is never stored.  Username and password are prepared with SASLprep
    (RFC 4013, passwords as stored strings); the salt is 16 fresh random bytes unless given
    (at least :data:`MIN_SALT_BYTES`).  This runs PBKDF2 once: provisioning time, not login time.

    :raises UsageError: ``iterations`` below :data:`MIN_ITERATIONS` (4096), a salt shorter than
        16 bytes, or a username/password SASLprep refuses.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise UsageError("iterations must be an int")
    if iterations < MIN_ITERATIONS:
        raise UsageError(f"iterations must be at least {MIN_ITERATIONS} (R53, RFC 7677)")
    if salt is None:
        salt = secrets.token_bytes(MIN_SALT_BYTES)
    if not isinstance(salt, bytes) or len(salt) < MIN_SALT_BYTES:
        raise UsageError(f"the salt must be at least {MIN_SALT_BYTES} random bytes (R53)")
    name = _prepare_username(username, stored=True)
    secret = _prepare_password(password)
    _, stored_key, server_key = _keys(_salted_password(secret, salt, iterations))
    return ScramVerifier(
        username=name,
        salt=salt,
        iterations=iterations,
        stored_key=stored_key,
        server_key=server_key,
        validity=validity if validity is not None else Validity(),
    )


def _prepare_username(username: str, *, stored: bool) -> str:
    try:
        name = _saslprep(username, allow_unassigned=not stored)
    except _PrepError as exc:
        raise UsageError(f"the username is not valid under SASLprep (RFC 4013): {exc}") from None
    if len(name) > MAX_USERNAME_CHARS:
        raise UsageError(f"usernames are at most {MAX_USERNAME_CHARS} characters")
    return name


def _prepare_password(password: str) -> bytes:
    try:
        return _saslprep(password, allow_unassigned=False).encode("utf-8")
    except _PrepError as exc:
        raise UsageError(f"the password is not valid under SASLprep (RFC 4013): {exc}") from None


def _usable(verifier: object, at: dt.datetime) -> ScramVerifier | None:
    """A verifier the server may use now, or None (treated exactly like an unknown user)."""
    if not isinstance(verifier, ScramVerifier):
        return None
    if not verifier.validity.active(at):
        return None
    if (
        verifier.iterations < MIN_ITERATIONS
        or len(verifier.salt) < MIN_SALT_BYTES
        or len(verifier.stored_key) != _HASH_BYTES
        or len(verifier.server_key) != _HASH_BYTES
    ):
        _log.warning(
            "stored SCRAM verifier for %r is below the R53 floor (iterations/salt/keys); "
            "it cannot be used",
            verifier.username,
        )
        return None
    return verifier


# --------------------------------------------------------------------------- attempt limiting


@runtime_checkable
class AttemptLimiter(Protocol):
    """The attempt-limiting hook (R54): consulted per username, told every outcome.

    ``allow`` is asked when a client-first names the user; a refusal does not shorten the
    exchange (the server still answers normally, then fails the proof), so a blocked user looks
    exactly like a wrong password.  Unknown usernames are reported like known ones.
    Implementations must be thread-safe.
    """

    def allow(self, username: str) -> bool:
        """Whether ``username`` may try now."""
        ...

    def failed(self, username: str) -> None:
        """An exchange for ``username`` failed after its client-first."""
        ...

    def succeeded(self, username: str) -> None:
        """``username`` authenticated."""
        ...


class _CallableLimiter:
    def __init__(self, allow: Callable[[str], bool]) -> None:
        self._allow = allow

    def allow(self, username: str) -> bool:
        return bool(self._allow(username))

    def failed(self, username: str) -> None:
        return None

    def succeeded(self, username: str) -> None:
        return None


def _limiter(value: AttemptLimiter | Callable[[str], bool] | None) -> AttemptLimiter | None:
    # Duck-typed rather than isinstance(Protocol): that check costs more than a whole login.
    if value is None or all(hasattr(value, name) for name in ("allow", "failed", "succeeded")):
        return value  # type: ignore[return-value]
    if callable(value):
        return _CallableLimiter(value)
    raise UsageError("attempt_limiter must be an AttemptLimiter or a callable(username) -> bool")


class FailureLimiter:
    """A small in-memory :class:`AttemptLimiter`: block a username after repeated failures.

    After ``max_failures`` failures without a success, ``username`` is refused until
    ``lockout`` seconds have passed since its last failure.  At most ``max_tracked`` usernames
    are remembered (least recently failed forgotten first), so a flood of invented usernames
    cannot exhaust memory.  One process only: a cluster needs a shared store behind the same
    three methods.
    """

    def __init__(
        self,
        max_failures: int = 5,
        lockout: float = 300.0,
        *,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or lockout <= 0 or max_tracked < 1:
            raise UsageError("max_failures, lockout and max_tracked must be positive")
        self._max = max_failures
        self._lockout = lockout
        self._cap = max_tracked
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<FailureLimiter max_failures={self._max} lockout={self._lockout}s>"

    def allow(self, username: str) -> bool:
        """False while ``username`` is locked out."""
        with self._lock:
            entry = self._failures.get(username)
            if entry is None:
                return True
            count, last = entry
            if self._clock() - last >= self._lockout:
                del self._failures[username]
                return True
            return count < self._max

    def failed(self, username: str) -> None:
        """Count one failure."""
        with self._lock:
            count, _ = self._failures.pop(username, (0, 0.0))
            self._failures[username] = (count + 1, self._clock())
            while len(self._failures) > self._cap:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """Forget the user's failures."""
        with self._lock:
            self._failures.pop(username, None)


# --------------------------------------------------------------------------- server


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _lookup_of(
    verifiers: CredentialStore | VerifierLookup, clock: Callable[[], dt.datetime]
) -> Callable[[str], ScramVerifier | None]:
    """One lookup for both verifier sources; the result is usable now, or None."""
    if hasattr(verifiers, "scram_verifier"):  # a CredentialStore (duck-typed: see _limiter)
        store: CredentialStore = verifiers  # type: ignore[assignment]

        def from_store(username: str) -> ScramVerifier | None:
            at = clock()
            return _usable(store.scram_verifier(username, at=at), at)

        return from_store
    if callable(verifiers):
        lookup = verifiers

        def from_callable(username: str) -> ScramVerifier | None:
            return _usable(lookup(username), clock())

        return from_callable
    raise UsageError("verifiers must be a CredentialStore or a callable(username)")


class ScramServer:
    """The CCF/AzF side of one SCRAM exchange; implements :class:`~capif8sec.auth.Exchange`.

    :param verifiers: a :class:`~capif8sec.auth.CredentialStore` (looked up at ``clock()``) or
        a callable ``username -> ScramVerifier | None``.  Either way a verifier outside its
        validity window, or below the R53 floor, counts as unknown.
    :param channel_binding: this connection's :class:`ChannelBinding` (tls-server-end-point):
        only SCRAM-SHA-256-PLUS is accepted.  Or :data:`ALLOW_PLAIN_SCRAM`: only SCRAM-SHA-256
        without channel binding (the client flag ``n``, or ``y``).
    :param attempt_limiter: an :class:`AttemptLimiter`, or a callable ``username -> bool``
        (R54).
    :param unknown_user_key: the secret from which decoy salts for unknown users are derived.
        Defaults to a per-process random key; several instances behind one name must share one,
        or an unknown user's salt changes between instances while a real one does not.
    :param unknown_user_iterations: the iteration count shown to unknown users; set it to what
        the real verifiers use.
    :param clock: the time used for store lookups and validity windows.
    :param nonce: tests and test vectors only: the server nonce (normally 24 random bytes from
        :mod:`secrets`, base64url).

    A failed exchange raises :class:`~capif8sec.errors.AuthenticationFailed` ("authentication
    failed", whatever went wrong) and is dead; a raw-stream deployment may then send
    :data:`SERVER_ERROR_MESSAGE`.  Any message after the client-final -- a replay included --
    kills even a completed exchange (``complete`` turns false).  Exceptions raised by the
    verifier source itself (a store outage) propagate unchanged.

    Unknown users and wrong passwords cost the server the same work (R54); what this class
    cannot equalise is the verifier source: a store whose lookup is much faster for a missing
    name than for a present one leaks that through timing.
    """

    __slots__ = (
        "_binding",
        "_client_first_bare",
        "_combined_nonce",
        "_doomed",
        "_gs2_header",
        "_limiter",
        "_lookup",
        "_mechanism",
        "_server_first",
        "_server_nonce",
        "_state",
        "_unknown_iterations",
        "_unknown_key",
        "_username",
        "_verifier",
    )

    def __init__(
        self,
        verifiers: CredentialStore | VerifierLookup,
        channel_binding: ChannelBinding | AllowPlainScram,
        *,
        attempt_limiter: AttemptLimiter | Callable[[str], bool] | None = None,
        unknown_user_key: bytes | None = None,
        unknown_user_iterations: int = DEFAULT_ITERATIONS,
        clock: Callable[[], dt.datetime] = _utcnow,
        nonce: str | None = None,
    ) -> None:
        self._binding = _check_binding(channel_binding)
        self._lookup = _lookup_of(verifiers, clock)
        self._limiter = _limiter(attempt_limiter)
        if unknown_user_key is not None and (
            not isinstance(unknown_user_key, bytes) or len(unknown_user_key) < 16
        ):
            raise UsageError("unknown_user_key must be at least 16 secret bytes")
        self._unknown_key = unknown_user_key if unknown_user_key is not None else _PROCESS_SECRET
        if isinstance(unknown_user_iterations, bool) or unknown_user_iterations < MIN_ITERATIONS:
            raise UsageError(f"unknown_user_iterations must be at least {MIN_ITERATIONS}")
        self._unknown_iterations = unknown_user_iterations
        if nonce is None:
            nonce = secrets.token_urlsafe(_SERVER_NONCE_BYTES)
        elif not isinstance(nonce, str) or not _printable_nonce(nonce):
            raise UsageError("the server nonce must be printable ASCII without ','")
        self._server_nonce = nonce
        self._state = "start"
        self._mechanism: str | None = None
        self._username: str | None = None
        self._verifier: ScramVerifier | None = None
        self._doomed = False
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._combined_nonce = ""

    def __repr__(self) -> str:
        return f"<ScramServer state={self._state} mechanism={self._mechanism}>"

    @property
    def mechanism(self) -> str | None:
        """``SCRAM-SHA-256-PLUS`` or ``SCRAM-SHA-256`` once the client-first was accepted."""
        return self._mechanism

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """What this server accepts (for an RFC 7804 challenge)."""
        return (MECHANISM_PLUS,) if self._binding is not None else (MECHANISM,)

    @property
    def complete(self) -> bool:
        """Whether the client proved its password."""
        return self._state == "done"

    def receive(self, message: bytes) -> bytes | None:
        """Process the client-first or the client-final message; return the server's reply.

        :raises AuthenticationFailed: anything wrong, always with the same message; the exchange
            is then dead (a second client-final included).
        """
        state = self._state
        self._state = "failed"  # until proven otherwise: a dead exchange stays dead
        try:
            if state == "start":
                reply = self._first(_decode(message))
                self._state = "challenged"
                return reply
            if state == "challenged":
                try:
                    reply = self._final(_decode(message))
                except AuthenticationFailed:
                    self._report(ok=False)
                    raise
                self._report(ok=True)
                self._state = "done"
                return reply
        except AuthenticationFailed:
            _log.debug("SCRAM exchange failed (state %s)", state)
            raise AuthenticationFailed(_FAILED) from None
        _log.debug("SCRAM message received in state %s", state)
        raise AuthenticationFailed(_FAILED)

    def _report(self, *, ok: bool) -> None:
        if self._limiter is not None and self._username is not None:
            if ok:
                self._limiter.succeeded(self._username)
            else:
                self._limiter.failed(self._username)

    def _first(self, text: str) -> bytes:
        flag, sep1, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep1 and sep2) or authzid:  # authzid refused: identity = username only (R56)
            raise AuthenticationFailed(_FAILED)
        if flag.startswith("p="):
            if self._binding is None or flag[2:] != self._binding.type:
                raise AuthenticationFailed(_FAILED)
            mechanism = MECHANISM_PLUS
        elif flag in ("n", "y"):
            # 'y' while the server offers -PLUS is RFC 5802's downgrade signal; 'n' is plain
            # SCRAM, which only ALLOW_PLAIN_SCRAM permits.
            if self._binding is not None:
                raise AuthenticationFailed(_FAILED)
            mechanism = MECHANISM
        else:
            raise AuthenticationFailed(_FAILED)
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
            raise AuthenticationFailed(_FAILED)  # includes a leading m= (reserved-mext)
        try:
            username = _saslprep(_unescape(attrs[0][1]), allow_unassigned=True)
        except _PrepError:
            raise AuthenticationFailed(_FAILED) from None
        client_nonce = attrs[1][1]
        if len(username) > MAX_USERNAME_CHARS or not _printable_nonce(client_nonce):
            raise AuthenticationFailed(_FAILED)
        # Same work for everyone: the decoy is derived whether or not the user exists.
        decoy_salt = _hmac(self._unknown_key, b"capif8sec scram decoy salt\x00" + username.encode())
        decoy_keys = secrets.token_bytes(2 * _HASH_BYTES)
        verifier = self._lookup(username)
        allowed = self._limiter.allow(username) if self._limiter is not None else True
        if verifier is None:
            verifier = ScramVerifier(
                username=username,
                salt=decoy_salt[:MIN_SALT_BYTES],
                iterations=self._unknown_iterations,
                stored_key=decoy_keys[:_HASH_BYTES],
                server_key=decoy_keys[_HASH_BYTES:],
            )
            self._doomed = True
        self._doomed = self._doomed or not allowed
        self._verifier = verifier
        self._username = username
        self._mechanism = mechanism
        self._gs2_header = _gs2_header(flag)
        self._client_first_bare = bare
        self._combined_nonce = client_nonce + self._server_nonce
        self._server_first = (
            f"r={self._combined_nonce},s={_b64(verifier.salt)},i={verifier.iterations}"
        )
        return self._server_first.encode("ascii")

    def _final(self, text: str) -> bytes:
        verifier = self._verifier
        if verifier is None:  # pragma: no cover - state machine guarantees it
            raise AuthenticationFailed(_FAILED)
        attrs = _attributes(text)
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise AuthenticationFailed(_FAILED)
        if any(name in "crp" for name, _ in attrs[2:-1]):
            raise AuthenticationFailed(_FAILED)
        cbind_input = self._gs2_header.encode("ascii")
        if self._binding is not None:
            cbind_input += self._binding.data
        binding_ok = hmac.compare_digest(attrs[0][1].encode(), _b64(cbind_input).encode())
        nonce_ok = hmac.compare_digest(attrs[1][1].encode(), self._combined_nonce.encode())
        proof = _unb64(attrs[-1][1])
        if len(proof) != _HASH_BYTES:
            raise AuthenticationFailed(_FAILED)
        without_proof = text[: len(text) - len(attrs[-1][1]) - 3]
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        client_signature = _hmac(verifier.stored_key, auth_message)
        client_key = _xor(proof, client_signature)
        proof_ok = hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key)
        server_signature = _hmac(verifier.server_key, auth_message)
        if not (proof_ok & binding_ok & nonce_ok & (not self._doomed)):
            raise AuthenticationFailed(_FAILED)
        return f"v={_b64(server_signature)}".encode("ascii")

    def result(self) -> AuthenticatedPeer:
        """The authenticated ROF: identity = the SCRAM username (R56).

        :raises UsageError: the exchange has not completed successfully.
        """
        if self._state != "done" or self._username is None or self._mechanism is None:
            raise UsageError("the SCRAM exchange has not completed")
        return AuthenticatedPeer(
            identity=self._username,
            method=Method.PASSWORD,
            evidence={
                "username": self._username,
                "mechanism": self._mechanism,
                "channel_binding": self._binding.type if self._binding is not None else "none",
            },
        )


class ScramAuthenticator:
    """Starts SCRAM exchanges on checked TLS connections (server side, long-lived).

    Holds what outlives one exchange: the verifier source, the attempt limiter and the decoy
    key for unknown users.  ``authenticate(peer)`` binds the exchange to the connection's
    tls-server-end-point (SCRAM-SHA-256-PLUS only); ``exchange(ALLOW_PLAIN_SCRAM)`` is the
    explicit downgrade.
    """

    name = "scram"
    needs = ContextNeeds.NOTHING

    def __init__(
        self,
        verifiers: CredentialStore | VerifierLookup,
        *,
        attempt_limiter: AttemptLimiter | Callable[[str], bool] | None = None,
        unknown_user_key: bytes | None = None,
        unknown_user_iterations: int = DEFAULT_ITERATIONS,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._verifiers = verifiers
        self._limiter = _limiter(attempt_limiter)
        self._key = unknown_user_key if unknown_user_key is not None else secrets.token_bytes(32)
        self._iterations = unknown_user_iterations
        self._clock = clock
        self.exchange(ALLOW_PLAIN_SCRAM)  # validate the configuration now, not at first login

    def __repr__(self) -> str:
        return "<ScramAuthenticator>"

    def authenticate(self, peer: TlsPeer) -> ScramServer:
        """Start a SCRAM-SHA-256-PLUS exchange bound to this checked connection."""
        if peer.channel_binding is None:
            raise AuthenticationFailed(
                "SCRAM-PLUS needs a TLS channel where the CCF presented a certificate (R52)"
            )
        return self.exchange(peer.channel_binding)

    def exchange(self, channel_binding: ChannelBinding | AllowPlainScram) -> ScramServer:
        """A fresh exchange for one connection."""
        return ScramServer(
            self._verifiers,
            channel_binding,
            attempt_limiter=self._limiter,
            unknown_user_key=self._key,
            unknown_user_iterations=self._iterations,
            clock=self._clock,
        )


# --------------------------------------------------------------------------- client


class ScramClient:
    """The client (ROF) side of one SCRAM exchange, with mutual authentication.

    :param channel_binding: the connection's :class:`ChannelBinding` (gs2 flag
        ``p=tls-server-end-point``, mechanism SCRAM-SHA-256-PLUS), or :data:`ALLOW_PLAIN_SCRAM`
        (flag ``n``).
    :param server_offers_plus: with a channel binding, False says the server advertised only
        SCRAM-SHA-256: the client then sends flag ``y`` (RFC 5802: "I support channel binding,
        I think you don't"), which a server that does support -PLUS refuses as a downgrade.
    :param max_iterations: refuse a server asking for more PBKDF2 iterations than this.
    :param nonce: tests and test vectors only: the client nonce (normally 24 random bytes from
        :mod:`secrets`, base64url).

    ``first()`` -> send; ``final(server_first)`` -> send; ``verify(server_final)`` checks the
    ServerSignature in constant time.  Server messages that are malformed, signal an error or
    carry a wrong signature raise :class:`~capif8sec.errors.AuthenticationFailed`.
    """

    __slots__ = (
        "_binding",
        "_client_first_bare",
        "_flag",
        "_max_iterations",
        "_nonce",
        "_password",
        "_server_signature",
        "_state",
        "_username",
    )

    def __init__(
        self,
        username: str,
        password: str,
        channel_binding: ChannelBinding | AllowPlainScram,
        *,
        server_offers_plus: bool = True,
        max_iterations: int = MAX_CLIENT_ITERATIONS,
        nonce: str | None = None,
    ) -> None:
        self._binding = _check_binding(channel_binding)
        if self._binding is None:
            self._flag = "n"
        else:
            self._flag = f"p={self._binding.type}" if server_offers_plus else "y"
        self._username = _prepare_username(username, stored=False)
        self._password: bytes | None = _prepare_password(password)
        if max_iterations < MIN_ITERATIONS:
            raise UsageError(f"max_iterations must be at least {MIN_ITERATIONS}")
        self._max_iterations = max_iterations
        if nonce is None:
            nonce = secrets.token_urlsafe(24)
        elif not isinstance(nonce, str) or not _printable_nonce(nonce):
            raise UsageError("the client nonce must be printable ASCII without ','")
        self._nonce = nonce
        self._client_first_bare = f"n={_escape(self._username)},r={self._nonce}"
        self._server_signature = b""
        self._state = "start"

    def __repr__(self) -> str:
        return f"<ScramClient username={self._username!r} mechanism={self.mechanism} {self._state}>"

    @property
    def mechanism(self) -> str:
        """The mechanism name this client runs."""
        return MECHANISM_PLUS if self._flag.startswith("p=") else MECHANISM

    @property
    def complete(self) -> bool:
        """Whether the server proved knowledge of the verifier (ServerSignature checked)."""
        return self._state == "done"

    def first(self) -> bytes:
        """The client-first message."""
        if self._state != "start":
            raise UsageError("first() is called once, first")
        self._state = "sent-first"
        return (_gs2_header(self._flag) + self._client_first_bare).encode("utf-8")

    def final(self, server_first: bytes) -> bytes:
        """The client-final message (runs PBKDF2 with the server's salt and iteration count)."""
        if self._state != "sent-first" or self._password is None:
            raise UsageError("final() needs first() before it, once")
        self._state = "failed"
        text = _decode(server_first)
        attrs = _attributes(text)
        if attrs and attrs[0][0] == "e":
            raise AuthenticationFailed(_FAILED)
        if len(attrs) < 3 or [name for name, _ in attrs[:3]] != ["r", "s", "i"]:
            raise AuthenticationFailed(_FAILED)  # includes a leading m= (reserved-mext)
        nonce, salt_text, iterations_text = (value for _, value in attrs[:3])
        if not _printable_nonce(nonce) or len(nonce) <= len(self._nonce):
            raise AuthenticationFailed(_FAILED)
        if not hmac.compare_digest(nonce[: len(self._nonce)].encode(), self._nonce.encode()):
            raise AuthenticationFailed(_FAILED)
        salt = _unb64(salt_text)
        if not iterations_text.isascii() or not iterations_text.isdigit():
            raise AuthenticationFailed(_FAILED)
        if iterations_text.startswith("0") or len(iterations_text) > 10:
            raise AuthenticationFailed(_FAILED)
        iterations = int(iterations_text)
        if not salt or not MIN_ITERATIONS <= iterations <= self._max_iterations:
            raise AuthenticationFailed(_FAILED)
        cbind_input = _gs2_header(self._flag).encode("ascii")
        if self._flag.startswith("p=") and self._binding is not None:
            cbind_input += self._binding.data
        without_proof = f"c={_b64(cbind_input)},r={nonce}"
        auth_message = ",".join((self._client_first_bare, text, without_proof)).encode("utf-8")
        client_key, stored_key, server_key = _keys(
            _salted_password(self._password, salt, iterations)
        )
        self._password = None  # no longer needed
        proof = _xor(client_key, _hmac(stored_key, auth_message))
        self._server_signature = _hmac(server_key, auth_message)
        self._state = "sent-final"
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify(self, server_final: bytes) -> None:
        """Check the ServerSignature (mutual authentication), in constant time.

        :raises AuthenticationFailed: an ``e=`` error, a malformed message or a wrong signature.
        """
        if self._state != "sent-final":
            raise UsageError("verify() needs final() before it, once")
        self._state = "failed"
        attrs = _attributes(_decode(server_final))
        if not attrs or attrs[0][0] != "v":
            raise AuthenticationFailed(_FAILED)
        if not hmac.compare_digest(_unb64(attrs[0][1]), self._server_signature):
            raise AuthenticationFailed(_FAILED)
        self._state = "done"
