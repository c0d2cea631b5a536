"""Authenticated peers for the policy tests, shaped as the built-in authenticators make them."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.tls.check import TlsPeer

if TYPE_CHECKING:
    from capif8sec.testing import TestPKI

#: A secret-looking value planted in evidence; it must never reach an audit record or a log.
PLANTED_SECRET = "s3cr3t-PSK-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def tls_peer(
    identities: CertificateIdentities | None,
    *,
    authentication: str = "certificate",
    psk_identity: str | None = None,
) -> TlsPeer:
    return TlsPeer(
        "server",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        authentication,
        identities,
        None,
        None,
        None,
        psk_identity=psk_identity,
        psk_key_id="k1" if psk_identity else None,
    )


def cert_peer(
    *uris: str,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    cn: str | None = None,
    evidence: dict[str, str] | None = None,
) -> AuthenticatedPeer:
    """A certificate-authenticated peer whose SAN holds ``uris``, ``dns`` and ``ips``."""
    ids = CertificateIdentities(
        tuple(uris), tuple(dns), tuple(ipaddress.ip_address(a) for a in ips), cn
    )
    primary = ids.primary(legacy_cn=True) or "?"
    return AuthenticatedPeer(
        primary,
        Method.CERTIFICATE,
        evidence if evidence is not None else {"certificate_sha256": "ab" * 32},
        tls_peer(ids),
    )


def psk_peer(identity: str, *, evidence: dict[str, str] | None = None) -> AuthenticatedPeer:
    """A TLS-level PSK peer."""
    return AuthenticatedPeer(
        identity,
        Method.PSK,
        evidence if evidence is not None else {"psk_identity": identity, "key_id": "k1"},
        tls_peer(None, authentication="psk", psk_identity=identity),
    )


def in_channel_peer(identity: str) -> AuthenticatedPeer:
    """An in-channel PSK peer (no TlsPeer attached, as InChannelPskServer makes it)."""
    return AuthenticatedPeer(identity, Method.PSK_IN_CHANNEL, {"psk_identity": identity})


def scram_peer(username: str, *, evidence: dict[str, str] | None = None) -> AuthenticatedPeer:
    """A SCRAM (password) peer."""
    return AuthenticatedPeer(
        username,
        Method.PASSWORD,
        evidence if evidence is not None else {"username": username},
    )


def verified_cert_peer(rof_id: str) -> AuthenticatedPeer:
    """A peer over a real certificate chain from the test PKI, validated by ChainValidator,
    turned into a peer by the certificate authenticator (URI-ID ``urn:capif:rof:<rof_id>``)."""
    from capif8sec.auth.certificate import CertificateAuthenticator
    from capif8sec.certs import ChainValidator
    from capif8sec.testing import TestPKI

    global _PKI
    if _PKI is None:
        _PKI = TestPKI()
    issued = _PKI.client_cert(rof_id)
    validator = ChainValidator(_PKI.trust_anchor_pem, crls=[_PKI.crl()])
    verified = validator.verify(issued.cert, issued.intermediates, role="client")
    tls = TlsPeer(
        "server",
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "certificate",
        verified.identities,
        verified,
        None,
        None,
    )
    return CertificateAuthenticator().authenticate(tls)


_PKI: TestPKI | None = None
