"""capif8sec: securing the 3GPP CAPIF-8 reference point (ROF <-> AzF/CCF).

The curated public API.  Submodules:

- :mod:`capif8sec.certs` -- TS 33.310 profiles, lint, chain and CRL validation;
- :mod:`capif8sec.tls` -- TS 33.210 context builders, the post-handshake check, TLS-level PSK;
- :mod:`capif8sec.auth` -- ROF authenticators (certificate, PSK, SCRAM), stores, plugins;
- :mod:`capif8sec.policy` -- identities, RFC 9525 matching, the policy engine;
- :mod:`capif8sec.capif8` -- CAPIF-8 messages and the message guard;
- :mod:`capif8sec.integrations` -- asyncio/blocking helpers, the reference AzF server, probe;
- :mod:`capif8sec.testing` -- a conformant test PKI (trustme-like);
- :mod:`capif8sec.errors` -- the exception tree.
"""

from capif8sec.certs import (
    ChainValidator,
    Finding,
    Report,
    Severity,
    VerifiedChain,
    all_rules,
    lint,
)
from capif8sec.errors import (
    AuthenticationFailed,
    Capif8secError,
    CertificateError,
    CertificateExpired,
    CertificateParseError,
    CertificateRevoked,
    ChainValidationError,
    CrlError,
    HandshakeRejected,
    PluginError,
    PolicyDenied,
    ProfileViolation,
    RevocationUnknown,
    TlsConfigError,
    UsageError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AuthenticationFailed",
    "Capif8secError",
    "CertificateError",
    "CertificateExpired",
    "CertificateParseError",
    "CertificateRevoked",
    "ChainValidationError",
    "ChainValidator",
    "CrlError",
    "Finding",
    "HandshakeRejected",
    "PluginError",
    "PolicyDenied",
    "ProfileViolation",
    "Report",
    "RevocationUnknown",
    "Severity",
    "TlsConfigError",
    "UsageError",
    "VerifiedChain",
    "__version__",
    "all_rules",
    "lint",
]
