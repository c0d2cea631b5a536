"""The authenticator interface: from a checked TLS connection to an authenticated ROF.

An :class:`Authenticator` says what it needs from the TLS context (:class:`ContextNeeds`) so the
builders can configure it, and turns a finished, checked connection (a
:class:`~capif8sec.tls.TlsPeer`) -- plus, for in-channel methods, the messages of a short
exchange -- into an :class:`AuthenticatedPeer`, or raises
:class:`~capif8sec.errors.AuthenticationFailed` without saying which part failed.

Methods with an exchange are sans-I/O state machines (:class:`Exchange`): bytes in, bytes out,
no sockets, so they run over any transport (raw TLS, HTTP headers per RFC 7804, ...).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from attrs import field, frozen

from capif8sec.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from capif8sec.tls.check import TlsPeer

__all__ = [
    "AuthenticatedPeer",
    "Authenticator",
    "ContextNeeds",
    "Exchange",
    "Method",
    "SecurityMethod",
    "UnknownSecurityMethod",
    "parse_security_method",
    "security_method_of",
]


class Method(enum.StrEnum):
    """How the ROF proved itself."""

    CERTIFICATE = "certificate"
    PSK = "psk"  # TLS-level external PSK (RFC 8446 psk_dhe_ke)
    PSK_IN_CHANNEL = "psk-in-channel"  # PSK challenge-response bound to a cert-authenticated TLS
    PASSWORD = "password"  # noqa: S105 -- SCRAM-SHA-256(-PLUS), a method name


class SecurityMethod(enum.StrEnum):
    """The security-method identifiers of TS 29.222 (``SecurityMethod``), as exact strings (R61)."""

    PSK = "PSK"
    PKI = "PKI"
    OAUTH = "OAUTH"


@frozen
class UnknownSecurityMethod:
    """A security-method string this version does not know, kept as an opaque value (R61).

    It never equals, and never maps to, a known :class:`SecurityMethod`.
    """

    value: str


#: Longest security-method string accepted (29.222 values are a few characters).
MAX_SECURITY_METHOD_CHARS = 64


def parse_security_method(text: object) -> SecurityMethod | UnknownSecurityMethod:
    """Read a TS 29.222 security-method identifier (R61).

    ``"PSK"``, ``"PKI"`` and ``"OAUTH"`` exactly (case matters: ``"psk"`` is not ``"PSK"``);
    any other printable ASCII string of 1 to 64 characters is tolerated as an
    :class:`UnknownSecurityMethod` (forward compatibility).

    :raises UsageError: not a string, empty, too long, or not printable ASCII.
    """
    if (
        not isinstance(text, str)
        or not 0 < len(text) <= MAX_SECURITY_METHOD_CHARS
        or not (text.isascii() and text.isprintable())
    ):
        raise UsageError("a security method is 1 to 64 printable ASCII characters")
    try:
        return SecurityMethod(text)
    except ValueError:
        return UnknownSecurityMethod(text)


_SECURITY_METHODS = {
    "certificate": SecurityMethod.PKI,
    "psk": SecurityMethod.PSK,
    "psk-in-channel": SecurityMethod.PSK,
}


def security_method_of(method: str) -> SecurityMethod | None:
    """The TS 29.222 security method an authentication method corresponds to, if any.

    A certificate is ``PKI``; a TLS-level or in-channel PSK is ``PSK``.  A password (SCRAM) and
    plugin methods have no 29.222 identifier: ``None``, never a guess.
    """
    return _SECURITY_METHODS.get(str(method))


class ContextNeeds(enum.Enum):
    """What an authenticator needs the TLS context to do."""

    CLIENT_CERTIFICATE = "client certificate"
    PSK_CALLBACKS = "psk callbacks"
    NOTHING = "nothing"


@frozen
class AuthenticatedPeer:
    """An ROF (or CCF) whose credential was verified.

    ``identity`` comes only from the authenticated credential (R56): a certificate SAN, a PSK
    identity or a SCRAM username.  ``evidence`` holds non-secret facts (certificate fingerprint,
    PSK identity and key id, SCRAM username, channel binding type); never key material.
    """

    identity: str
    #: A :class:`Method` for the built-in authenticators; plugins use their own names.
    method: str
    evidence: Mapping[str, str] = field(factory=dict)
    tls: TlsPeer | None = field(default=None, repr=False, eq=False)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        security = security_method_of(self.method)
        return {
            "identity": self.identity,
            "method": str(self.method),
            "security_method": str(security) if security is not None else None,
            "evidence": dict(self.evidence),
            "tls": self.tls.as_dict() if self.tls is not None else None,
        }


class Exchange(Protocol):
    """A sans-I/O, server-side authentication exchange (h11 style).

    Feed each client message to :meth:`receive`; send back what it returns.  When
    :attr:`complete` is true, :meth:`result` gives the authenticated peer.  Any failure raises
    :class:`~capif8sec.errors.AuthenticationFailed` and the exchange is dead.
    """

    @property
    def complete(self) -> bool:
        """Whether the exchange has finished successfully."""
        ...

    def receive(self, message: bytes) -> bytes | None:
        """Process one client message; return the reply to send (None: nothing to send)."""
        ...

    def result(self) -> AuthenticatedPeer:
        """The authenticated peer (only once :attr:`complete`)."""
        ...


@runtime_checkable
class Authenticator(Protocol):
    """What every authenticator, built-in or plugin, provides."""

    #: Registry name, e.g. ``certificate``, ``psk``, ``scram``.
    name: str
    #: What the TLS context must be configured for.
    needs: ContextNeeds

    def authenticate(self, peer: TlsPeer) -> AuthenticatedPeer | Exchange:
        """Authenticate from the checked connection alone, or start an in-channel exchange."""
        ...
