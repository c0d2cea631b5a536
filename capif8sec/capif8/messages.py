"""CAPIF-8 resource owner authorization messages (TS 23.222 clause 8.31), typed and strict.

Three messages, as frozen attrs value objects with JSON (de)serialization:

* :class:`ResourceOwnerAuthorizationRequest` -- CCF to ROF, the "resource owner authorization
  information request": the API invoker, the application service (ASP and application ids),
  the purpose of data processing, the resource owner and the items (service APIs, optionally a
  resource and finer-grained operations) the invoker asks for;
* :class:`ResourceOwnerAuthorizationResponse` -- ROF to CCF, the owner's decision per item
  (granted or denied, and the granted scope of operations) and the expiry of the
  authorization;
* :class:`RevocationNotification` -- ROF to CCF, an RO-triggered revocation of earlier
  authorizations (some items, or all of them).

TS 23.222 names the information elements but gives no encoding, and TS 29.222 defines no
CAPIF-8 API (spec digest section 5), so the field names here are capif8sec's own, in the
camelCase JSON style of TS 29.222 (``resOwnerId`` as in CAPIF_Security_API).

Parsing is strict, on purpose: this is a security boundary.

* Input is UTF-8 JSON of at most :data:`MAX_JSON_BYTES`; duplicate keys, ``NaN`` and
  ``Infinity``, and nesting deeper than Python's parser allows are refused.
* **Unknown fields are refused, at every level**, not ignored: a field this version does not
  know cannot silently change what a message means (a later version of the API would be a new
  API version).  Absent optional fields are simply omitted; ``null`` is refused.
* Types are checked exactly (a number is not a string, ``1`` is not ``true``); identifiers
  are 1 to 128 visible ASCII characters, free text at most 256 characters without control
  characters; lists are bounded (:data:`MAX_ITEMS`, :data:`MAX_OPERATIONS`); times are
  RFC 3339 with an explicit offset.
* Every refusal is a :class:`MessageError` whose ``path`` names the field, such as
  ``requestedItems[2].operations[0]``.

Objects built directly in Python are validated the same way (attrs validators).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar

from attrs import field, frozen

from capif8sec.errors import UsageError
from capif8sec.policy.model import canonical_owner

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
    "RequestedItem",
    "ResourceOwnerAuthorizationRequest",
    "ResourceOwnerAuthorizationResponse",
    "RevocationNotification",
]

#: Largest JSON document accepted (bytes, UTF-8).
MAX_JSON_BYTES = 64 * 1024
#: Most items in a request, a response or a revocation.
MAX_ITEMS = 64
#: Most operations per item.
MAX_OPERATIONS = 32
#: Longest identifier (requestId, apiInvokerId, aspId, appId, apiName, resource).
MAX_ID_CHARS = 128
#: Longest free text (apiInvokerName, purposeOfDataProcessing, reason).
MAX_TEXT_CHARS = 256

_ID = re.compile(r"[!-~]{1,128}")
_OPERATION = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")

_T = TypeVar("_T")


class MessageError(UsageError):
    """A CAPIF-8 message is malformed; ``path`` names the field at fault (``""``: the whole
    document), ``problem`` says what is wrong.  The sender's fault, in an HTTP server: 400."""

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem

    def within(self, prefix: str) -> MessageError:
        """The same error with ``prefix`` put in front of its path."""
        if not self.path:
            path = prefix
        elif self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}"
        return MessageError(self.problem, path)


# -- value checks (shared by the validators and the parser) ----------------------------------


