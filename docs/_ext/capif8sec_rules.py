"""Sphinx directives that render capif8sec's rule catalogue from the code itself.

The tables in ``docs/rules.md`` and ``docs/security.md`` are not written by hand: they are built
at documentation time from :func:`capif8sec.certs.all_rules`, :data:`capif8sec.certs.PROFILES`
and :data:`capif8sec.certs.DEVIATIONS`, so the documentation cannot drift from the rules.

Directives (MyST syntax shown; reStructuredText works the same way):

```{capif8sec-rules}
```
    Every rule: id, clause, severity, requirement, applies to, profiles, deviation, summary.
    Option ``:profile: NAME`` restricts the table to one profile's rules.  The unfiltered table
    defines a reference label per rule, ``capif8sec-rule-<id>`` (used by the other tables).

```{capif8sec-profiles}
```
    The profiles: name, clause, title, roles, kind, number of rules.

```{capif8sec-criticality}
```
    Extension x profile matrix of the criticality each profile demands.

```{capif8sec-deviations}
```
    Every named deviation, what it allows, and the rules it switches off.

```{capif8sec-requirements}
:range: R1-R27
```
    Requirement number (spec digest R-item) -> the rules that cite it.

```{capif8sec-exports}
```
    The names ``capif8sec`` re-exports, each linked to the one place autodoc documents it
    (``capif8sec.certs`` or ``capif8sec.errors``), so no object is described twice.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeAlias

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

import capif8sec
from capif8sec.certs import DEVIATIONS, PROFILES, Profile, Rule, all_rules

__all__ = ["setup"]

_LABEL_PREFIX = "capif8sec-rule-"
_CRITICALITY_TEXT = {"critical": "critical", "non-critical": "non-critical", "any": "either"}

Cell: TypeAlias = "str | nodes.Node | Sequence[nodes.Node]"


def rule_label(rule_id: str) -> str:
    """The reference label of a rule's row in the full catalogue."""
    return _LABEL_PREFIX + rule_id


def _profiles_of(rule: Rule) -> list[str]:
    return [
        name for name, profile in PROFILES.items() if any(r.id == rule.id for r in profile.rules)
    ]


def _paragraph(cell: Cell) -> nodes.paragraph:
    if isinstance(cell, str):
        return nodes.paragraph("", cell)
    if isinstance(cell, nodes.Node):
        return nodes.paragraph("", "", cell)
    return nodes.paragraph("", "", *cell)


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    widths: Sequence[int],
    classes: Sequence[str] = (),
) -> nodes.table:
    table = nodes.table(classes=["capif8sec-generated", *classes])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    header_row = nodes.row()
    for text in headers:
        header_row += nodes.entry("", nodes.paragraph("", text))
    head += header_row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry("", _paragraph(cell))
        body += row
    return table


def _literals(values: Iterable[str]) -> list[nodes.Node]:
    out: list[nodes.Node] = []
    for i, value in enumerate(values):
        if i:
            out.append(nodes.Text(", "))
        out.append(nodes.literal(value, value))
    return out or [nodes.Text("—")]


class _CatalogueDirective(SphinxDirective):
    """Base: note the code the tables come from, so that edits to it trigger a rebuild."""

    has_content = False

    def note_sources(self) -> None:
        package = Path(capif8sec.__file__).parent
        for name in ("rules.py", "profiles.py"):
            self.env.note_dependency(str(package / "certs" / name))
        self.env.note_dependency(__file__)

    def rule_ref(self, rule_id: str) -> nodes.Node:
        """A cross-reference to a rule's row in the full catalogue (a warning if it is missing)."""
        ref = addnodes.pending_xref(
            "",
            nodes.literal(rule_id, rule_id),
            refdomain="std",
            reftype="ref",
            reftarget=rule_label(rule_id),
            refexplicit=True,
            refwarn=True,
            refdoc=self.env.docname,
        )
        return ref


