"""The TOML policy file: a full example loads; every mistake is reported with file, line and
field, all of them at once; Python objects validate the same way."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capif8sec.auth.base import Method
from capif8sec.errors import UsageError
from capif8sec.policy import (
    Operation,
    Policy,
    PolicyEngine,
    PolicyFileError,
    Rule,
    load_policy,
    loads_policy,
)

EXAMPLE = """\
# CAPIF-8 policy of the home CCF
version = "2026-11-28.1"
legacy_cn = false

[[rule]]
id = "rof-a"
description = "ROF A answers for its subscribers"
identities = ["uri:urn:capif:rof:rof-a", "psk:rof-a"]
owners = [
    "msisdn-4917*",
    "extid-alice@rof-a.example",
]
purposes = ["service-assurance"]
asps = ["asp-1"]
apps = ["app-1", "app-2"]
operations = ["authorize", "revoke"]
methods = ["certificate", "psk"]

[[rule]]
id = "rof-b"
identities = "dns:ROF-B.Example"
owners = "extid-bob@rof-b.example"
operations = "authorize"
methods = "certificate"

[[ccf]]
id = "home-ccf"
identities = ["dns:ccf.operator.example"]
"""


def test_the_example_loads() -> None:
    policy = loads_policy(EXAMPLE, source="policy.toml")
    assert policy.version == "2026-11-28.1" and policy.legacy_cn is False
    assert policy.source == "policy.toml"
    a, b = policy.rules
    assert a == Rule(
        "rof-a",
        ["uri:urn:capif:rof:rof-a", "psk:rof-a"],
        ["msisdn-4917*", "extid-alice@rof-a.example"],
        ["authorize", "revoke"],
        ["certificate", "psk"],
        ["service-assurance"],
        ["asp-1"],
        ["app-1", "app-2"],
        "ROF A answers for its subscribers",
    )
    assert b.identities == ("dns:rof-b.example",)  # normalized
    assert b.purposes == b.asps == b.apps == ("*",)  # optional dimensions default to any
    (ccf,) = policy.ccf_rules
    assert ccf.owners == ("*",)
    assert ccf.methods == frozenset({Method.CERTIFICATE})
    assert ccf.operations == frozenset({Operation.AUTHORIZE})


def test_load_from_a_path_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_policy(path).source == str(path)
    assert loads_policy(EXAMPLE.encode()).rules == load_policy(str(path)).rules
    assert loads_policy("").rules == ()


BROKEN = """\
version = 3
legacy_cn = "yes"
colour = "blue"

[[rule]]
id = "rof-a"
identities = ["uri:urn:capif:rof:rof-a"]
owners = [
    "msisdn-4917000001",
    "bob",
    "msisdn-4917000002",
]
operations = ["authorize", "delete"]
methods = ["certificate", "carrier-pigeon"]
purpose = ["typo"]

[[rule]]
id = "rof-b"
identities = 5
operations = ["authorize"]
methods = ["psk"]

[[rule]]
id = "rof-a"
identities = ["dns:*"]
owners = ["*"]
operations = ["query"]
methods = ["password"]

