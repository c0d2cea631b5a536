"""The TOML policy file: loading, validation, and errors that name file, line and field.

The format (full example in ``docs/policy.md``)::

    version = "2026-11-28.1"        # optional, free text, copied into every audit record
    legacy_cn = false               # optional: CN as identity without SAN identifiers (R57)

    [[rule]]                        # CCF side: what an ROF may do
    id = "rof-a"
    identities = ["uri:urn:capif:rof:rof-a", "psk:rof-a"]
    owners = ["msisdn-4915*", "extid-alice@rof-a.example"]
    purposes = ["service-assurance"]  # optional, default ["*"]
    asps = ["asp-1"]                  # optional, default ["*"]
    apps = ["app-1", "app-2"]         # optional, default ["*"]
    operations = ["authorize", "revoke"]
    methods = ["certificate", "psk"]

    [[ccf]]                         # ROF side: which CCFs it accepts requests from
    id = "home-ccf"
    identities = ["dns:ccf.operator.example"]
    owners = ["*"]                    # optional, default ["*"]
    methods = ["certificate"]         # optional, default ["certificate"]
    operations = ["authorize"]        # optional, default ["authorize"]

Validation collects *every* mistake and raises one :class:`PolicyFileError` listing them, each
as ``FILE:LINE: FIELD: message`` (e.g. ``policy.toml:12: rule[1].owners[2]: ...``).

Line numbers: :mod:`tomllib` reports positions only for syntax errors, not for values.  So the
loader scans the source text once, line by line, alongside: it follows the table headers
(``[[rule]]`` raises the index of ``rule``), records the line of each ``key =`` inside each
table (skipping multi-line strings), and the lines a key's value runs over (a multi-line
array).  An error about a key points at its line; about one element of an array, at the
first line within the value's lines that holds that element as a quoted string; about a
missing key, at the table's header.  Anything the scan cannot place (inline tables, dotted
keys) falls back to the table's header line, or to no line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from attrs import frozen

from capif8sec.auth.base import Method
from capif8sec.errors import UsageError
from capif8sec.policy.model import (
    ANY,
    FieldProblem,
    Operation,
    Policy,
    Rule,
    check_identities,
    check_methods,
    check_operations,
    check_owners,
    check_rule_id,
    check_texts,
)

__all__ = ["PolicyFileError", "PolicyIssue", "load_policy", "loads_policy"]

#: Largest policy file read (bytes).  A million exact rules fit comfortably.
MAX_POLICY_BYTES = 512 * 2**20


@frozen
class PolicyIssue:
    """One mistake in a policy file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyFileError(UsageError):
    """A policy file cannot be used; ``issues`` lists every mistake found (file, line, field)."""

    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        count = len(self.issues)
        head = f"{source}: {count} problem{'s' if count != 1 else ''} in the policy file"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


# -- the source scan -------------------------------------------------------------------------

