"""Example capif8sec authenticator plugin: hardware-token TOTP (RFC 6238) inside TLS."""

from __future__ import annotations

import hmac
import struct
import threading
import time
from collections.abc import Callable, Mapping

from capif8sec.auth import AuthenticatedPeer, ContextNeeds
from capif8sec.errors import AuthenticationFailed
from capif8sec.tls import TlsPeer

__all__ = ["HardwareTokenAuthenticator", "totp"]

STEP = 30
DIGITS = 6


def totp(secret: bytes, counter: int) -> str:
    """RFC 6238 / RFC 4226 one-time password for ``counter`` with HMAC-SHA-256."""
    mac = hmac.digest(secret, struct.pack(">Q", counter), "sha256")
    offset = mac[-1] & 0x0F
    code = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(code % 10**DIGITS).zfill(DIGITS)


class _Exchange:
    def __init__(self, owner: HardwareTokenAuthenticator, peer: TlsPeer) -> None:
        self._owner, self._peer = owner, peer
        self._result: AuthenticatedPeer | None = None
        self._used = False

    @property
    def complete(self) -> bool:
        return self._result is not None

    def receive(self, message: bytes) -> bytes | None:
        if self._used:
            raise AuthenticationFailed("authentication failed")
        self._used = True
        self._result = self._owner.verify(message, self._peer)
        return None

    def result(self) -> AuthenticatedPeer:
        if self._result is None:
            raise AuthenticationFailed("authentication failed")
        return self._result


class HardwareTokenAuthenticator:
    """``devices`` maps a token id to (ROF identity, token secret)."""

    name = "hwtoken"
    needs = ContextNeeds.NOTHING

    def __init__(
        self,
        devices: Mapping[str, tuple[str, bytes]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._devices = dict(devices)
        self._clock = clock
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<HardwareTokenAuthenticator devices={len(self._devices)}>"

    def authenticate(self, peer: TlsPeer) -> _Exchange:
        """Start an exchange; only on a channel whose server presented a certificate."""
        if peer.channel_binding is None:
            raise AuthenticationFailed("hardware tokens need a certificate-authenticated channel")
        return _Exchange(self, peer)

    def verify(self, message: bytes, peer: TlsPeer) -> AuthenticatedPeer:
        """Check ``device=<id>,otp=<digits>``; each counter is accepted once per device."""
        try:
            fields = dict(part.split("=", 1) for part in message.decode("ascii").split(","))
            device, otp = fields["device"], fields["otp"]
        except (UnicodeDecodeError, ValueError, KeyError):
            raise AuthenticationFailed("authentication failed") from None
        rof, secret = self._devices.get(device, ("", b"\0" * 20))
        now = int(self._clock()) // STEP
        matched = None
        for counter in (now - 1, now, now + 1):
            if hmac.compare_digest(totp(secret, counter).encode(), otp.encode()):
                matched = counter
        with self._lock:
            if matched is None or not rof or matched <= self._last.get(device, -1):
                raise AuthenticationFailed("authentication failed")
            self._last[device] = matched
        return AuthenticatedPeer(
            identity=rof, method="hwtoken", evidence={"device": device}, tls=peer
        )