[[ccf]]
id = "ccf"
identities = ["ip:192.0.2.*"]
owners = ["msisdn-*", "msisdn-123"]
"""


def test_every_mistake_is_located() -> None:
    """Several mistakes at once: each with its line and field, in one PolicyFileError."""
    with pytest.raises(PolicyFileError) as info:
        loads_policy(BROKEN, source="broken.toml")
    found = {(i.line, i.field) for i in info.value.issues}
    assert found == {
        (1, "version"),
        (2, "legacy_cn"),
        (3, "colour"),
        (15, "rule[0].purpose"),  # unknown key (a typo of "purposes")
        (10, "rule[0].owners[1]"),  # the element's own line in a multi-line array
        (13, "rule[0].operations[1]"),
        (14, "rule[0].methods[1]"),
        (17, "rule[1].owners"),  # missing: the table's header line
        (19, "rule[1].identities"),
        (24, "rule[2].id"),  # used twice
        (25, "rule[2].identities[0]"),  # a pattern naming nothing but "any"
        (32, "ccf[0].identities[0]"),  # IP identities are exact
        (33, "ccf[0].owners[1]"),
    }
    assert all(i.file == "broken.toml" for i in info.value.issues)
    text = str(info.value)
    assert "broken.toml: 13 problems in the policy file" in text
    assert "broken.toml:10: rule[0].owners[1]: 'bob' is not a resource owner id" in text
    assert "carrier-pigeon" in text and "delete" in text


def test_duplicate_rule_ids_point_at_the_second() -> None:
    text = EXAMPLE + '\n[[ccf]]\nid = "rof-a"\nidentities = ["dns:ccf2.example"]\n'
    with pytest.raises(PolicyFileError) as info:
        loads_policy(text, source="p.toml")
    (issue,) = info.value.issues
    assert (
        issue.field == "ccf[1].id" and issue.line == text.split("\n").index('id = "rof-a"', 30) + 1
    )
    assert "already used by rule[0]" in issue.message


def test_the_same_bad_value_twice_in_one_array() -> None:
    text = (
        'version = "x"\n[[rule]]\nid = "r"\nidentities = ["psk:a"]\n'
        'operations = ["authorize"]\nmethods = ["psk"]\n'
        'owners = [\n  "msisdn-123456",\n  "nope",\n]\n'
    )
    policy_error = pytest.raises(PolicyFileError)
    with policy_error as info:
        loads_policy(text)
    assert [(i.line, i.field) for i in info.value.issues] == [(9, "rule[0].owners[1]")]


def test_syntax_errors_have_their_line() -> None:
    with pytest.raises(PolicyFileError) as info:
        loads_policy('version = "x"\n[[rule]]\nid = \n', source="s.toml")
    (issue,) = info.value.issues
    assert issue.line == 3 and "TOML syntax error" in issue.message
    assert "(at line" not in issue.message


def test_rule_tables_of_the_wrong_shape() -> None:
    with pytest.raises(PolicyFileError) as info:
        loads_policy('rule = "everything"\nccf = [1, 2]\n', source="s.toml")
    assert [(i.line, i.field) for i in info.value.issues] == [(1, "rule"), (2, "ccf")]


def test_quoted_keys_and_multiline_strings_do_not_confuse_the_scan() -> None:
    text = (
        '[[rule]]\nid = "r"\n"description" = """\nowners = not a key\n"""\n'
        'identities = ["psk:a"]\noperations = ["authorize"]\nmethods = ["psk"]\n'
        "'owners' = ['msisdn-12345', 'x']\n"
    )
    with pytest.raises(PolicyFileError) as info:
        loads_policy(text)
    assert [(i.line, i.field) for i in info.value.issues] == [(9, "rule[0].owners[1]")]


# -- quotes, comments and escapes do not shift the lines (issue 5: located errors) -----------

Q3 = "'''"
D3 = '"""'


def _issues(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(PolicyFileError) as info:
        loads_policy(text, source="policy.toml")
    return [(i.line, i.field) for i in info.value.issues]


def _rule(n: str, owners: str = '["msisdn-491511111"]', extra: str = "") -> list[str]:
    return [
        "[[rule]]",
        f'id = "rof-{n}"',
        *([extra] if extra else []),
        f'identities = ["psk:rof-{n}"]',
        f"owners = {owners}",
        'operations = ["authorize"]',
        'methods = ["psk"]',
        "",
    ]


@pytest.mark.parametrize(
    "version",
    [
        '"it' + Q3 + 's v1"',
        "'say " + D3 + "hi'",
        '"' + Q3 + '\\"' * 3 + '"',
        "'" + D3 + "' # " + Q3,
    ],
)
def test_triple_quotes_inside_one_line_strings_keep_the_lines(version: str) -> None:
    """The review's first case: ''' in a basic string or \"\"\" in a literal one starts no
    multi-line string (issue 5: located errors)."""
    text = "\n".join([f"version = {version}", "", *_rule("a", '["msisdn-4915*", "msisdn-12"]')])
    assert _issues(text) == [(6, "rule[0].owners[1]")]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (f'description = "it{Q3}s"', f'description = "see {Q3}"'),
        (f"description = 'it{D3}s'", f"description = 'see {D3}'"),
        (f"description = 'it{D3}s'", f'description = "see {Q3}" # {D3}'),
    ],
)
def test_a_second_triple_quote_later_does_not_renumber_the_tables(first: str, second: str) -> None:
    """The review's second case: with a second triple quote later in the file, the bad owner
    of rule[1] (line 13) was reported on line 20, in rule[2] (issue 5: located errors)."""
    lines = [*_rule("a", extra=first), *_rule("b", '["msisdn-12"]', extra=second), *_rule("c")]
    assert lines[12] == 'owners = ["msisdn-12"]'
    assert _issues("\n".join(lines)) == [(13, "rule[1].owners[0]")]


