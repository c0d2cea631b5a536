"""TLS-level external PSK contexts (RFC 8446 psk_dhe_ke; TLS 1.2 DHE-PSK-AES-GCM), Python 3.13+.

Python's ``ssl`` has PSK callbacks from 3.13 only; on older interpreters every builder here
raises :class:`PskUnavailable`.  The design follows the traps measured in the platform notes:

- a PSK context never carries a certificate, and a certificate context never has PSK callbacks
  (a context with both silently does a certificate handshake when the client prefers SHA-384);
- the client demands a certificate it can never verify (empty trust store), so the only way a
  handshake completes is the PSK;
- after the handshake the post-handshake check proves it: no certificate on either side, a PSK
  suite, and (server side) the PSK identity that was looked up for *this* connection.

Python's PSK server callback is told the identity but not the connection.  capif8sec attributes
the identity to the connection by running each handshake step of a PSK context through
:class:`_PskSSLObject` / :class:`_PskSSLSocket`, which record the connection in a thread-local
while OpenSSL runs; the callback files the identity under that connection.  A handshake driven
any other way (e.g. implicitly by ``recv`` before ``do_handshake``) finds no connection and is
refused.

Identities are the UTF-8 text Python's API carries, compared as exact bytes (R45); keys shorter
than 16 bytes are refused at load (R42); one key is bound to one (ROF, CCF) pair (R44); TLS 1.3
uses psk_dhe_ke only (OpenSSL's default, R43); no TLS 1.2 suite without forward secrecy (R47).
OpenSSL 3.0 has no RFC 8442 ECDHE-PSK-AES-GCM suites, so TLS 1.2 PSK uses DHE-PSK with RFC 7919
ffdhe3072.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import ssl
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from capif8sec.auth.credentials import CredentialStore, PskCredential
from capif8sec.errors import TlsConfigError
from capif8sec.tls.context import CapifContext, _common, _dh_params, _new, _Settings
from capif8sec.tls.profile import TS33210, TlsProfile

__all__ = [
    "HAS_PSK",
    "PSK_TLS12_SUITES",
    "PSK_TLS13_SUITES",
    "PskUnavailable",
    "psk_client_context",
    "psk_identity_of",
    "psk_server_context",
]

#: Whether this interpreter's ``ssl`` has PSK callbacks (Python >= 3.13).
HAS_PSK: bool = bool(getattr(ssl, "HAS_PSK", False)) and hasattr(
    ssl.SSLContext, "set_psk_server_callback"
)
#: TLS 1.3 suites usable with the legacy PSK callbacks (their hash must be SHA-256).
PSK_TLS13_SUITES: tuple[str, ...] = ("TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256")
#: R47: TLS 1.2 PSK suites with forward secrecy that OpenSSL 3.0 has (RFC 5487).
#: (DHE-PSK-AES256-GCM-SHA384 is AEAD with forward secrecy too, but not on the TS 33.210 list.)
PSK_TLS12_SUITES: tuple[str, ...] = ("DHE-PSK-AES128-GCM-SHA256",)
#: PSK_MAX_IDENTITY_LEN (256) less the C string terminator: the longest identity OpenSSL's
#: legacy PSK callbacks carry (measured: 255 bytes complete a handshake, 256 do not).
_MAX_CALLBACK_IDENTITY = 255


class PskUnavailable(TlsConfigError):
    """TLS-level PSK needs Python >= 3.13 (``ssl`` PSK callbacks)."""


def _require_psk() -> None:
    if not HAS_PSK:
        raise PskUnavailable(
            "TLS-level PSK needs Python 3.13 or newer (ssl.SSLContext.set_psk_server_callback);"
            " on this interpreter use the in-channel PSK proof (capif8sec.auth.inchannel)"
        )


_handshaking = threading.local()
_identities: weakref.WeakKeyDictionary[Any, PskCredential] = weakref.WeakKeyDictionary()
_identities_lock = threading.Lock()


class _PskSSLObject(ssl.SSLObject):
    """An SSLObject that tells the PSK callback which connection it is serving."""

    def do_handshake(self) -> None:
        _handshaking.conn = self
        try:
            super().do_handshake()
        finally:
            _handshaking.conn = None


class _PskSSLSocket(ssl.SSLSocket):
    """An SSLSocket that tells the PSK callback which connection it is serving."""

    def do_handshake(self, block: bool = False) -> None:
        _handshaking.conn = self
        try:
            super().do_handshake(block)
        finally:
            _handshaking.conn = None


def psk_identity_of(conn: ssl.SSLSocket | ssl.SSLObject) -> PskCredential | None:
    """The credential the server looked up for this connection's handshake, if any."""
    with _identities_lock:
        return _identities.get(conn)


