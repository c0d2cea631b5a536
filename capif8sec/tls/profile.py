"""The TS 33.210 clause 6.2 TLS profile as data, and a description of any built context (R41).

Nothing here opens a socket.  :func:`describe` reads an ``ssl.SSLContext`` back into plain data so
tests and users can assert the profile (R28-R41) without a network peer.
"""

from __future__ import annotations

import ssl
from typing import Any

from attrs import evolve, frozen

from capif8sec.errors import TlsConfigError

__all__ = [
    "TLS12_DHE_SUITES",
    "TLS12_ECDHE_SUITES",
    "TLS13_SUITES",
    "TS33210",
    "TS33210_TLS13_ONLY",
    "ContextDescription",
    "TlsProfile",
    "describe",
]

#: TS 33.210 6.2.3 / R31: AEAD + forward secrecy only, ECDHE first (RFC 9325 4.1), in this order.
TLS12_ECDHE_SUITES: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
)
#: The mandatory TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, last, with RFC 7919 ffdhe groups >= 3072.
TLS12_DHE_SUITES: tuple[str, ...] = ("DHE-RSA-AES128-GCM-SHA256",)
#: RFC 8446 9.1 / R30: OpenSSL's default TLS 1.3 suites, all allowed (no CCM_8).  Python cannot
#: restrict TLS 1.3 suites per context; :func:`describe` reports what the context offers.
TLS13_SUITES: tuple[str, ...] = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
)

_VERSIONS = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}


@frozen
class TlsProfile:
    """A TLS profile: versions, TLS 1.2 suites and switches.  Only TLS 1.2 and 1.3 can be named.

    Use :data:`TS33210` (TLS 1.2 + 1.3) or :data:`TS33210_TLS13_ONLY`, and
    :meth:`without_dhe` to switch the DHE suite off (RFC 9325 4.1 tension, see the digest 3.5).
    """

    name: str
    minimum_version: ssl.TLSVersion
    dhe: bool = True
    #: DH group file (package data) used for DHE-RSA: ``ffdhe3072`` or ``ffdhe4096``.
    dh_group: str = "ffdhe3072"

    def __attrs_post_init__(self) -> None:
        if self.minimum_version not in _VERSIONS:
            raise TlsConfigError(
                "TS 33.210 6.2 allows TLS 1.2 and TLS 1.3 only; nothing older can be configured"
            )
        if self.dh_group not in ("ffdhe3072", "ffdhe4096"):
            raise TlsConfigError("DHE groups must be RFC 7919 ffdhe3072 or ffdhe4096")

    @property
    def maximum_version(self) -> ssl.TLSVersion:
        """Always TLS 1.3."""
        return ssl.TLSVersion.TLSv1_3

    @property
    def versions(self) -> tuple[str, ...]:
        """Protocol names as ``SSLSocket.version()`` reports them."""
        if self.minimum_version is ssl.TLSVersion.TLSv1_3:
            return ("TLSv1.3",)
        return ("TLSv1.2", "TLSv1.3")

    @property
    def tls12_suites(self) -> tuple[str, ...]:
        """The TLS 1.2 suites, in preference order (empty for TLS 1.3 only)."""
        if self.minimum_version is ssl.TLSVersion.TLSv1_3:
            return ()
        return TLS12_ECDHE_SUITES + (TLS12_DHE_SUITES if self.dhe else ())

    @property
    def tls13_suites(self) -> tuple[str, ...]:
        """The TLS 1.3 suites allowed."""
        return TLS13_SUITES

    def allows(self, version: str | None, suite: str | None) -> bool:
        """Whether a negotiated (version, suite) pair belongs to this profile."""
        if version == "TLSv1.3":
            return suite in self.tls13_suites
        if version == "TLSv1.2" and version in self.versions:
            return suite in self.tls12_suites
        return False

    def without_dhe(self) -> TlsProfile:
        """This profile with DHE-RSA-AES128-GCM-SHA256 switched off."""
        return evolve(self, name=f"{self.name}-no-dhe", dhe=False)

    def apply(self, ctx: ssl.SSLContext) -> None:
        """Configure versions, suites and options on ``ctx`` (used by the builders)."""
        ctx.minimum_version = self.minimum_version
        ctx.maximum_version = self.maximum_version
        suites = self.tls12_suites or TLS12_ECDHE_SUITES  # set_ciphers needs a non-empty list
        ctx.set_ciphers(":".join(suites))
        ctx.options |= (
            ssl.OP_NO_COMPRESSION  # R34
            | ssl.OP_NO_RENEGOTIATION  # R35: no renegotiation at all
            | ssl.OP_CIPHER_SERVER_PREFERENCE  # ECDHE before DHE
            | ssl.OP_NO_TICKET  # R38: TLS 1.2 session tickets off
        )
        if ctx.protocol is ssl.PROTOCOL_TLS_SERVER:
            ctx.num_tickets = 0  # R38: TLS 1.3 tickets off (no resumption, no 0-RTT: R37)