def test_multiline_strings_before_the_faulty_rule_shift_nothing() -> None:
    """Multi-line strings of both kinds, with quotes inside and up to two more quotes at the
    end (\"\"\"\"a\"\"\"\" is '\"a\"'), span their lines (issue 5: located errors)."""
    lines = [
        f'version = {D3}""v1',
        f'  it\'s "quoted" \\{D3} and {Q3}',
        "[[rule]]",
        f'""{D3}',
        *_rule("a", extra=f"description = {Q3}''two\n[[rule]]\nlines''{Q3}"),
        *_rule("b", '[\n  "msisdn-491522222",\n  "msisdn-12",\n]'),
    ]
    text = "\n".join(lines)
    policy = loads_policy(text.replace('msisdn-12"', 'msisdn-12345"'))
    assert policy.version == f'""v1\n  it\'s "quoted" {D3} and {Q3}\n[[rule]]\n""'
    assert policy.rules[0].description == "''two\n[[rule]]\nlines''"
    assert text.split("\n")[19] == '  "msisdn-12",'
    assert _issues(text) == [(20, "rule[1].owners[1]")]


def test_comments_holding_quotes_are_comments() -> None:
    """A comment ends at the end of its line whatever quotes it holds, and a # inside a
    string starts no comment (issue 5: located errors)."""
    lines = [
        f"# it's {Q3} {D3} \" ' [[rule]]",
        f'version = "v1 # {Q3}" # {D3} owners = ["x"]',
        *_rule("a", extra=f"# description = {Q3}"),
        *_rule("b", f'[ # "{Q3}\n  "msisdn-491522222", # \' {D3}\n  "msisdn-12", # "\n]'),
    ]
    text = "\n".join(lines)
    assert text.split("\n")[15] == '  "msisdn-12", # "'
    assert _issues(text) == [(16, "rule[1].owners[1]")]


def test_escaped_quotes_in_basic_strings() -> None:
    """\\" and \\\\ in basic strings are followed by TOML's rules, and an element written with
    escapes is found by its place in the array, not by its text (issue 5: located errors)."""
    lines = [
        'version = "a \\" b \\\\" # \\"',
        *_rule("a", extra='description = "\\"' + Q3 + "\\\\" + '\\"' * 3 + '"'),
        *_rule("b", '[\n  "msisdn-491522222",\n  "msisdn-\\u0031\\u0032",\n]'),
        *_rule("c", extra='description = """\\"""\\\\"""'),
    ]
    text = "\n".join(lines)
    assert tomllib.loads(text)["rule"][2]["description"] == '"""\\'
    assert text.split("\n")[14] == '  "msisdn-\\u0031\\u0032",'
    assert _issues(text) == [(15, "rule[1].owners[1]")]


def test_quoted_dotted_and_inline_keys_are_placed() -> None:
    """Quoted keys (with escapes), dotted keys, sub-tables and rules written as inline tables
    are placed too (issue 5: located errors)."""
    text = "\n".join(_rule("a", '["msisdn-12"]')).replace("owners", '"own\\u0065rs"')
    assert _issues(text) == [(4, "rule[0].owners[0]")]
    dotted = text.replace('"own\\u0065rs" = ["msisdn-12"]', "colour . x = 1")
    assert _issues(dotted) == [(1, "rule[0].owners"), (4, "rule[0].colour")]
    inline = (
        "rule = [\n"
        '  {id = "a", identities = ["psk:a"], owners = ["*"], operations = ["authorize"],'
        ' methods = ["psk"]},\n'
        '  {id = "b", identities = ["psk:b"], owners = ["*"], operations = ["authorize"],'
        " methods = [\n"
        '    "psk", "nope"]},\n'
        "]\n"
        "[[ccf]]\n"
        'id = "c"\n'
        'identities = ["dns:c.example"]\n'
        "[ccf.extra]\n"
    )
    assert _issues(inline) == [(4, "rule[1].methods[1]"), (9, "ccf[0].extra")]