def _psk_profile(ctx: CapifContext, profile: TlsProfile, side: str) -> None:
    _common(ctx, profile, (), side)
    if profile.tls12_suites:
        ctx.set_ciphers(":".join(PSK_TLS12_SUITES))
        if side == "server":
            _dh_params(ctx, profile.dh_group)
    # The client can never verify a certificate (no trust anchors): only the PSK can finish
    # the handshake.  The server never has a certificate to present.
    ctx.verify_mode = ssl.CERT_REQUIRED if side == "client" else ssl.CERT_NONE


class _PskServerContext(CapifContext):
    sslobject_class = _PskSSLObject
    sslsocket_class = _PskSSLSocket


def psk_server_context(
    *,
    store: CredentialStore,
    ccf_identity: str,
    profile: TlsProfile = TS33210,
    clock: Callable[[], dt.datetime] | None = None,
) -> CapifContext:
    """A server context that authenticates ROFs by external PSK only (no certificate).

    :param store: where the ROF PSKs live; a revocation there applies to the next handshake.
    :param ccf_identity: this CCF's identity: only PSKs bound to it are used (R44).
    :raises PskUnavailable: on Python < 3.13.
    """
    _require_psk()
    if not isinstance(store, CredentialStore):
        raise TlsConfigError("store must implement capif8sec.auth.CredentialStore")
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    decoy_secret = secrets.token_bytes(32)
    ctx = _new("server")
    ctx.__class__ = _PskServerContext
    _psk_profile(ctx, profile, "server")

    def lookup(identity: str | None) -> bytes:
        conn = getattr(_handshaking, "conn", None)
        if conn is None or identity is None:
            return b""  # a handshake not run through do_handshake(): refuse
        wire = identity.encode("utf-8")
        # An unknown identity gets a secret decoy key, so it fails exactly like a wrong key
        # (the binder does not verify): the peer cannot tell which part was wrong.
        decoy = hmac.digest(decoy_secret, wire, "sha256")
        try:
            candidates: Sequence[PskCredential] = store.psk_credentials(wire, at=now())
        except Exception:  # a failing store refuses, never crashes the handshake
            return decoy
        usable = [c for c in candidates if c.ccf_identity == ccf_identity]
        if not usable:
            return decoy
        # Several active keys under one identity (a rotation overlap): TLS 1.3 offers one key
        # per identity, so the newest wins; rotate TLS-level PSKs under a new identity.
        chosen = max(
            usable, key=lambda c: c.validity.not_before or dt.datetime.min.replace(tzinfo=dt.UTC)
        )
        with _identities_lock:
            _identities[conn] = chosen
        return chosen.key

    ctx.set_psk_server_callback(lookup)  # type: ignore[attr-defined]
    ctx._capif8sec = _Settings("server", profile, None, None, False, mode="psk")
    ctx._capif8sec_alpn = ()
    ctx._capif8sec_current = None
    return ctx


def psk_client_context(
    *,
    credential: PskCredential,
    profile: TlsProfile = TS33210,
) -> CapifContext:
    """A client context that authenticates with one external PSK (and presents no certificate).

    The server proves itself by knowing the same key (R48: PSK is then the mutual proof; for
    CCF authentication by certificate use the in-channel PSK proof instead).
    :raises PskUnavailable: on Python < 3.13.
    """
    _require_psk()
    if not isinstance(credential, PskCredential):
        raise TlsConfigError("credential must be a PskCredential")
    try:
        identity = credential.identity.decode("utf-8")
    except UnicodeDecodeError:
        raise TlsConfigError(
            "Python's ssl carries PSK identities as UTF-8 text; this identity is not UTF-8"
        ) from None
    # OpenSSL's PSK callbacks carry the identity as a C string in a 256-byte buffer: a NUL would
    # silently cut it (the server would see, and attribute, a shorter identity) and a longer one
    # makes every handshake fail without saying why.
    if "\x00" in identity:
        raise TlsConfigError("OpenSSL's PSK callbacks cannot carry an identity with a NUL byte")
    if len(credential.identity) > _MAX_CALLBACK_IDENTITY:
        raise TlsConfigError(
            f"OpenSSL's PSK callbacks carry identities of at most {_MAX_CALLBACK_IDENTITY} bytes"
        )
    key = credential.key
    ctx = _new("client")
    _psk_profile(ctx, profile, "client")
    ctx.set_psk_client_callback(lambda hint: (identity, key))  # type: ignore[attr-defined]
    ctx._capif8sec = _Settings(
        "client", profile, None, None, False, mode="psk", psk_identity=identity
    )
    ctx._capif8sec_current = None
    return ctx
