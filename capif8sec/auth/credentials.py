"""Credential records and the store interface the ROF authenticators read from.

Records are frozen values; secret fields never appear in ``repr``.  Stores are injected: the
authenticators never open files or sockets themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from attrs import field, frozen

from capif8sec.errors import UsageError

__all__ = [
    "MIN_PSK_BYTES",
    "CredentialStore",
    "PskCredential",
    "ScramVerifier",
    "Validity",
]

#: R42: external PSKs shorter than 128 bits are refused at load.
MIN_PSK_BYTES = 16


@frozen
class Validity:
    """A credential's validity window, for rotation (a new key beside the old, then retired)."""

    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def active(self, at: dt.datetime) -> bool:
        """Whether the credential may be used at ``at``."""
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        if self.not_before is not None and at < self.not_before:
            return False
        return not (self.not_after is not None and at >= self.not_after)


def _psk_identity(value: bytes) -> bytes:
    if not isinstance(value, bytes) or not 1 <= len(value) <= 65535:
        raise UsageError("a PSK identity is 1 to 65535 bytes (R45)")
    return value


def _psk_key(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) < MIN_PSK_BYTES:
        raise UsageError(f"a PSK must be at least {MIN_PSK_BYTES} bytes (R42)")
    return value


@frozen
class PskCredential:
    """An external PSK bound to one (ROF identity, CCF identity) pair (R44).

    ``identity`` is compared as exact bytes (R45).  ``key`` never appears in ``repr``.
    """

    identity: bytes = field(converter=_psk_identity)
    key: bytes = field(converter=_psk_key, repr=False)
    ccf_identity: str
    key_id: str = ""
    validity: Validity = Validity()


@frozen
class ScramVerifier:
    """What the server stores for a SCRAM-SHA-256 user (R53): never the password."""

    username: str
    salt: bytes = field(repr=False)
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    validity: Validity = Validity()


@runtime_checkable
class CredentialStore(Protocol):
    """Where authenticators look ROF credentials up.  Implementations must be thread-safe.

    Lookups return only credentials active at ``at`` (not revoked, inside their window); a
    revocation is seen by the next lookup (R62).
    """

    def psk_credentials(self, identity: bytes, *, at: dt.datetime) -> Sequence[PskCredential]:
        """The active PSKs stored under ``identity`` (several during a rotation)."""
        ...

    def scram_verifier(self, username: str, *, at: dt.datetime) -> ScramVerifier | None:
        """The active SCRAM verifier of ``username``, or None."""
        ...
