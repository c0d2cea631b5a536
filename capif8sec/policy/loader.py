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

Line numbers: :mod:`tomllib` reports positions only for syntax errors, not for values.  So,
when a mistake needs its line, the loader scans the text tomllib read by TOML's lexical rules
(strings of all four kinds with their escapes and closing quotes, comments, keys bare, quoted
and dotted, arrays over several lines, inline tables): it follows the table headers
(``[[rule]]`` raises the index of ``rule``), and records the line of each key in each table
and where each element of an array value starts.  An error about a key points at the key's
line; about one element of an array, at the line where that element starts; about a missing
key, at the table's header (``{`` for ``rule = [{...}]``).  The scan checks that it found the
same keys and tables as tomllib; if not, or if it meets anything it does not follow, errors
carry no line: none is better than a wrong one.
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

Where = tuple[str | None, int | None]  # (table name, index within an array of tables)
_KeyAt = tuple[str | None, int | None, str]  # a key within such a table

# TOML's lexical rules (TOML 1.0, as tomllib reads it; its loads() first turns CRLF into LF).
# The scan runs only on text tomllib accepted, so these find where each token ends; they
# need not refuse what tomllib refuses.
_WS = re.compile(r"[ \t]*")
# Blanks, newlines and comments (in arrays and inline tables); atomic, so that a regular
# expression never backtracks into a comment and reads its text as a value.
_GAP = r"(?>[ \t\n]*(?:#[^\n]*[ \t\n]*)*)"
_WS_COMMENT_NEWLINE = re.compile(_GAP)
_LINE_END = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\n|\Z)")  # after a key/value pair or a header
_DOT = re.compile(r"[ \t]*\.[ \t]*")
_EQUALS = re.compile(r"[ \t]*=[ \t]*")
_BARE = r"[A-Za-z0-9_-]+"
_BARE_KEY = re.compile(_BARE)
# One-line strings: a basic string's backslash escapes the next character (so \" and \\
# neither end it); a literal string has no escapes.  (Not the start of """ or '''.)
_BASIC_RE = r'(?!""")"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_LITERAL_RE = r"(?!''')'[^'\n]*'"
_BASIC = re.compile(_BASIC_RE)
_LITERAL = re.compile(_LITERAL_RE)
# Multi-line strings end at the first unescaped (basic) or any (literal) run of three quotes;
# one or two more quotes straight after it are content (""""a"""" is '"a"').
_ML_BASIC = re.compile(r'"""[^"\\]*(?:(?:\\.|""?(?!"))[^"\\]*)*"""(?:""?)?', re.DOTALL)
_ML_LITERAL = re.compile(r"'''[^']*(?:''?(?!')[^']*)*'''(?:''?)?")
# Booleans, numbers, dates and times; a local or offset date-time may hold one space.
_SCALAR_RE = r"[A-Za-z0-9_+.:-]+(?: [0-9][A-Za-z0-9_+.:-]*)?"
_SCALAR = re.compile(_SCALAR_RE)
_SIMPLE = f"{_BASIC_RE}|{_LITERAL_RE}|{_SCALAR_RE}"  # a value on one line, no array or table
# Shortcuts for the common shapes (the general path below handles anything else): a whole
# line ``[[bare]]``, ``bare = simple`` or ``bare = [simple, ...]``, and an array element that
# is a simple value.
_SIMPLE_LINE = re.compile(
    rf"[ \t]*(?:\[\[[ \t]*(?P<header>{_BARE})[ \t]*\]\]|(?P<key>{_BARE})[ \t]*=[ \t]*"
    rf"(?:{_SIMPLE}|(?P<array>\[)[ \t]*(?P<items>(?:{_SIMPLE})(?:[ \t]*,[ \t]*(?:{_SIMPLE}))*)?"
    rf"[ \t]*,?[ \t]*\]))[ \t]*(?:#[^\n]*)?(?:\n|\Z)"
)
_SIMPLE_VALUES = re.compile(_SIMPLE)  # the elements of such an array, and nothing between
_SIMPLE_ITEM = re.compile(rf"({_GAP})(?:{_SIMPLE})({_GAP})")


class _Unsure(Exception):
    """The scan met something it does not follow: it places nothing rather than guess."""


# What the scan keeps of a value: for an array, where each element starts (and an inline
# table's keys, for ``rule = [{...}, {...}]``); for an inline table or a table made by a
# dotted key or a header, its keys (or none); for anything else, nothing (it starts on the
# line of its key: TOML puts ``key = value`` on one line).
_Table = dict[str, tuple[int, "_Value"]]
_Item = int | tuple[int, _Table]
_Value = list[_Item] | _Table | None