def test_no_line_when_the_scan_and_tomllib_disagree() -> None:
    """A scan out of step with what tomllib read places nothing: no line rather than a wrong
    one (issue 5: located errors)."""
    from capif8sec.policy.loader import _SourceMap

    text = '[[rule]]\nid = "a"\nowners = ["x"]\n'
    data = tomllib.loads(text)
    assert _SourceMap(text, data).element(("rule", 0), "owners", 0, 1) == 3
    data["rule"].append({"id": "b"})  # a table the scan did not see
    smap = _SourceMap(text, data)
    assert smap.key(("rule", 0), "id") is None and smap.header(("rule", 0)) is None
    assert _SourceMap(text, {"rule": [{"owners": ["x"]}]}).key(("rule", 0), "owners") is None


# A small grammar of policy files: [[rule]] tables whose strings (of all four kinds), comments
# and multi-line arrays hold quotes, triple quotes, # and escapes, and exactly one mistake.

_CHUNKS = ["a", " ", "#", "'", '"', Q3, D3, "\\", "\\n", "\n", "\t", "[", "]", "[[rule]]"]
_CHUNKS += ["{", "}", "=", ",", "é", 'owners = ["x"]']
_tricky = st.lists(st.sampled_from(_CHUNKS), max_size=6).map("".join)


def _basic(text: str, unicode_quotes: bool) -> str:
    body = text.replace("\\", "\\\\").replace("\n", "\\n")
    return '"' + body.replace('"', "\\u0022" if unicode_quotes else '\\"') + '"'


