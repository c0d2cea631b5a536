"""TS 33.310 certificate profiles: parsing, lint, chain validation and CRL checks.

::

    from capif8sec import certs

    report = certs.lint(pem_bytes, "tls-entity", role="server")
    report.compliant, report.findings

    validator = certs.ChainValidator(root_pem, crls=[crl_pem])
    verified = validator.verify(leaf_pem, [tls_ca_pem], role="client")
    verified.identities.uris
"""

from capif8sec.certs.chain import ChainValidator, CrlFetcher, VerifiedChain
from capif8sec.certs.identities import CertificateIdentities, identities_of
from capif8sec.certs.lint import lint
from capif8sec.certs.parse import load_certificate, load_certificates, load_crl
from capif8sec.certs.profiles import (
    CHAIN_RULES,
    DEVIATIONS,
    INTERCONNECTION_CA,
    PROFILES,
    SBA_NF,
    TLS_CA,
    TLS_ENTITY,
    Profile,
    all_rules,
    get_profile,
)
from capif8sec.certs.report import Finding, Report, Severity
from capif8sec.certs.rules import Rule

__all__ = [
    "CHAIN_RULES",
    "DEVIATIONS",
    "INTERCONNECTION_CA",
    "PROFILES",
    "SBA_NF",
    "TLS_CA",
    "TLS_ENTITY",
    "CertificateIdentities",
    "ChainValidator",
    "CrlFetcher",
    "Finding",
    "Profile",
    "Report",
    "Rule",
    "Severity",
    "VerifiedChain",
    "all_rules",
    "get_profile",
    "identities_of",
    "lint",
    "load_certificate",
    "load_certificates",
    "load_crl",
]