def _key_name(token: str) -> str:
    if token[0] == "'":
        return token[1:-1]
    if token[0] == '"':
        if "\\" not in token:
            return token[1:-1]
        name = tomllib.loads(f"k = {token}")["k"]  # tomllib's own escapes
        if not isinstance(name, str):
            raise _Unsure
        return name
    return token


class _Scanner:
    """One pass over the text by TOML's lexical rules: headers, keys and where values start."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.headers: dict[Where, int] = {}
        self.keys: dict[_KeyAt, tuple[int, _Value]] = {}

    def _skip(self, pattern: re.Pattern[str]) -> str:
        m = pattern.match(self.text, self.pos)
        if m is None:
            raise _Unsure
        self.line += m.group().count("\n")
        self.pos = m.end()
        return m.group()

    def _take(self, char: str) -> None:
        if not self.text.startswith(char, self.pos):
            raise _Unsure
        self.pos += len(char)

    def _key(self) -> list[str]:
        """A key: simple keys (bare, "basic" or 'literal'), dotted with optional blanks."""
        parts: list[str] = []
        while True:
            char = self.text[self.pos : self.pos + 1]
            pattern = _BASIC if char == '"' else _LITERAL if char == "'" else _BARE_KEY
            parts.append(_key_name(self._skip(pattern)))
            m = _DOT.match(self.text, self.pos)
            if m is None:
                return parts
            self.pos = m.end()

    def _value(self) -> _Value:
        text, pos = self.text, self.pos
        char = text[pos : pos + 1]
        if char == '"':
            self._skip(_ML_BASIC if text.startswith('"""', pos) else _BASIC)
        elif char == "'":
            self._skip(_ML_LITERAL if text.startswith("'''", pos) else _LITERAL)
        elif char == "[":
            return self._array()
        elif char == "{":
            return self._inline_table()
        else:
            self._skip(_SCALAR)
        return None

    def _array(self) -> list[_Item]:
        self._take("[")
        items: list[_Item] = []
        text = self.text
        while True:
            m = _SIMPLE_ITEM.match(text, self.pos)
            if m is not None:  # the shortcut: blanks, a string or scalar, blanks
                before, after = m.group(1, 2)
                self.line += before.count("\n")
                items.append(self.line)
                self.line += after.count("\n")
                self.pos = m.end()
            else:
                self._skip(_WS_COMMENT_NEWLINE)
                if text.startswith("]", self.pos):
                    break
                line = self.line
                value = self._value()
                items.append((line, value) if isinstance(value, dict) else line)
                self._skip(_WS_COMMENT_NEWLINE)
            if not text.startswith(",", self.pos):
                break
            self.pos += 1
        self._take("]")
        return items

    def _inline_table(self) -> _Table:
        # Blank lines and a final comma are TOML 1.1; accepted here in case tomllib does.
        self._take("{")
        table: _Table = {}
        while True:
            self._skip(_WS_COMMENT_NEWLINE)
            if self.text.startswith("}", self.pos):
                break
            line = self.line
            parts = self._key()
            self._skip(_EQUALS)
            value = self._value()
            table.setdefault(parts[0], (line, {} if parts[1:] else value))
            self._skip(_WS_COMMENT_NEWLINE)
            if not self.text.startswith(",", self.pos):
                break
            self.pos += 1
        self._take("}")
        return table

    def scan(self) -> None:
        counts: dict[str, int] = {}  # [[name]] tables so far
        where: Where | None = (None, None)  # None: a table whose keys nothing asks about
        text, keys, headers = self.text, self.keys, self.headers
        while self.pos < len(text):
            m = _SIMPLE_LINE.match(text, self.pos)
            if m is not None:  # the shortcut for a line of a common shape
                line = self.line
                header, key, array, items = m.group("header", "key", "array", "items")
                if header is not None:
                    index = counts.get(header, 0)
                    counts[header] = index + 1
                    where = (header, index)
                    headers[where] = line
                    keys.setdefault((None, None, header), (line, {}))
                elif where is not None:
                    count = len(_SIMPLE_VALUES.findall(items)) if items is not None else 0
                    keys.setdefault(
                        (*where, key), (line, None if array is None else [line] * count)
                    )
                self.line = line + 1
                self.pos = m.end()
                continue
            self._skip(_WS)
            line, pos = self.line, self.pos
            if text.startswith(("\n", "#"), pos) or pos == len(text):
                pass
            elif text.startswith("[", pos):  # [table] or [[array.of.tables]]
                array = "[[" if text.startswith("[[", pos) else None
                self.pos += 2 if array else 1
                self._skip(_WS)
                parts = self._key()
                self._skip(_WS)
                self._take("]]" if array else "]")
                first = parts[0]
                keys.setdefault((None, None, first), (line, {}))
                if parts[1:]:  # [rule.x] and [[rule.x]] define x in the last [[rule]]
                    owner = counts[first] - 1 if first in counts else None
                    keys.setdefault((first, owner, parts[1]), (line, {}))
                    where = None
                elif array:
                    index = counts.get(first, 0)
                    counts[first] = index + 1
                    where = (first, index)
                    headers[where] = line
                else:
                    where = (first, None)
                    headers.setdefault(where, line)
            else:  # key = value; a dotted key a.b.c defines a
                parts = self._key()
                self._skip(_EQUALS)
                value = self._value()
                if where is not None:
                    keys.setdefault((*where, parts[0]), (line, {} if parts[1:] else value))
                if where == (None, None) and not parts[1:] and isinstance(value, list):
                    for index, item in enumerate(value):  # rule = [{...}, {...}]
                        if isinstance(item, tuple):
                            headers[(parts[0], index)] = item[0]
                            for name, found in item[1].items():
                                keys[(parts[0], index, name)] = found
            self._skip(_LINE_END)


