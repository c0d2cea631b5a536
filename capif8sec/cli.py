"""The ``capif8sec`` command line.

Subcommands (the contracts other tools rely on are in docs/cli.md):

- ``capif8sec lint``  -- lint certificates against a TS 33.310 profile (and validate chains);
- ``capif8sec pki DIR`` -- write a conformant test PKI;
- ``capif8sec demo``  -- the CAPIF-8 exchange end to end on loopback, refusals included.

Exit codes: 0 success / compliant, 1 not compliant, 2 unusable input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509

from capif8sec import credentials_cli, serve_cli
from capif8sec.certs import (
    CHAIN_RULES,
    DEVIATIONS,
    PROFILES,
    ChainValidator,
    Finding,
    Severity,
    all_rules,
    get_profile,
    lint,
    load_certificates,
)
from capif8sec.errors import (
    Capif8secError,
    CertificateError,
    ChainValidationError,
    ProfileViolation,
    UsageError,
)

__all__ = ["main"]

EXIT_OK, EXIT_NONCOMPLIANT, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="capif8sec", description="CAPIF-8 reference point security toolkit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("lint", help="lint certificates against a TS 33.310 profile")
    p.add_argument("files", nargs="*", metavar="FILE", help="PEM or DER certificate files")
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="profile to lint against (default tls-entity; with --list-rules: "
        "only that profile's rules)",
    )
    p.add_argument("--role", choices=["server", "client", "both"])
    p.add_argument(
        "--ca",
        action="append",
        default=[],
        metavar="FILE",
        help="trust anchor(s); enables chain, validity and CRL checks",
    )
    p.add_argument(
        "--chain",
        action="append",
        default=[],
        metavar="FILE",
        help="untrusted intermediate certificate(s)",
    )
    p.add_argument("--crl", action="append", default=[], metavar="FILE", help="CRL file(s)")
    p.add_argument(
        "--deviation",
        action="append",
        default=[],
        choices=sorted(DEVIATIONS),
        help="apply a named deviation (recorded in every report)",
    )
    p.add_argument("--strict", action="store_true", help="report warnings as errors")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--list-rules", action="store_true", help="list every rule and exit")

    serve_cli.add_subparser(sub)

    p = sub.add_parser("probe", help="check a live TLS endpoint against the profiles")
    p.add_argument("target", metavar="HOST:PORT")
    p.add_argument("--ca", action="append", default=[], metavar="FILE")
    p.add_argument("--crl", action="append", default=[], metavar="FILE")
    p.add_argument("--cert", metavar="FILE")
    p.add_argument("--key", metavar="FILE")
    p.add_argument("--server-name", metavar="NAME")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = sub.add_parser("pki", help="write a conformant test PKI into DIR")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--key-type", default="p256", choices=["p256", "p384", "rsa2048", "rsa3072"])

    p = sub.add_parser(
        "demo", help="the CAPIF-8 exchange end to end on loopback, refusals included"
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    credentials_cli.add_subparser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``capif8sec`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "lint":
            return _cmd_lint(args, sys.stdout)
        if args.command == "serve":
            return serve_cli.run(args, sys.stdout)
        if args.command == "probe":
            return _cmd_probe(args, sys.stdout)
        if args.command == "pki":
            return _cmd_pki(args, sys.stdout)
        if args.command == "demo":
            return _cmd_demo(args, sys.stdout)
        if args.command == "credentials":
            return credentials_cli.run(args, sys.stdout)
    except UsageError as exc:
        print(f"capif8sec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `capif8sec lint --list-rules | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return EXIT_OK
    raise AssertionError("unreachable")  # pragma: no cover


# ----------------------------------------------------------------------------- lint


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _load_files(paths: Sequence[str]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs.extend(load_certificates(_read(path)))
        except CertificateError as exc:
            raise UsageError(f"{path}: {exc}") from None
    return certs


def _cmd_lint(args: argparse.Namespace, out: TextIO) -> int:
    if args.list_rules:
        return _list_rules(args.format, out, args.profile)
    if not args.files:
        raise UsageError("lint needs at least one FILE (or --list-rules)")
    profile = get_profile(args.profile or "tls-entity")
    role = profile.check_role(args.role)
    anchors = _load_files(args.ca)
    chain = _load_files(args.chain)
    crls = [_read(p) for p in args.crl]
    validator = None
    if anchors:
        if profile.is_ca:
            raise UsageError("--ca (chain validation) applies to end-entity profiles only")
        try:
            validator = ChainValidator(
                anchors, profile=profile, crls=crls, deviations=args.deviation, strict=args.strict
            )
        except CertificateError as exc:
            raise UsageError(f"--crl: {exc}") from None
    candidates = chain + anchors
    results: list[dict[str, Any]] = []
    status = EXIT_OK
    for path in args.files:
        result = _lint_file(path, profile.name, role, candidates, validator, args)
        results.append(result)
        if "error" in result:
            status = EXIT_USAGE
        elif not result["compliant"] and status == EXIT_OK:
            status = EXIT_NONCOMPLIANT
    if args.format == "json":
        json.dump({"results": results}, out, indent=2)
        out.write("\n")
    else:
        for result in results:
            out.write(_render(result) + "\n")
    return status


def _lint_file(
    path: str,
    profile: str,
    role: str | None,
    candidates: list[x509.Certificate],
    validator: ChainValidator | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    try:
        certs = load_certificates(Path(path).read_bytes())
    except OSError as exc:
        return {
            "file": path,
            "subject": None,
            "compliant": False,
            "findings": [],
            "error": f"cannot read: {exc.strerror}",
        }
    except CertificateError as exc:
        return {
            "file": path,
            "subject": None,
            "compliant": False,
            "findings": [],
            "error": str(exc),
        }
    leaf, extra = certs[0], certs[1:]
    issuer = _find_issuer(leaf, extra + candidates)
    report = lint(leaf, profile, role, issuer=issuer, deviations=args.deviation, strict=args.strict)
    findings = list(report.findings)
    deviations = list(report.deviations)
    if validator is not None and role is not None:
        findings.extend(
            _chain_findings(
                validator, leaf, extra + candidates, role, profile, report.rule_ids(Severity.ERROR)
            )
        )
        deviations = sorted(set(deviations) | set(validator.deviations))
    compliant = not any(f.severity is Severity.ERROR for f in findings)
    return {
        "file": path,
        "subject": report.subject,
        "profile": report.profile,
        "role": report.role,
        "compliant": compliant,
        "deviations": deviations,
        "findings": [f.as_dict() for f in findings],
    }


def _find_issuer(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject == cert.issuer:
            try:
                cert.verify_directly_issued_by(candidate)
            except Exception:  # noqa: S112 -- a non-matching candidate, try the next one
                continue
            return candidate
    return None


_CHAIN_CLAUSES = {rule.id: rule.clause for rule in CHAIN_RULES}


def _chain_findings(
    validator: ChainValidator,
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    role: str,
    profile: str,
    reported: set[str],
) -> list[Finding]:
    try:
        validator.verify(leaf, [c for c in pool if c not in validator.trust_anchors], role=role)
    except ProfileViolation as exc:
        # Errors the leaf's own lint already reported are not repeated; everything else is.
        return [
            Finding(
                exc.rule,
                _CHAIN_CLAUSES[exc.rule],
                Severity.ERROR,
                f"{report.subject} ({report.profile}): {f.rule}: {f.message}",
                f.field,
            )
            for index, report in enumerate(exc.reports)
            for f in report.errors
            if not (index == 0 and report.profile == profile and f.rule in reported)
        ]
    except ChainValidationError as exc:
        return [
            Finding(
                exc.rule, _CHAIN_CLAUSES.get(exc.rule, "TS 33.310 6.3.1"), Severity.ERROR, str(exc)
            )
        ]
    except Capif8secError as exc:
        return [Finding("chain.path", _CHAIN_CLAUSES["chain.path"], Severity.ERROR, str(exc))]
    return []


def _render(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"{result['file']}: UNUSABLE INPUT: {result['error']}"
    verdict = "COMPLIANT" if result["compliant"] else "NOT COMPLIANT"
    role = f" role={result['role']}" if result["role"] else ""
    lines = [
        f"{result['file']}: {result['subject']}: {verdict} (profile={result['profile']}{role})"
    ]
    if result["deviations"]:
        lines.append(f"  deviations applied: {', '.join(result['deviations'])}")
    for f in result["findings"]:
        lines.append(f"  {f['severity']:7} {f['rule']} ({f['clause']}): {f['message']}")
    return "\n".join(lines)


def _list_rules(fmt: str, out: TextIO, profile: str | None) -> int:
    only = {r.id for r in get_profile(profile).rules} if profile else None
    rules = [rule.as_dict() for rule in all_rules() if only is None or rule.id in only]
    for rule in rules:
        rule["profiles"] = (
            ",".join(
                name for name, p in PROFILES.items() if any(r.id == rule["rule"] for r in p.rules)
            )
            or "chain validation"
        )
    if fmt == "json":
        json.dump({"rules": rules}, out, indent=2)
        out.write("\n")
        return EXIT_OK
    for rule in rules:
        dev = f" [deviation: {rule['deviation']}]" if rule["deviation"] else ""
        out.write(
            f"{rule['rule']:38} {rule['severity']:7} {rule['clause']:34} {rule['requirement']:10}"
            f" {rule['summary']}{dev}\n"
        )
    return EXIT_OK


# ----------------------------------------------------------------------------- pki, demo


def _cmd_pki(args: argparse.Namespace, out: TextIO) -> int:
    from capif8sec.testing import TestPKI

    paths = TestPKI(args.key_type).write(args.directory)
    for name, path in paths.items():
        out.write(f"wrote {path}{' (mode 0600)' if name.endswith('.key') else ''}\n")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from capif8sec.demo import run_demo

    return run_demo(args.format, out)


# ----------------------------------------------------------------------------- serve, probe


def _cmd_probe(args: argparse.Namespace, out: TextIO) -> int:
    from capif8sec.integrations.probe import Unreachable, probe

    host, sep, port_text = args.target.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise UsageError("target must be HOST:PORT")
    host = host.strip("[]")
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together")
    try:
        result = probe(
            host,
            int(port_text),
            cas=[_read(p) for p in args.ca],
            crls=[_read(p) for p in args.crl],
            cert=args.cert,
            key=args.key,
            server_name=args.server_name,
            timeout=args.timeout,
        )
    except Unreachable as exc:
        print(f"capif8sec: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        json.dump(result.as_dict(), out, indent=2)
        out.write("\n")
    else:
        for c in result.checks:
            out.write(f"{c.result:12} {c.check} ({c.clause}): {c.message}\n")
        out.write(f"\n{result.target}: {'COMPLIANT' if result.compliant else 'NOT COMPLIANT'}\n")
    return EXIT_OK if result.compliant else EXIT_NONCOMPLIANT
