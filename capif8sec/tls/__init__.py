"""TS 33.210 clause 6.2 TLS: profiles as data, context builders, the post-handshake check.

::

    from capif8sec import tls

    ctx = tls.server_context(
        present=tls.Identity.from_files("ccf-server.pem", "ccf-server.key"),
        verify=tls.PeerVerification([root_pem], crls=[crl_pem]),
    )
    # ... accept a connection with ctx, then, before reading a byte of application data:
    peer = tls.check_connection(ssl_socket)
    peer.identities.uris
"""

from capif8sec.tls.check import TlsPeer, check_connection, peer_chain_der
from capif8sec.tls.context import (
    CLIENT_CERTIFICATE_NOT_REQUESTED,
    PRESENT_NO_CERTIFICATE,
    CapifContext,
    Identity,
    PeerVerification,
    client_context,
    server_context,
)
from capif8sec.tls.profile import (
    TLS12_DHE_SUITES,
    TLS12_ECDHE_SUITES,
    TLS13_SUITES,
    TS33210,
    TS33210_TLS13_ONLY,
    ContextDescription,
    TlsProfile,
    describe,
)

__all__ = [
    "CLIENT_CERTIFICATE_NOT_REQUESTED",
    "PRESENT_NO_CERTIFICATE",
    "TLS12_DHE_SUITES",
    "TLS12_ECDHE_SUITES",
    "TLS13_SUITES",
    "TS33210",
    "TS33210_TLS13_ONLY",
    "CapifContext",
    "ContextDescription",
    "Identity",
    "PeerVerification",
    "TlsPeer",
    "TlsProfile",
    "check_connection",
    "client_context",
    "describe",
    "peer_chain_der",
    "server_context",
]
