"""One exception tree for everything capif8sec refuses.

Every error capif8sec raises on purpose derives from :class:`Capif8secError`, so callers can catch
the whole family, or one branch of it.  Messages name the problem and, where it helps, the field;
they never contain key material, passwords or other secrets.

::

    Capif8secError
    +-- CertificateError              bytes that are not a usable certificate / CRL
    |   +-- CertificateParseError     not PEM/DER X.509 at all, truncated, too large, ...
    |   +-- CrlError                  a CRL that cannot be used (bad signature, stale, SHA-1, ...)
    |   +-- ChainValidationError      path building / validity / revocation failed
    |       +-- CertificateExpired    a certificate is expired or not yet valid
    |       +-- CertificateRevoked    a certificate is on its issuer's CRL
    |       +-- RevocationUnknown     no usable CRL to decide revocation
    +-- ProfileViolation              parsed fine, but breaks a TS 33.310 profile
    +-- TlsConfigError                an inconsistent or insecure TLS configuration
    +-- HandshakeRejected             a finished handshake fails the post-handshake check
    +-- AuthenticationFailed          the peer did not prove its credential
    +-- PolicyDenied                  the authenticated peer may not do this
    +-- PluginError                   an authenticator plugin could not be loaded or is invalid
    +-- UsageError                    the caller passed arguments that make no sense
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from capif8sec.certs.report import Finding, Report

__all__ = [
    "AuthenticationFailed",
    "Capif8secError",
    "CertificateError",
    "CertificateExpired",
    "CertificateParseError",
    "CertificateRevoked",
    "ChainValidationError",
    "CrlError",
    "HandshakeRejected",
    "PluginError",
    "PolicyDenied",
    "ProfileViolation",
    "RevocationUnknown",
    "TlsConfigError",
    "UsageError",
]


class Capif8secError(Exception):
    """Base class of every error capif8sec raises on purpose."""


class UsageError(Capif8secError, ValueError):
    """The caller asked for something that cannot be done (unknown profile, bad option, ...)."""


class CertificateError(Capif8secError):
    """A certificate or CRL could not be used."""


class CertificateParseError(CertificateError, ValueError):
    """The input is not a parseable X.509 certificate: wrong format, truncated, too large."""


class CrlError(CertificateError):
    """A CRL is unusable: unparseable, wrongly signed, from the wrong issuer, stale, weak hash."""


class ChainValidationError(CertificateError):
    """The certificate path could not be validated.

    ``rule`` names the catalogue rule (e.g. ``chain.path``) that failed and ``findings`` holds
    the structured findings behind the failure, when there are any.
    """

    def __init__(
        self, message: str, *, rule: str = "chain.path", findings: Sequence[Finding] = ()
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.findings = tuple(findings)


class CertificateExpired(ChainValidationError):
    """A certificate of the chain is expired or not yet valid at the validation time."""


class CertificateRevoked(ChainValidationError):
    """A certificate of the chain is listed on its issuer's CRL."""

    def __init__(
        self,
        message: str,
        *,
        serial_number: int,
        reason: str | None,
        revocation_date: _dt.datetime | None,
    ) -> None:
        super().__init__(message, rule="chain.revocation")
        self.serial_number = serial_number
        self.reason = reason
        self.revocation_date = revocation_date


class RevocationUnknown(ChainValidationError):
    """No usable CRL was available to decide whether a certificate is revoked (fail closed)."""


class ProfileViolation(Capif8secError):
    """A certificate parsed fine but does not conform to the selected TS 33.310 profile.

    ``reports`` holds the lint report of every non-compliant element; ``rule`` names the chain
    rule that failed (``chain.element_profile`` or ``chain.issued_by_tls_ca``) when the
    violation was found during chain validation.
    """

    def __init__(
        self, message: str, *, reports: Sequence[Report] = (), rule: str = "chain.element_profile"
    ) -> None:
        super().__init__(message)
        self.reports = tuple(reports)
        self.rule = rule


class TlsConfigError(Capif8secError):
    """A TLS configuration is inconsistent or would break the TS 33.210 profile."""


class HandshakeRejected(Capif8secError):
    """A completed handshake failed the post-handshake check; the connection has been closed."""


class AuthenticationFailed(Capif8secError):
    """The peer did not prove possession of a valid credential (deliberately unspecific)."""


class PolicyDenied(Capif8secError):
    """The authenticated peer is not allowed to perform the request."""


class PluginError(Capif8secError):
    """An authenticator plugin could not be loaded or does not satisfy the interface."""