class _SourceMap:
    """Lines of table headers, keys and array elements, found by scanning the text (see the
    module doc) when first asked: a valid file needs no scan.  If the scan falls out of step
    with what tomllib read, it places nothing."""

    def __init__(self, text: str, data: Mapping[str, Any]) -> None:
        self._text = text
        self._data = data
        self._scanned: _Scanner | None = None

    def _scan(self) -> _Scanner:
        if self._scanned is None:
            scanner = _Scanner(self._text.replace("\r\n", "\n"))
            try:
                scanner.scan()
            except (_Unsure, IndexError, ValueError, RecursionError):
                scanner.headers, scanner.keys = {}, {}
            if not self._agrees(scanner, self._data):
                scanner.headers, scanner.keys = {}, {}
            self._scanned = scanner
        return self._scanned

    @staticmethod
    def _agrees(scanner: _Scanner, data: Mapping[str, Any]) -> bool:
        """Whether the scan found the same top-level keys and [[tables]] with the same keys."""
        found: dict[Where, set[str]] = {}
        for table, index, key in scanner.keys:
            found.setdefault((table, index), set()).add(key)
        if found.get((None, None), set()) != set(data):
            return False
        for name, value in data.items():
            if isinstance(value, list) and all(isinstance(t, dict) for t in value):
                if (name, len(value)) in found or (name, len(value)) in scanner.headers:
                    return False
                for index, table in enumerate(value):
                    if found.get((name, index), set()) != set(table):
                        return False
        return True

    def header(self, where: Where) -> int | None:
        return self._scan().headers.get(where)

    def key(self, where: Where, key: str) -> int | None:
        found = self._scan().keys.get((*where, key))
        return found[0] if found is not None else None

    def element(self, where: Where, key: str, index: int, count: int) -> int | None:
        """The line where element ``index`` of a value starts, which tomllib read as ``count``
        elements (one: a single value, not an array)."""
        found = self._scan().keys.get((*where, key))
        if found is None:
            return None
        line, value = found
        if isinstance(value, dict):  # a table is not an array
            return None
        if value is None:  # not an array: the value starts on its key's line
            return line if count == 1 and index == 0 else None
        if len(value) != count or not 0 <= index < count:
            return None
        item = value[index]
        return item if isinstance(item, int) else item[0]


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
                line = out.map.element(where, key, exc.index, len(items))
                out.add(line, f"{path}.{key}[{exc.index}]", exc.message)
    return values, ok


def _parse(text: str, source: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", None) or str(exc)
        if line is None:
            m = _SYNTAX_POSITION.search(str(exc))
            line = int(m.group(1)) if m else None
        message = _SYNTAX_POSITION.sub("", message).strip()
        issue = PolicyIssue(source, line, "", f"TOML syntax error: {message}")
        raise PolicyFileError(source, [issue]) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        issue = PolicyIssue(source, None, "", "arrays or inline tables nested too deeply")
        raise PolicyFileError(source, [issue]) from None
    except ValueError as exc:  # e.g. an integer past int()'s digit limit (4300 digits)
        issue = PolicyIssue(source, None, "", f"a value tomllib cannot read: {exc}")
        raise PolicyFileError(source, [issue]) from None
    smap = _SourceMap(text, data)
    out = _Collector(source, smap)
    for key in data:
        if key not in _TOP_KEYS:
            out.add(
                smap.key((None, None), key),
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
                smap.key((None, None), kind),
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
                try:
                    built[kind].append(Rule(**values))
                except UsageError as exc:  # checked field by field above: not expected
                    out.add(smap.header((kind, index)), f"{kind}[{index}]", str(exc))
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