class RulesDirective(_CatalogueDirective):
    """``capif8sec-rules``: the rule catalogue, one row a rule."""

    option_spec = {"profile": directives.unchanged_required}  # noqa: RUF012 (docutils API)

    def run(self) -> list[nodes.Node]:
        self.note_sources()
        rules = all_rules()
        profile_name = self.options.get("profile")
        define_labels = profile_name is None
        if profile_name is not None:
            if profile_name not in PROFILES:
                raise self.error(f"unknown profile {profile_name!r}; known: {', '.join(PROFILES)}")
            wanted = {r.id for r in PROFILES[profile_name].rules}
            rules = [r for r in rules if r.id in wanted]
        rows: list[list[Cell]] = []
        for rule in rules:
            id_cell: list[nodes.Node] = []
            if define_labels:
                id_cell.append(self._target(rule.id))
            id_cell.append(nodes.literal(rule.id, rule.id))
            profiles = _profiles_of(rule)
            rows.append(
                [
                    id_cell,
                    rule.clause,
                    rule.severity.value,
                    rule.requirement,
                    rule.applies_to,
                    _literals(profiles) if profiles else "chain validation",
                    _literals([rule.deviation]) if rule.deviation else "—",
                    rule.summary,
                ]
            )
        return [
            _table(
                [
                    "id",
                    "clause",
                    "severity",
                    "requirement",
                    "applies to",
                    "profiles",
                    "deviation",
                    "summary",
                ],
                rows,
                [18, 12, 6, 7, 12, 14, 12, 24],
                ["capif8sec-rules"],
            )
        ]

    def _target(self, rule_id: str) -> nodes.target:
        label = rule_label(rule_id)
        target = nodes.target("", "", ids=[nodes.make_id(label)], names=[label])
        self.state.document.note_explicit_target(target, target)
        return target


class ProfilesDirective(_CatalogueDirective):
    """``capif8sec-profiles``: one row a profile."""

    def run(self) -> list[nodes.Node]:
        self.note_sources()
        rows: list[list[Cell]] = []
        for profile in PROFILES.values():
            rows.append(
                [
                    nodes.literal(profile.name, profile.name),
                    profile.clause,
                    profile.title,
                    _literals(profile.roles) if profile.roles else "none (CA profile)",
                    "CA" if profile.is_ca else "end entity",
                    str(len(profile.rules)),
                ]
            )
        return [
            _table(
                ["profile", "clause", "title", "roles", "kind", "rules"],
                rows,
                [14, 14, 30, 18, 10, 6],
            )
        ]


class CriticalityDirective(_CatalogueDirective):
    """``capif8sec-criticality``: the extension criticality each profile demands."""

    def run(self) -> list[nodes.Node]:
        self.note_sources()
        profiles: list[Profile] = list(PROFILES.values())
        names: dict[str, str] = {}
        for profile in profiles:
            for oid in profile.criticality:
                names[oid.dotted_string] = _extension_name(oid.dotted_string, oid._name)
        rows: list[list[Cell]] = []
        for dotted in sorted(names, key=lambda d: names[d].lower()):
            cells: list[Cell] = [nodes.literal(names[dotted], names[dotted])]
            for profile in profiles:
                entry = {oid.dotted_string: v for oid, v in profile.criticality.items()}.get(dotted)
                cells.append(_CRITICALITY_TEXT[entry[0]] if entry else "non-critical (unlisted)")
            rows.append(cells)
        last: list[Cell] = [nodes.emphasis("", "any other extension")]
        last.extend("non-critical" for _ in profiles)
        rows.append(last)
        return [
            _table(
                ["extension", *(p.name for p in profiles)],
                rows,
                [22, *(12 for _ in profiles)],
            )
        ]


def _extension_name(dotted: str, name: str) -> str:
    if dotted == "1.3.6.1.5.5.7.1.34":
        return "nfTypes"
    return dotted if name == "Unknown OID" else name