def _ml_basic(text: str, split: bool) -> str:
    out, run = [], 0
    for char in text:
        if char == '"' and run < 2:
            out.append(char)
            run += 1
            continue
        out.append({"\\": "\\\\", '"': '\\"'}.get(char, char))
        run = 0
    if split:  # a line-ending backslash: it and the blanks and newlines after it are dropped
        out.insert(len(out) // 2, "\\\n  \n ")
    return D3 + "".join(out) + D3


@st.composite
def _strings(draw: st.DrawFn, text: str) -> str:
    """``text`` as a TOML string of a kind that can hold it."""
    kinds = ["basic", "basic-u"]
    if not text.startswith("\n"):  # a newline straight after the opening quotes is dropped
        kinds += ["ml-basic", "ml-basic-split"]
        if Q3 not in text:
            kinds.append("ml-literal")
    if "'" not in text and "\n" not in text:
        kinds.append("literal")
    kind = draw(st.sampled_from(kinds))
    if kind == "literal":
        return f"'{text}'"
    if kind == "ml-literal":
        return Q3 + text + Q3
    if kind.startswith("ml-basic"):
        return _ml_basic(text, kind.endswith("split"))
    return _basic(text, kind == "basic-u")


@st.composite
def _policy_files(draw: st.DrawFn) -> tuple[str, int, str]:
    """A policy file, the line of its one mistake, and the mistake's field."""
    parts: list[str] = []
    spot: list[int] = []  # where the mistake starts

    def comment() -> str:
        return draw(st.sampled_from(["", " # " + draw(_tricky).replace("\n", " ")]))

    def blank() -> None:
        parts.append(draw(st.sampled_from(["", "\n", comment().lstrip() + "\n"])))

    def array(values: list[str], bad: int | None) -> None:
        parts.append("[" + draw(st.sampled_from(["", comment() + "\n"])))
        for i, value in enumerate(values):
            parts.append(draw(st.sampled_from(["", " ", "\n  ", comment() + "\n\t"])))
            if i == bad:
                spot.append(len("".join(parts)))
            parts.append(draw(_strings(value)) + ("," if i < len(values) - 1 else ""))
        parts.append(draw(st.sampled_from(["", ",", ",\n", comment() + "\n"])) + "]")

    blank()
    parts.append("version = " + draw(_strings("v" + draw(_tricky))) + comment() + "\n")
    rules = draw(st.integers(1, 4))
    bad_rule = draw(st.integers(0, rules - 1))
    kinds = ["owners", "identities", "operations", "methods", "unknown", "id", "missing"]
    kind = draw(st.sampled_from(kinds))
    field = ""
    for n in range(rules):
        blank()
        if n == bad_rule and kind == "missing":
            spot.append(len("".join(parts)))
            field = f"rule[{n}].methods"
        parts.append(draw(st.sampled_from(["[[rule]]", "[[ rule ]]", '[["rule"]]'])))
        parts.append(comment() + "\n")
        good = {
            "id": [f"r{n}"],
            "identities": [f"psk:rof-{n}", "dns:rof.example"],
            "owners": ["msisdn-491511111", "extid-a@rof.example", "*"],
            "operations": ["authorize", "revoke"],
            "methods": ["psk", "certificate"],
            "description": ["d" + draw(_tricky)],
            "unknown": [draw(_tricky)],
        }
        keys = draw(st.permutations(list(good)))
        for key in keys:
            mine = n == bad_rule and key == kind
            if (key == "unknown" and not mine) or (n == bad_rule and kind == key == "missing"):
                continue
            if n == bad_rule and kind == "missing" and key == "methods":
                continue
            values = good[key][: draw(st.integers(1, len(good[key])))]
            bad = None
            if mine and key in ("owners", "identities", "operations", "methods"):
                bad = draw(st.integers(0, len(values)))
                values.insert(bad, "bad-" + draw(_tricky))
                field = f"rule[{n}].{key}[{bad}]"
            elif mine and key == "id":
                values, field = ["-" + draw(_tricky)], f"rule[{n}].id"
            blank()
            if key == "unknown":
                name = draw(st.sampled_from(["colour", '"co#l\'our"', "'p\"x'", "colour.x"]))
                field = f"rule[{n}].{next(iter(tomllib.loads(name + ' = 1')))}"
            else:
                name = draw(st.sampled_from([key, f'"{key}"', f"'{key}'"]))
            if mine and key in ("id", "unknown"):
                spot.append(len("".join(parts)))
            parts.append(name + draw(st.sampled_from([" = ", "=", " =\t"])))
            if key in ("id", "description", "unknown") or (bad is None and len(values) == 1):
                parts.append(draw(_strings(values[0])))
            else:
                array(values, bad)
            parts.append(comment() + "\n")
    text = "".join(parts)
    return text, text[: spot[0]].count("\n") + 1, field


@settings(max_examples=200, deadline=dt.timedelta(seconds=2))
@given(_policy_files())
def test_property_the_one_mistake_is_reported_at_its_line(case: tuple[str, int, str]) -> None:
    """Generated policy files with quotes, triple quotes, # and escapes in strings and
    comments, and arrays over several lines: the one mistake is reported with its own line
    and field, never another (issue 5: located errors)."""
    text, line, field = case
    assert _issues(text) == [(line, field)]


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as info:
        load_policy(tmp_path / "missing.toml")
    assert info.value.issues[0].line is None and "cannot read" in str(info.value)
    with pytest.raises(PolicyFileError) as info:
        loads_policy(b'version = "x"\n# \xff\n')
    assert info.value.issues[0].line == 2 and "UTF-8" in str(info.value)
    with pytest.raises(UsageError):
        loads_policy(42)  # type: ignore[arg-type]


def test_a_failed_reload_keeps_the_old_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    engine = PolicyEngine.from_file(path)
    assert engine.policy.version == "2026-11-28.1"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(PolicyFileError):
        engine.reload_file(path)
    assert engine.policy.version == "2026-11-28.1"
    path.write_text(EXAMPLE.replace("2026-11-28.1", "v2"), encoding="utf-8")
    assert engine.reload_file(path).version == "v2" and engine.policy.version == "v2"


# -- the same validation for Python objects --------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": 5}, "id"),
        ({"identities": []}, "identities"),
        ({"identities": ["rof-1"]}, "identities[0]"),
        ({"identities": [b"psk:x"]}, "identities[0]"),
        ({"identities": ["psk:ok", ""]}, "identities[1]"),
        ({"identities": ["ip:10.0.0.*"]}, "identities[0]"),
        ({"identities": ["psk:*"]}, "identities[0]"),
        ({"identities": 7}, "identities"),
        ({"owners": ["msisdn-12"]}, "owners[0]"),
        ({"owners": ["gpsi-*"]}, "owners[0]"),
        ({"owners": ["extid-no-domain"]}, "owners[0]"),
        ({"operations": ["delete"]}, "operations[0]"),
        ({"methods": ["oauth"]}, "methods[0]"),
        ({"purposes": ["x" * 257]}, "purposes[0]"),
        ({"asps": ["tab\there"]}, "asps[0]"),
        ({"apps": []}, "apps"),
    ],
)
def test_rule_objects_validate_each_field(changes: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "id": "r1",
        "identities": ["psk:rof-1"],
        "owners": ["msisdn-491700000001"],
        "operations": ["authorize"],
        "methods": ["psk"],
    }
    args.update(changes)
    with pytest.raises(UsageError) as info:
        Rule(**args)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{field}: ")