TS33210 = TlsProfile("ts33210", ssl.TLSVersion.TLSv1_2)
TS33210_TLS13_ONLY = TlsProfile("ts33210-tls13", ssl.TLSVersion.TLSv1_3)


@frozen
class ContextDescription:
    """What a context will negotiate, as data (R41)."""

    side: str
    minimum_version: str
    maximum_version: str
    tls12_suites: tuple[str, ...]
    tls13_suites: tuple[str, ...]
    compression: bool
    renegotiation: bool
    session_tickets: bool
    client_auth: str
    check_hostname: bool
    alpn: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "side": self.side,
            "minimum_version": self.minimum_version,
            "maximum_version": self.maximum_version,
            "tls12_suites": list(self.tls12_suites),
            "tls13_suites": list(self.tls13_suites),
            "compression": self.compression,
            "renegotiation": self.renegotiation,
            "session_tickets": self.session_tickets,
            "client_auth": self.client_auth,
            "check_hostname": self.check_hostname,
            "alpn": list(self.alpn),
        }


def describe(ctx: ssl.SSLContext) -> ContextDescription:
    """Read back what ``ctx`` is configured to do (any ``ssl.SSLContext``, ours or not)."""
    ciphers = [c["name"] for c in ctx.get_ciphers()]
    tls13 = tuple(c for c in ciphers if c.startswith("TLS_"))
    tls12 = tuple(c for c in ciphers if not c.startswith("TLS_"))
    if ctx.minimum_version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.MAXIMUM_SUPPORTED):
        tls12 = ()
    server = ctx.protocol is ssl.PROTOCOL_TLS_SERVER
    mode = {
        ssl.CERT_NONE: "none",
        ssl.CERT_OPTIONAL: "optional",
        ssl.CERT_REQUIRED: "required",
    }[ctx.verify_mode]
    return ContextDescription(
        side="server" if server else "client",
        minimum_version=_version_name(ctx.minimum_version),
        maximum_version=_version_name(ctx.maximum_version),
        tls12_suites=tls12,
        tls13_suites=tls13,
        compression=not ctx.options & ssl.OP_NO_COMPRESSION,
        renegotiation=not ctx.options & ssl.OP_NO_RENEGOTIATION,
        session_tickets=(bool(ctx.num_tickets) if server else False)
        or not ctx.options & ssl.OP_NO_TICKET,
        client_auth=mode if server else f"server certificate {mode}",
        check_hostname=ctx.check_hostname,
        alpn=tuple(getattr(ctx, "_capif8sec_alpn", ())),
    )


def _version_name(version: ssl.TLSVersion) -> str:
    if version is ssl.TLSVersion.MINIMUM_SUPPORTED:
        return "minimum supported (unrestricted)"
    if version is ssl.TLSVersion.MAXIMUM_SUPPORTED:
        return "maximum supported (unrestricted)"
    return {
        ssl.TLSVersion.SSLv3: "SSLv3",
        ssl.TLSVersion.TLSv1: "TLSv1",
        ssl.TLSVersion.TLSv1_1: "TLSv1.1",
        ssl.TLSVersion.TLSv1_2: "TLSv1.2",
        ssl.TLSVersion.TLSv1_3: "TLSv1.3",
    }[version]