class DeviationsDirective(_CatalogueDirective):
    """``capif8sec-deviations``: every named deviation and the rules it switches off."""

    def run(self) -> list[nodes.Node]:
        self.note_sources()
        rules = all_rules()
        rows: list[list[Cell]] = []
        for name, description in DEVIATIONS.items():
            switched = [self.rule_ref(r.id) for r in rules if r.deviation == name]
            cells: list[nodes.Node] = []
            for i, ref in enumerate(switched):
                if i:
                    cells.append(nodes.Text(", "))
                cells.append(ref)
            rows.append(
                [
                    nodes.literal(name, name),
                    description,
                    cells or [nodes.Text("—")],
                ]
            )
        return [
            _table(["deviation", "what it allows", "rules it switches off"], rows, [20, 50, 20])
        ]


_REQUIREMENT = re.compile(r"R(\d+)")


class RequirementsDirective(_CatalogueDirective):
    """``capif8sec-requirements``: spec-digest R-items and the rules that implement them."""

    option_spec = {"range": directives.unchanged_required}  # noqa: RUF012 (docutils API)

    def run(self) -> list[nodes.Node]:
        self.note_sources()
        spec = self.options.get("range", "R1-R27")
        match = re.fullmatch(r"R(\d+)-R(\d+)", spec.strip())
        if match is None:
            raise self.error(f"range must look like R1-R27, not {spec!r}")
        first, last = int(match.group(1)), int(match.group(2))
        by_item: dict[int, list[str]] = {}
        for rule in all_rules():
            for number in _REQUIREMENT.findall(rule.requirement):
                by_item.setdefault(int(number), []).append(rule.id)
        rows: list[list[Cell]] = []
        for item in range(first, last + 1):
            refs: list[nodes.Node] = []
            for i, rule_id in enumerate(by_item.get(item, [])):
                if i:
                    refs.append(nodes.Text(", "))
                refs.append(self.rule_ref(rule_id))
            rows.append([f"R{item}", refs or [nodes.Text("no rule (see below)")]])
        return [_table(["requirement", "rules citing it"], rows, [12, 80])]


class ExportsDirective(_CatalogueDirective):
    """``capif8sec-exports``: what ``import capif8sec`` offers, and where each is documented."""

    #: The modules whose ``automodule`` in api.md documents the re-exported objects.
    homes = ("capif8sec.certs", "capif8sec.errors")

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(Path(capif8sec.__file__)))
        self.env.note_dependency(__file__)
        modules = {name: importlib.import_module(name) for name in self.homes}
        rows: list[list[Cell]] = []
        for name in capif8sec.__all__:
            if name.startswith("__"):
                continue
            home = next(
                (m for m, module in modules.items() if name in getattr(module, "__all__", ())),
                None,
            )
            if home is None:
                raise self.error(f"capif8sec.{name} is not exported by any of {self.homes}")
            target = f"{home}.{name}"
            ref = addnodes.pending_xref(
                "",
                nodes.literal(target, target),
                refdomain="py",
                reftype="obj",
                reftarget=target,
                refexplicit=True,
                refwarn=True,
                refdoc=self.env.docname,
            )
            summary = _first_line(getattr(capif8sec, name).__doc__)
            rows.append([nodes.literal(f"capif8sec.{name}", f"capif8sec.{name}"), ref, summary])
        return [_table(["name", "documented as", "summary"], rows, [24, 32, 44])]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ").replace("``", "")


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the directives."""
    app.add_directive("capif8sec-rules", RulesDirective)
    app.add_directive("capif8sec-profiles", ProfilesDirective)
    app.add_directive("capif8sec-criticality", CriticalityDirective)
    app.add_directive("capif8sec-deviations", DeviationsDirective)
    app.add_directive("capif8sec-requirements", RequirementsDirective)
    app.add_directive("capif8sec-exports", ExportsDirective)
    return {
        "version": capif8sec.__version__,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