_NAME = r'[A-Za-z0-9_-]+|"[^"\\\n]*"|\'[^\'\n]*\''
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_NAME})\s*\]\]\s*(?:#.*)?\Z")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_NAME}(?:\s*\.\s*(?:{_NAME}))*)\s*\]\s*(?:#.*)?\Z")
_KEY = re.compile(rf"\s*({_NAME})\s*=")

Where = tuple[str | None, int | None]  # (table name, index within an array of tables)


def _unquote(name: str) -> str:
    return name[1:-1] if name[:1] in "\"'" else name


class _SourceMap:
    """Lines of table headers and keys, found by scanning the text (see the module doc)."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.headers: dict[Where, int] = {}
        self.keys: dict[tuple[str | None, int | None, str], tuple[int, int]] = {}
        counts: dict[str, int] = {}
        where: Where = (None, None)
        current: tuple[str | None, int | None, str] | None = None
        closing: str | None = None
        for number, line in enumerate(self.lines, start=1):
            if closing is not None:  # inside a multi-line string
                if line.count(closing) % 2 == 1:
                    closing = None
                self._extend(current, number)
                continue
            m = _ARRAY_HEADER.match(line)
            if m:
                name = _unquote(m.group(1))
                where = (name, counts.get(name, 0))
                counts[name] = counts.get(name, 0) + 1
                self.headers[where] = number
                current = None
                continue
            m = _TABLE_HEADER.match(line)
            if m:
                where = (_unquote(m.group(1).strip()), None)
                self.headers.setdefault(where, number)
                current = None
                continue
            m = _KEY.match(line)
            if m:
                current = (*where, _unquote(m.group(1)))
                self.keys.setdefault(current, (number, number))
                rest = line[m.end() :]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        closing = quote
                continue
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                self._extend(current, number)

    def _extend(self, key: tuple[str | None, int | None, str] | None, number: int) -> None:
        if key is not None and key in self.keys:
            first, _ = self.keys[key]
            self.keys[key] = (first, number)

    def header(self, where: Where) -> int | None:
        return self.headers.get(where)

    def key(self, where: Where, key: str) -> int | None:
        found = self.keys.get((*where, key))
        return found[0] if found is not None else self.header(where)

    def element(
        self, where: Where, key: str, index: int, value: Any, values: list[Any]
    ) -> int | None:
        found = self.keys.get((*where, key))
        if found is None:
            return self.header(where)
        first, last = found
        if not isinstance(value, str):
            return first
        needles = (f'"{value}"', f"'{value}'")
        skip = sum(1 for v in values[:index] if v == value)  # the same value earlier on
        for number in range(first, last + 1):
            text = self.lines[number - 1]
            hits = sum(text.count(n) for n in needles)
            if hits > skip:
                return number
            skip -= hits
        return first


# -- validation ------------------------------------------------------------------------------

_TOP_KEYS = ("version", "legacy_cn", "rule", "ccf")
_SYNTAX_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")

_RULE_FIELDS: dict[str, Callable[[object], Any]] = {
    "id": check_rule_id,
    "identities": check_identities,
    "owners": check_owners,
    "operations": check_operations,
    "methods": check_methods,
    "purposes": check_texts,
    "asps": check_texts,
    "apps": check_texts,
    "description": lambda v: _text(v, 1024),
}
_REQUIRED = {
    "rule": ("id", "identities", "owners", "operations", "methods"),
    "ccf": ("id", "identities"),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "rule": {},
    "ccf": {
        "owners": (ANY,),
        "methods": frozenset({Method.CERTIFICATE}),
        "operations": frozenset({Operation.AUTHORIZE}),
    },
}


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise FieldProblem("expected a string")
    if not value or len(value) > limit:
        raise FieldProblem(f"expected 1 to {limit} characters")
    return value


class _Collector:
    def __init__(self, source: str, smap: _SourceMap) -> None:
        self.source = source
        self.map = smap
        self.issues: list[PolicyIssue] = []

    def add(self, line: int | None, field: str, message: str) -> None:
        self.issues.append(PolicyIssue(self.source, line, field, message))


def _table(
    out: _Collector, kind: str, index: int, table: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The validated values of one table, and whether all of it was valid."""
    where: Where = (kind, index)
    path = f"{kind}[{index}]"
    ok = True
    for key in table:
        if key not in _RULE_FIELDS:
            known = ", ".join(_RULE_FIELDS)
            out.add(out.map.key(where, key), f"{path}.{key}", f"unknown key (known: {known})")
            ok = False
    for key in _REQUIRED[kind]:
        if key not in table:
            out.add(out.map.header(where), f"{path}.{key}", "missing (required)")
            ok = False
    values: dict[str, Any] = dict(_DEFAULTS[kind])
    for key, check in _RULE_FIELDS.items():
        if key not in table:
            continue
        raw = table[key]
        try:
            values[key] = check(raw)
        except FieldProblem as exc:
            ok = False
            if exc.index is None:
                out.add(out.map.key(where, key), f"{path}.{key}", exc.message)
            else:
                items = raw if isinstance(raw, list) else [raw]
                line = out.map.element(where, key, exc.index, items[exc.index], items)
                out.add(line, f"{path}.{key}[{exc.index}]", exc.message)
    return values, ok


def _parse(text: str, source: str) -> Policy:
    smap = _SourceMap(text)
    out = _Collector(source, smap)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", None) or str(exc)
        if line is None:
            m = _SYNTAX_POSITION.search(str(exc))
            line = int(m.group(1)) if m else None
        message = _SYNTAX_POSITION.sub("", message).strip()
        out.add(line, "", f"TOML syntax error: {message}")
        raise PolicyFileError(source, out.issues) from None
    for key in data:
        if key not in _TOP_KEYS:
            out.add(
                smap.key((None, None), key) or smap.header((key, None)) or smap.header((key, 0)),
                key,
                f"unknown key (known: {', '.join(_TOP_KEYS)})",
            )
    version = data.get("version")
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 128):
        out.add(smap.key((None, None), "version"), "version", "expected 1 to 128 characters")
        version = None
    legacy_cn = data.get("legacy_cn", False)
    if not isinstance(legacy_cn, bool):
        out.add(smap.key((None, None), "legacy_cn"), "legacy_cn", "expected true or false")
        legacy_cn = False
    built: dict[str, list[Rule]] = {"rule": [], "ccf": []}
    ids: dict[str, str] = {}
    for kind in ("rule", "ccf"):
        tables = data.get(kind, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            out.add(
                smap.key((None, None), kind) or smap.header((kind, None)),
                kind,
                f"expected [[{kind}]] tables",
            )
            continue
        for index, table in enumerate(tables):
            values, ok = _table(out, kind, index, table)
            rule_id = values.get("id")
            if rule_id is not None:  # a valid id, even in a table with other mistakes
                if rule_id in ids:
                    out.add(
                        smap.key((kind, index), "id"),
                        f"{kind}[{index}].id",
                        f"rule id {rule_id!r} is already used by {ids[rule_id]}",
                    )
                    continue
                ids[rule_id] = f"{kind}[{index}]"
            if ok:
                built[kind].append(Rule(**values))
    if out.issues:  # in file order; the ones without a line last
        ordered = sorted(out.issues, key=lambda i: (i.line is None, i.line or 0))
        raise PolicyFileError(source, ordered)
    return Policy(
        rules=built["rule"],
        ccf_rules=built["ccf"],
        version=version,
        legacy_cn=legacy_cn,
        source=source,
    )


def loads_policy(text: str | bytes, *, source: str = "<string>") -> Policy:
    """Parse a policy from TOML text (``source`` names it in errors).

    :raises PolicyFileError: every mistake found, each with line and field.
    """
    if isinstance(text, bytes):
        data = text
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise PolicyFileError(
                source, [PolicyIssue(source, line, "", "not valid UTF-8")]
            ) from None
    if not isinstance(text, str):
        raise UsageError("loads_policy takes str or bytes")
    return _parse(text.removeprefix("\ufeff"), source)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load a policy file.

    :raises PolicyFileError: the file cannot be read, or every mistake found in it.
    """
    name = os.fspath(path)
    try:
        with Path(name).open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        issue = PolicyIssue(name, None, "", f"cannot read the policy file: {exc.strerror}")
        raise PolicyFileError(name, [issue]) from None
    if len(data) > MAX_POLICY_BYTES:
        issue = PolicyIssue(name, None, "", f"larger than {MAX_POLICY_BYTES} bytes")
        raise PolicyFileError(name, [issue])
    return loads_policy(data, source=name)