def _identifier(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if not isinstance(value, str):
            raise MessageError("expected a string", name)
        if not _ID.fullmatch(value):
            raise MessageError(
                f"expected 1 to {MAX_ID_CHARS} visible ASCII characters (no spaces)", name
            )

    return check


def _optional_identifier(name: str) -> Callable[[Any, Any, Any], None]:
    inner = _identifier(name)

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            inner(instance, attribute, value)

    return check


def _check_text(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise MessageError("expected a string", name)
    if not value or len(value) > MAX_TEXT_CHARS:
        raise MessageError(f"expected 1 to {MAX_TEXT_CHARS} characters", name)
    if any(c < " " or "\x7f" <= c <= "\x9f" or "\ud800" <= c <= "\udfff" for c in value):
        raise MessageError("control characters and lone surrogates are not allowed", name)


def _text(name: str, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is None and optional:
            return
        _check_text(value, name)

    return check


def _owner(value: Any) -> str:
    """A resource owner id, in canonical form (the domain of an extid in lower case)."""
    if not isinstance(value, str):
        raise MessageError("expected a string", "resOwnerId")
    try:
        return canonical_owner(value)
    except UsageError:
        raise MessageError(
            "not a resource owner id ('msisdn-' and 5 to 15 digits, or 'extid-<local>@<domain>')",
            "resOwnerId",
        ) from None


def _operations_check(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, tuple):
            raise MessageError("expected a list", name)
        if not value:
            raise MessageError("must not be empty (leave it out instead)", name)
        if len(value) > MAX_OPERATIONS:
            raise MessageError(f"more than {MAX_OPERATIONS} operations", name)
        for i, op in enumerate(value):
            if not isinstance(op, str) or not _OPERATION.fullmatch(op):
                raise MessageError(
                    "expected an operation name (a letter, then up to 63 letters, digits, "
                    "'_', '.', '-')",
                    f"{name}[{i}]",
                )
        if len(set(value)) != len(value):
            raise MessageError("an operation is listed twice", name)

    return check


def _as_datetime(value: object, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise MessageError("expected a datetime", name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise MessageError("a time must carry a time zone (aware datetime)", name)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00, 9999-12-31T23:59-01:00: no UTC instant
        raise MessageError("the time is outside the range of UTC datetimes", name) from None


def _expiry(value: dt.datetime) -> dt.datetime:
    return _as_datetime(value, "expiry")


def _optional_expiry(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _as_datetime(value, "expiry")


def _as_tuple(value: object, name: str) -> tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise MessageError("expected a list", name)


def _requested_items(value: Iterable[RequestedItem]) -> tuple[RequestedItem, ...]:
    return _as_tuple(value, "requestedItems")


def _decisions(value: Iterable[ItemDecision]) -> tuple[ItemDecision, ...]:
    return _as_tuple(value, "decisions")


def _revoked_items(value: Iterable[RequestedItem] | None) -> tuple[RequestedItem, ...] | None:
    return None if value is None else _as_tuple(value, "items")


def _operations(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _as_tuple(value, "operations")


def _scope(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _as_tuple(value, "scope")


def _format_time(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


# -- JSON reading helpers --------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise MessageError(f"{name} is not allowed in a CAPIF-8 message")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MessageError(f"the field {key!r} appears twice")
        out[key] = value
    return out


def _load_json(data: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise MessageError("the document is not valid Unicode text") from None
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise MessageError("a message is bytes or str")
    if len(raw) > MAX_JSON_BYTES:
        raise MessageError(f"the document is larger than {MAX_JSON_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError("the document is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except MessageError:
        raise
    except RecursionError:
        raise MessageError("the document is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing very long numbers
        raise MessageError(f"not valid JSON: {exc}") from None


class _Reader:
    """Read one JSON object against a known set of fields, with paths in errors."""

    def __init__(self, value: Any, fields: Iterable[str], path: str = "") -> None:
        if not isinstance(value, dict):
            raise MessageError("expected a JSON object", path)
        self.value = value
        self.path = path
        known = set(fields)
        for key in value:
            if key not in known:
                raise MessageError("unknown field (refused, see the module doc)", self._at(key))

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, *, required: bool) -> Any:
        if key not in self.value:
            if required:
                raise MessageError("missing (required)", self._at(key))
            return None
        value = self.value[key]
        if value is None:
            raise MessageError("null is not allowed (leave the field out)", self._at(key))
        return value

    def string(self, key: str, *, required: bool = True) -> str | None:
        value = self.get(key, required=required)
        if value is not None and not isinstance(value, str):
            raise MessageError("expected a string", self._at(key))
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.get(key, required=False)
        if value is not None and not isinstance(value, bool):
            raise MessageError("expected true or false", self._at(key))
        return value

    def array(self, key: str, *, required: bool, limit: int) -> list[Any] | None:
        value = self.get(key, required=required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise MessageError("expected a list", self._at(key))
        if len(value) > limit:
            raise MessageError(f"more than {limit} elements", self._at(key))
        return value

    def strings(self, key: str, *, limit: int) -> tuple[str, ...] | None:
        values = self.array(key, required=False, limit=limit)
        if values is None:
            return None
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise MessageError("expected a string", f"{self._at(key)}[{i}]")
        return tuple(values)

    def time(self, key: str, *, required: bool) -> dt.datetime | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        if not _RFC3339.fullmatch(value):
            raise MessageError(
                "expected an RFC 3339 time with an offset, e.g. 2026-11-28T10:00:00Z",
                self._at(key),
            )
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
        except (ValueError, OverflowError):
            raise MessageError("not a valid date and time", self._at(key)) from None

    def build(self, make: Callable[[], _T]) -> _T:
        """Build the object; its validators' paths are relative to this object."""
        try:
            return make()
        except MessageError as exc:
            raise exc.within(self.path) if self.path else exc from None


def _each(values: Sequence[Any], path: str, parse: Callable[[Any, str], _T]) -> tuple[_T, ...]:
    return tuple(parse(v, f"{path}[{i}]") for i, v in enumerate(values))


class _Message:
    """JSON in and out for the top-level messages."""

    __slots__ = ()

    _fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_json(cls: type[_M], data: bytes | bytearray | memoryview | str) -> _M:
        """Parse and validate a JSON document.

        :raises MessageError: anything wrong, with the path of the field.
        """
        return cls.from_dict(_load_json(data))

    @classmethod
    def from_dict(cls: type[_M], value: Any) -> _M:  # pragma: no cover - overridden
        """Validate an already-decoded JSON value."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - overridden
        """The JSON object (a dict)."""
        raise NotImplementedError

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


_M = TypeVar("_M", bound=_Message)


# -- the models ------------------------------------------------------------------------------


@frozen
class ApiInvokerInfo:
    """The API invoker that asks for access (``apiInvokerInfo``)."""

    api_invoker_id: str = field(validator=_identifier("apiInvokerId"))
    api_invoker_name: str | None = field(
        default=None, validator=_text("apiInvokerName", optional=True)
    )

    @classmethod
    def from_dict(cls, value: Any, path: str = "apiInvokerInfo") -> ApiInvokerInfo:
        """Validate a decoded JSON object."""
        r = _Reader(value, ("apiInvokerId", "apiInvokerName"), path)
        invoker = r.string("apiInvokerId")
        name = r.string("apiInvokerName", required=False)
        return r.build(lambda: cls(invoker, name))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        out: dict[str, Any] = {"apiInvokerId": self.api_invoker_id}
        if self.api_invoker_name is not None:
            out["apiInvokerName"] = self.api_invoker_name
        return out


def _at_least_one(instance: AppServiceInfo, _attribute: Any, _value: Any) -> None:
    if instance.asp_id is None and instance.app_id is None:
        raise MessageError("give aspId, appId or both")


@frozen
class AppServiceInfo:
    """The application service (``appServiceInfo``): the ASP and/or the application."""

    asp_id: str | None = field(default=None, validator=_optional_identifier("aspId"))
    app_id: str | None = field(
        default=None, validator=[_optional_identifier("appId"), _at_least_one]
    )

    @classmethod
    def from_dict(cls, value: Any, path: str = "appServiceInfo") -> AppServiceInfo:
        """Validate a decoded JSON object."""
        r = _Reader(value, ("aspId", "appId"), path)
        asp = r.string("aspId", required=False)
        app = r.string("appId", required=False)
        return r.build(lambda: cls(asp, app))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        out: dict[str, Any] = {}
        if self.asp_id is not None:
            out["aspId"] = self.asp_id
        if self.app_id is not None:
            out["appId"] = self.app_id
        return out


@frozen
class RequestedItem:
    """One thing asked for: a service API, optionally one resource of it, optionally limited
    to some operations (finer-grained access).  ``key`` = (api name, resource) identifies it.
    """

    api_name: str = field(validator=_identifier("apiName"))
    resource: str | None = field(default=None, validator=_optional_identifier("resource"))
    operations: tuple[str, ...] | None = field(
        default=None, converter=_operations, validator=_operations_check("operations")
    )

    @property
    def key(self) -> tuple[str, str | None]:
        """What identifies the item within a message."""
        return (self.api_name, self.resource)

    @classmethod
    def from_dict(cls, value: Any, path: str) -> RequestedItem:
        """Validate a decoded JSON object."""
        r = _Reader(value, ("apiName", "resource", "operations"), path)
        name = r.string("apiName")
        resource = r.string("resource", required=False)
        ops = r.strings("operations", limit=MAX_OPERATIONS)
        return r.build(lambda: cls(name, resource, ops))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        out: dict[str, Any] = {"apiName": self.api_name}
        if self.resource is not None:
            out["resource"] = self.resource
        if self.operations is not None:
            out["operations"] = list(self.operations)
        return out


def _items_check(name: str, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, tuple):
            raise MessageError("expected a list", name)
        if not value:
            raise MessageError("must not be empty", name)
        if len(value) > MAX_ITEMS:
            raise MessageError(f"more than {MAX_ITEMS} items", name)
        seen: set[tuple[str, str | None]] = set()
        for i, item in enumerate(value):
            if not isinstance(item, (RequestedItem, ItemDecision)):
                raise MessageError("expected an item", f"{name}[{i}]")
            if item.key in seen:
                raise MessageError(
                    "the same apiName and resource appear in two items", f"{name}[{i}]"
                )
            seen.add(item.key)

    return check


@frozen
class ResourceOwnerAuthorizationRequest(_Message):
    """CCF -> ROF: resource owner authorization information request (TS 23.222 8.31 step 3).

    ``expiry`` (optional) is the latest expiry the CCF asks for; a response may not grant
    beyond it.
    """

    _fields: ClassVar[tuple[str, ...]] = (
        "requestId",
        "apiInvokerInfo",
        "appServiceInfo",
        "purposeOfDataProcessing",
        "resOwnerId",
        "requestedItems",
        "expiry",
    )

    request_id: str = field(validator=_identifier("requestId"))
    api_invoker_info: ApiInvokerInfo = field()
    app_service_info: AppServiceInfo = field()
    purpose_of_data_processing: str = field(validator=_text("purposeOfDataProcessing"))
    res_owner_id: str = field(converter=_owner)
    requested_items: tuple[RequestedItem, ...] = field(
        converter=_requested_items, validator=_items_check("requestedItems")
    )
    expiry: dt.datetime | None = field(default=None, converter=_optional_expiry)

    @api_invoker_info.validator
    def _check_invoker(self, _attribute: Any, value: Any) -> None:
        if not isinstance(value, ApiInvokerInfo):
            raise MessageError("expected ApiInvokerInfo", "apiInvokerInfo")

    @app_service_info.validator
    def _check_app(self, _attribute: Any, value: Any) -> None:
        if not isinstance(value, AppServiceInfo):
            raise MessageError("expected AppServiceInfo", "appServiceInfo")

    @classmethod
    def from_dict(cls, value: Any) -> ResourceOwnerAuthorizationRequest:
        """Validate a decoded JSON object."""
        r = _Reader(value, cls._fields)
        request_id = r.string("requestId")
        invoker = ApiInvokerInfo.from_dict(r.get("apiInvokerInfo", required=True))
        app = AppServiceInfo.from_dict(r.get("appServiceInfo", required=True))
        purpose = r.string("purposeOfDataProcessing")
        owner = r.string("resOwnerId")
        raw_items = r.array("requestedItems", required=True, limit=MAX_ITEMS)
        items = _each(raw_items or [], "requestedItems", RequestedItem.from_dict)
        expiry = r.time("expiry", required=False)
        return r.build(
            lambda: cls(request_id, invoker, app, purpose, owner, items, expiry)  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        out: dict[str, Any] = {
            "requestId": self.request_id,
            "apiInvokerInfo": self.api_invoker_info.to_dict(),
            "appServiceInfo": self.app_service_info.to_dict(),
            "purposeOfDataProcessing": self.purpose_of_data_processing,
            "resOwnerId": self.res_owner_id,
            "requestedItems": [i.to_dict() for i in self.requested_items],
        }
        if self.expiry is not None:
            out["expiry"] = _format_time(self.expiry)
        return out

    def item(self, key: tuple[str, str | None]) -> RequestedItem | None:
        """The requested item with this (api name, resource), if any."""
        for item in self.requested_items:
            if item.key == key:
                return item
        return None


def _scope_only_if_granted(instance: ItemDecision, _attribute: Any, value: Any) -> None:
    if value is not None and not instance.granted:
        raise MessageError("a denied item has no scope", "scope")


@frozen
class ItemDecision:
    """The owner's decision on one requested item.

    ``scope`` lists the granted operations; absent, the item is granted as requested.  A
    denied item has no scope.
    """

    api_name: str = field(validator=_identifier("apiName"))
    resource: str | None = field(default=None, validator=_optional_identifier("resource"))
    granted: bool = field(default=False)
    scope: tuple[str, ...] | None = field(
        default=None,
        converter=_scope,
        validator=[_operations_check("scope"), _scope_only_if_granted],
    )

    @granted.validator
    def _check_granted(self, _attribute: Any, value: Any) -> None:
        if not isinstance(value, bool):
            raise MessageError("expected true or false", "granted")

    @property
    def key(self) -> tuple[str, str | None]:
        """What identifies the item within a message."""
        return (self.api_name, self.resource)

    @classmethod
    def from_dict(cls, value: Any, path: str) -> ItemDecision:
        """Validate a decoded JSON object."""
        r = _Reader(value, ("apiName", "resource", "granted", "scope"), path)
        name = r.string("apiName")
        resource = r.string("resource", required=False)
        granted = r.get("granted", required=True)
        if not isinstance(granted, bool):
            raise MessageError("expected true or false", f"{path}.granted")
        scope = r.strings("scope", limit=MAX_OPERATIONS)
        return r.build(lambda: cls(name, resource, granted, scope))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        out: dict[str, Any] = {"apiName": self.api_name}
        if self.resource is not None:
            out["resource"] = self.resource
        out["granted"] = self.granted
        if self.scope is not None:
            out["scope"] = list(self.scope)
        return out


@frozen
class ResourceOwnerAuthorizationResponse(_Message):
    """ROF -> CCF: resource owner authorization information response (TS 23.222 8.31 step 4).

    Items of the request that ``decisions`` leaves out are denied.
    """

    _fields: ClassVar[tuple[str, ...]] = ("requestId", "resOwnerId", "decisions", "expiry")

    request_id: str = field(validator=_identifier("requestId"))
    res_owner_id: str = field(converter=_owner)
    decisions: tuple[ItemDecision, ...] = field(
        converter=_decisions, validator=_items_check("decisions")
    )
    expiry: dt.datetime = field(converter=_expiry)

    @classmethod
    def from_dict(cls, value: Any) -> ResourceOwnerAuthorizationResponse:
        """Validate a decoded JSON object."""
        r = _Reader(value, cls._fields)
        request_id = r.string("requestId")
        owner = r.string("resOwnerId")
        raw = r.array("decisions", required=True, limit=MAX_ITEMS)
        decisions = _each(raw or [], "decisions", ItemDecision.from_dict)
        expiry = r.time("expiry", required=True)
        return r.build(lambda: cls(request_id, owner, decisions, expiry))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {
            "requestId": self.request_id,
            "resOwnerId": self.res_owner_id,
            "decisions": [d.to_dict() for d in self.decisions],
            "expiry": _format_time(self.expiry),
        }

    @property
    def granted(self) -> tuple[ItemDecision, ...]:
        """The granted items."""
        return tuple(d for d in self.decisions if d.granted)


def _items_xor_all(instance: RevocationNotification, _attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise MessageError("expected true or false", "allItems")
    if value and instance.items is not None:
        raise MessageError("give items or allItems, not both", "allItems")
    if not value and instance.items is None:
        raise MessageError("give the items revoked, or allItems: true", "items")


@frozen
class RevocationNotification(_Message):
    """ROF -> CCF: the resource owner revokes authorizations it gave.

    Scope: the owner's authorizations for ``api_invoker_id`` and/or ``app_service_info`` when
    given (for every invoker and application when neither is), limited to ``items`` or
    covering everything with ``all_items=True`` (exactly one of the two).
    """

    _fields: ClassVar[tuple[str, ...]] = (
        "resOwnerId",
        "apiInvokerId",
        "appServiceInfo",
        "items",
        "allItems",
        "reason",
    )

    res_owner_id: str = field(converter=_owner)
    reason: str = field(validator=_text("reason"))
    api_invoker_id: str | None = field(default=None, validator=_optional_identifier("apiInvokerId"))
    app_service_info: AppServiceInfo | None = field(default=None)
    items: tuple[RequestedItem, ...] | None = field(
        default=None, converter=_revoked_items, validator=_items_check("items", optional=True)
    )
    all_items: bool = field(default=False, validator=_items_xor_all)

    @app_service_info.validator
    def _check_app(self, _attribute: Any, value: Any) -> None:
        if value is not None and not isinstance(value, AppServiceInfo):
            raise MessageError("expected AppServiceInfo", "appServiceInfo")

    @classmethod
    def from_dict(cls, value: Any) -> RevocationNotification:
        """Validate a decoded JSON object."""
        r = _Reader(value, cls._fields)
        owner = r.string("resOwnerId")
        invoker = r.string("apiInvokerId", required=False)
        raw_app = r.get("appServiceInfo", required=False)
        app = AppServiceInfo.from_dict(raw_app) if raw_app is not None else None
        raw_items = r.array("items", required=False, limit=MAX_ITEMS)
        items = (
            _each(raw_items, "items", RequestedItem.from_dict) if raw_items is not None else None
        )
        all_items = r.boolean("allItems") or False
        reason = r.string("reason")
        return r.build(
            lambda: cls(owner, reason, invoker, app, items, all_items)  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        out: dict[str, Any] = {"resOwnerId": self.res_owner_id}
        if self.api_invoker_id is not None:
            out["apiInvokerId"] = self.api_invoker_id
        if self.app_service_info is not None:
            out["appServiceInfo"] = self.app_service_info.to_dict()
        if self.items is not None:
            out["items"] = [i.to_dict() for i in self.items]
        if self.all_items:
            out["allItems"] = True
        out["reason"] = self.reason
        return out
