"""ROF authenticators: certificate, pre-shared key, password; credential stores; plugins."""

from capif8sec.auth.base import AuthenticatedPeer, Authenticator, ContextNeeds, Exchange, Method
from capif8sec.auth.credentials import (
    MIN_PSK_BYTES,
    CredentialStore,
    PskCredential,
    ScramVerifier,
    Validity,
)

__all__ = [
    "MIN_PSK_BYTES",
    "AuthenticatedPeer",
    "Authenticator",
    "ContextNeeds",
    "CredentialStore",
    "Exchange",
    "Method",
    "PskCredential",
    "ScramVerifier",
    "Validity",
]
