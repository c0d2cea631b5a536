"""CAPIF-8 messages (TS 23.222 clause 8.31) and the guard that checks them against the policy.

- :mod:`capif8sec.capif8.messages` -- the resource owner authorization request and response
  and the RO-triggered revocation, strict JSON in and out;
- :mod:`capif8sec.capif8.guard` -- :class:`MessageGuard`, which checks each message against
  the authenticated peer and the policy before the application sees it.
"""

from capif8sec.capif8.guard import MessageGuard, MessageRefused
from capif8sec.capif8.messages import (
    MAX_ID_CHARS,
    MAX_ITEMS,
    MAX_JSON_BYTES,
    MAX_OPERATIONS,
    MAX_TEXT_CHARS,
    ApiInvokerInfo,
    AppServiceInfo,
    ItemDecision,
    MessageError,
    RequestedItem,
    ResourceOwnerAuthorizationRequest,
    ResourceOwnerAuthorizationResponse,
    RevocationNotification,
)

__all__ = [
    "MAX_ID_CHARS",
    "MAX_ITEMS",
    "MAX_JSON_BYTES",
    "MAX_OPERATIONS",
    "MAX_TEXT_CHARS",
    "ApiInvokerInfo",
    "AppServiceInfo",
    "ItemDecision",
    "MessageError",
    "MessageGuard",
    "MessageRefused",
    "RequestedItem",
    "ResourceOwnerAuthorizationRequest",
    "ResourceOwnerAuthorizationResponse",
    "RevocationNotification",
]
