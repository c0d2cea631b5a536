"""In-channel PSK proof: the ROF proves a PSK inside a TLS channel where the CCF was
authenticated by its certificate (Solution #2's "CCF by certificate", R48), on any Python.

A sans-I/O challenge-response with fresh nonces from both sides, bound to the TLS channel by
tls-server-end-point (RFC 5929; never tls-unique on TLS 1.3), so a recorded exchange cannot be
replayed and an exchange cannot be relayed into another channel::

    client-first   v=1,n=<identity, base64>,r=<client nonce, base64>
    server-first   r=<client nonce + server nonce, base64>
    client-final   r=<both nonces, base64>,p=<client proof, base64>
    server-final   v=<server proof, base64>

    proof = HMAC-SHA-256(PSK, label || len-prefixed(cb type, cb data, identity, CCF identity,
                                                     client nonce, server nonce))

with label ``capif8sec-psk-client-v1`` or ``capif8sec-psk-server-v1``.  The server proof gives
the ROF mutual authentication under the PSK in addition to the CCF's certificate.  During a
rotation every active key of the identity is tried (all of them, in constant time); an unknown
identity runs the same computation on a decoy key, so it fails exactly like a wrong key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import secrets
from collections.abc import Callable, Sequence

from capif8sec.auth.base import AuthenticatedPeer, ContextNeeds, Method
from capif8sec.auth.credentials import CredentialStore, PskCredential
from capif8sec.errors import AuthenticationFailed, UsageError
from capif8sec.tls.binding import ChannelBinding
from capif8sec.tls.check import TlsPeer

__all__ = ["InChannelPskAuthenticator", "InChannelPskClient", "InChannelPskServer"]

NONCE_BYTES = 32
MAX_MESSAGE = 4096
_CLIENT_LABEL = b"capif8sec-psk-client-v1"
_SERVER_LABEL = b"capif8sec-psk-server-v1"
_FAILED = "authentication failed"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuthenticationFailed(_FAILED) from None


def _fields(message: bytes, names: Sequence[str]) -> list[str]:
    if not isinstance(message, bytes) or len(message) > MAX_MESSAGE:
        raise AuthenticationFailed(_FAILED)
    try:
        text = message.decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed(_FAILED) from None
    parts = text.split(",")
    if len(parts) != len(names):
        raise AuthenticationFailed(_FAILED)
    values = []
    for part, name in zip(parts, names, strict=True):
        key, sep, value = part.partition("=")
        if key != name or not sep:
            raise AuthenticationFailed(_FAILED)
        values.append(value)
    return values


def _transcript(
    binding: ChannelBinding, identity: bytes, ccf: str, cnonce: bytes, snonce: bytes
) -> bytes:
    out = bytearray()
    for item in (binding.type.encode(), binding.data, identity, ccf.encode(), cnonce, snonce):
        out += len(item).to_bytes(4, "big") + item
    return bytes(out)


def _proof(key: bytes, label: bytes, transcript: bytes) -> bytes:
    return hmac.digest(key, label + transcript, "sha256")


class InChannelPskServer:
    """Server side of one exchange (single use).  Implements :class:`~capif8sec.auth.Exchange`."""

    def __init__(
        self,
        *,
        lookup: Callable[[bytes], Sequence[PskCredential]],
        ccf_identity: str,
        binding: ChannelBinding,
        decoy_secret: bytes,
        _server_nonce: bytes | None = None,
    ) -> None:
        self._lookup = lookup
        self._ccf = ccf_identity
        self._binding = binding
        self._decoy_secret = decoy_secret
        self._snonce = _server_nonce or secrets.token_bytes(NONCE_BYTES)
        self._state = "start"
        self._identity = b""
        self._cnonce = b""
        self._matched: PskCredential | None = None

    def __repr__(self) -> str:
        return f"<InChannelPskServer state={self._state}>"

    @property
    def complete(self) -> bool:
        """Whether the client proved the PSK."""
        return self._state == "done"

    def receive(self, message: bytes) -> bytes | None:
        """Process the client-first or client-final message; return the reply."""
        try:
            if self._state == "start":
                return self._first(message)
            if self._state == "challenged":
                return self._final(message)
        except AuthenticationFailed:
            self._state = "failed"
            raise
        self._state = "failed"
        raise AuthenticationFailed(_FAILED)

    def _first(self, message: bytes) -> bytes:
        version, ident, cnonce = _fields(message, ("v", "n", "r"))
        identity, nonce = _unb64(ident), _unb64(cnonce)
        if version != "1" or not 1 <= len(identity) <= 65535 or len(nonce) != NONCE_BYTES:
            raise AuthenticationFailed(_FAILED)
        self._identity, self._cnonce = identity, nonce
        self._state = "challenged"
        return f"r={_b64(nonce + self._snonce)}".encode("ascii")

    def _final(self, message: bytes) -> bytes:
        nonces, proof_text = _fields(message, ("r", "p"))
        nonce_ok = hmac.compare_digest(_unb64(nonces), self._cnonce + self._snonce)
        proof = _unb64(proof_text)
        transcript = _transcript(
            self._binding, self._identity, self._ccf, self._cnonce, self._snonce
        )
        try:
            candidates = [c for c in self._lookup(self._identity) if c.ccf_identity == self._ccf]
        except Exception:
            candidates = []
        decoy = hmac.digest(self._decoy_secret, self._identity, "sha256")
        pairs: list[tuple[bytes, PskCredential | None]] = [(c.key, c) for c in candidates]
        matched = None
        for key, cred in pairs or [(decoy, None)]:  # every key is tried: no early exit
            ok = hmac.compare_digest(_proof(key, _CLIENT_LABEL, transcript), proof)
            if ok and cred is not None and matched is None:
                matched = cred
        if matched is None or not nonce_ok:
            raise AuthenticationFailed(_FAILED)
        self._matched = matched
        self._state = "done"
        return f"v={_b64(_proof(matched.key, _SERVER_LABEL, transcript))}".encode("ascii")

    def result(self) -> AuthenticatedPeer:
        """The authenticated ROF."""
        if self._matched is None:
            raise AuthenticationFailed(_FAILED)
        # R45/R56: the text form must stay one-to-one with the identity bytes.  UTF-8 is
        # reported as is; other bytes become lone surrogates (surrogateescape), which strict
        # UTF-8 text never contains ("backslashreplace" made b"rof-\xff" and the ASCII
        # identity "rof-\\xff" the same peer).
        identity = self._matched.identity.decode("utf-8", "surrogateescape")
        return AuthenticatedPeer(
            identity=identity,
            method=Method.PSK_IN_CHANNEL,
            evidence={
                "psk_identity": identity,
                "key_id": self._matched.key_id,
                "channel_binding": self._binding.type,
            },
        )


class InChannelPskClient:
    """Client (ROF) side of one exchange."""

    def __init__(
        self,
        *,
        credential: PskCredential,
        binding: ChannelBinding,
        _client_nonce: bytes | None = None,
    ) -> None:
        self._cred = credential
        self._binding = binding
        self._cnonce = _client_nonce or secrets.token_bytes(NONCE_BYTES)
        self._transcript = b""
        self._state = "start"

    def __repr__(self) -> str:
        return f"<InChannelPskClient state={self._state}>"

    def first(self) -> bytes:
        """The client-first message."""
        if self._state != "start":
            raise UsageError("first() was already called")
        self._state = "sent-first"
        return f"v=1,n={_b64(self._cred.identity)},r={_b64(self._cnonce)}".encode("ascii")

    def final(self, server_first: bytes) -> bytes:
        """The client-final message, answering the server's challenge."""
        if self._state != "sent-first":
            raise UsageError("final() needs first() before it, once")
        (nonces,) = _fields(server_first, ("r",))
        combined = _unb64(nonces)
        if len(combined) != 2 * NONCE_BYTES or not hmac.compare_digest(
            combined[:NONCE_BYTES], self._cnonce
        ):
            raise AuthenticationFailed(_FAILED)
        self._transcript = _transcript(
            self._binding,
            self._cred.identity,
            self._cred.ccf_identity,
            self._cnonce,
            combined[NONCE_BYTES:],
        )
        proof = _proof(self._cred.key, _CLIENT_LABEL, self._transcript)
        self._state = "sent-final"
        return f"r={nonces},p={_b64(proof)}".encode("ascii")

    def verify(self, server_final: bytes) -> None:
        """Check the server's proof (mutual authentication under the PSK)."""
        if self._state != "sent-final":
            raise UsageError("verify() needs final() before it, once")
        self._state = "done"
        (text,) = _fields(server_final, ("v",))
        expected = _proof(self._cred.key, _SERVER_LABEL, self._transcript)
        if not hmac.compare_digest(_unb64(text), expected):
            raise AuthenticationFailed(_FAILED)


class InChannelPskAuthenticator:
    """Starts in-channel PSK exchanges on certificate-authenticated TLS (server side).

    :param store: the ROF PSKs; revocations apply to the next exchange (R62).
    :param ccf_identity: this CCF's identity: only PSKs bound to it count (R44).
    """

    name = "psk-in-channel"
    needs = ContextNeeds.NOTHING

    def __init__(
        self,
        store: CredentialStore,
        ccf_identity: str,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._store = store
        self._ccf = ccf_identity
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._decoy_secret = secrets.token_bytes(32)

    def authenticate(self, peer: TlsPeer) -> InChannelPskServer:
        """Start an exchange on a checked connection whose server presented a certificate."""
        if peer.channel_binding is None:
            raise AuthenticationFailed(
                "in-channel PSK needs a TLS channel where the CCF presented a certificate"
            )
        return self.exchange(peer.channel_binding)

    def exchange(self, binding: ChannelBinding) -> InChannelPskServer:
        """A fresh exchange bound to this connection's channel binding."""
        return InChannelPskServer(
            lookup=lambda identity: self._store.psk_credentials(identity, at=self._clock()),
            ccf_identity=self._ccf,
            binding=binding,
            decoy_secret=self._decoy_secret,
        )
