"""Messages and peers for the CAPIF-8 tests."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from capif8sec.auth.base import AuthenticatedPeer, Method
from capif8sec.certs.identities import CertificateIdentities
from capif8sec.tls.check import TlsPeer

OWNER_A = "msisdn-491700000001"
OWNER_B = "msisdn-491700000002"
NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)

REQUEST: dict[str, Any] = {
    "requestId": "req-0001",
    "apiInvokerInfo": {"apiInvokerId": "INV-42", "apiInvokerName": "Weather app"},
    "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
    "purposeOfDataProcessing": "service-assurance",
    "resOwnerId": OWNER_A,
    "requestedItems": [
        {"apiName": "3gpp-monitoring-event", "operations": ["subscribe", "read"]},
        {"apiName": "3gpp-as-session-with-qos", "resource": "sessions"},
    ],
    "expiry": "2026-12-31T00:00:00Z",
}
RESPONSE: dict[str, Any] = {
    "requestId": "req-0001",
    "resOwnerId": OWNER_A,
    "decisions": [
        {"apiName": "3gpp-monitoring-event", "granted": True, "scope": ["read"]},
        {"apiName": "3gpp-as-session-with-qos", "resource": "sessions", "granted": False},
    ],
    "expiry": "2026-12-01T00:00:00Z",
}
REVOCATION: dict[str, Any] = {
    "resOwnerId": OWNER_A,
    "apiInvokerId": "INV-42",
    "appServiceInfo": {"aspId": "asp-1", "appId": "app-1"},
    "items": [{"apiName": "3gpp-monitoring-event"}],
    "reason": "the owner withdrew consent",
}


def fresh(template: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(template)


def cert_peer(*uris: str, dns: tuple[str, ...] = ()) -> AuthenticatedPeer:
    ids = CertificateIdentities(tuple(uris), dns)
    tls = TlsPeer(
        "server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "certificate", ids, None, None, None
    )
    return AuthenticatedPeer(ids.primary() or "?", Method.CERTIFICATE, {}, tls)


def psk_peer(identity: str) -> AuthenticatedPeer:
    return AuthenticatedPeer(identity, Method.PSK, {"psk_identity": identity, "key_id": "k"})


def scram_peer(username: str) -> AuthenticatedPeer:
    return AuthenticatedPeer(username, Method.PASSWORD, {"username": username})