def test_rule_objects_normalize_and_deduplicate() -> None:
    rule = Rule(
        "r1",
        ("dns:A.Example", "dns:a.example", "dns:*.B.Example"),
        ("msisdn-12345", "msisdn-12345"),
        frozenset({Operation.AUTHORIZE}),
        {"psk", "certificate"},
    )
    assert rule.identities == ("dns:a.example", "dns:*.b.example")
    assert rule.owners == ("msisdn-12345",)
    assert rule.methods == frozenset({Method.PSK, Method.CERTIFICATE})


def test_policy_objects_refuse_duplicate_ids_and_non_rules() -> None:
    rule = Rule("r1", "psk:a", "msisdn-12345", "authorize", "psk")
    with pytest.raises(UsageError, match="used twice"):
        Policy(rules=[rule], ccf_rules=[rule])
    with pytest.raises(UsageError, match="Rule objects"):
        Policy(rules=["r1"])  # type: ignore[list-item]
    with pytest.raises(UsageError):
        PolicyEngine().reload("policy.toml")  # type: ignore[arg-type]


def test_the_documented_example_loads() -> None:
    """docs/policy.md's full example is a valid policy (and its precedence example holds)."""
    text = (Path(__file__).parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = loads_policy(block, source="docs/policy.md")
    assert [r.id for r in policy.rules] == [
        "rof-a",
        "rof-a-revocations",
        "partner-rofs",
        "legacy-password-rof",
    ]
    assert [r.id for r in policy.ccf_rules] == ["home-ccf"]


def test_arrays_nested_too_deeply_are_a_policy_file_error() -> None:
    """tomllib recurses once per nested array: a hostile file is a PolicyFileError, not a
    RecursionError (issue 5: located errors; found in review)."""
    with pytest.raises(PolicyFileError, match="nested too deeply"):
        loads_policy("version = " + "[" * 100_000 + "]" * 100_000)


def test_a_value_tomllib_cannot_read_is_a_policy_file_error(tmp_path: Path) -> None:
    """An integer past int()'s 4300-digit limit makes tomllib raise a bare ValueError; it is a
    PolicyFileError, and a reload keeps the old policy (found in review)."""
    text = "version = " + "1" * 4301 + "\n"
    with pytest.raises(PolicyFileError, match="cannot read"):
        loads_policy(text)
    path = tmp_path / "policy.toml"
    path.write_text(text)
    engine = PolicyEngine(Policy(version="old"))
    with pytest.raises(PolicyFileError):
        engine.reload_file(path)
    assert engine.policy.version == "old"


@pytest.mark.parametrize(
    ("line", "words"),
    [('identities = ["dns:*."]', "too broad"), ('asps = ""', "empty string")],
)
def test_values_refused_once_normalized_are_located(line: str, words: str) -> None:
    """Issue 5: located errors, also for values that only fail once normalized or that are an
    empty string (third review: a bare UsageError with no file or line)."""
    text = (
        '[[rule]]\nid = "r"\nidentities = ["psk:a"]\nowners = ["*"]\n'
        'operations = ["authorize"]\nmethods = ["psk"]\n'
    )
    key = line.split(" =")[0]
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(key + " ")) + "\n"
    text += line + "\n"
    with pytest.raises(PolicyFileError) as caught:
        loads_policy(text, source="p.toml")
    (issue,) = caught.value.issues
    assert (
        issue.line == text.count("\n")
        and issue.field.startswith(f"rule[0].{key}")
        and words in issue.message
    )
