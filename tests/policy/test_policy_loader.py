"""The TOML policy file: a full example loads; every mistake is reported with file, line and
field, all of them at once; Python objects validate the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

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
