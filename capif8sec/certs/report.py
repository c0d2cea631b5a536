"""Lint results as data: findings and reports, rendered as text or JSON-ready dicts."""

from __future__ import annotations

import enum
from typing import Any

from attrs import frozen

__all__ = ["Finding", "Report", "Severity"]


class Severity(enum.StrEnum):
    """How bad a finding is.  Only ``ERROR`` findings make a certificate non-compliant."""

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"

    def __str__(self) -> str:
        return self.value


@frozen
class Finding:
    """One rule's verdict on one certificate.

    ``clause`` is the specification clause the finding rests on (usually the rule's own clause);
    ``field`` names the part of the certificate concerned (e.g. ``extensions.keyUsage``).
    """

    rule: str
    clause: str
    severity: Severity
    message: str
    field: str = ""
    requirement: str = ""

    def as_dict(self) -> dict[str, str]:
        """The JSON form: ``rule``, ``clause``, ``severity``, ``message``, ``field``."""
        return {
            "rule": self.rule,
            "clause": self.clause,
            "severity": self.severity.value,
            "message": self.message,
            "field": self.field,
        }

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.severity.value:7} {self.rule} ({self.clause}){where}: {self.message}"


@frozen
class Report:
    """Everything one lint run found about one certificate."""

    subject: str
    profile: str
    role: str | None
    findings: tuple[Finding, ...]
    deviations: tuple[str, ...] = ()
    fingerprint_sha256: str = ""

    @property
    def compliant(self) -> bool:
        """True when no finding has severity ``error``."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The error findings only."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    def rule_ids(self, severity: Severity | None = None) -> set[str]:
        """The ids of the rules that produced findings (optionally of one severity)."""
        return {f.rule for f in self.findings if severity is None or f.severity is severity}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "subject": self.subject,
            "profile": self.profile,
            "role": self.role,
            "compliant": self.compliant,
            "deviations": list(self.deviations),
            "fingerprint_sha256": self.fingerprint_sha256,
            "findings": [f.as_dict() for f in self.findings],
        }

    def to_text(self) -> str:
        """A human-readable rendering, one finding a line."""
        role = f" role={self.role}" if self.role else ""
        verdict = "COMPLIANT" if self.compliant else "NOT COMPLIANT"
        lines = [f"{self.subject}: {verdict} (profile={self.profile}{role})"]
        if self.deviations:
            lines.append(f"  deviations applied: {', '.join(self.deviations)}")
        lines.extend(f"  {f}" for f in self.findings)
        return "\n".join(lines)
