"""sslyze in its own virtual environment, the servers it scans, its verdicts (not a test module).

- :func:`provision` creates ``.venv-sslyze/venv`` under the repository (git-ignored, removed by
  ``make clean``) once and reuses it: sslyze pins an older ``cryptography`` than capif8sec
  needs, so it cannot share the test environment.  The venv is built with ``python3`` from
  ``PATH`` (the same one for both CI interpreters), under a file lock, and a stamp written last
  marks it complete.  Without a registry it raises :class:`SslyzeUnavailable` (the tests skip).
- :func:`listening` starts a server process that prints ``listening on https://HOST:PORT`` and
  always stops it; its stderr goes to a file (a scan makes hundreds of connections, and a full
  pipe would block the server).
- :func:`run_sslyze` runs the sslyze command line with a custom TLS configuration and returns the
  JSON document and the per-server verdicts of its compliance check.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SSLYZE_REQUIREMENT",
    "SslyzeRun",
    "SslyzeUnavailable",
    "Verdict",
    "listening",
    "provision",
    "run_sslyze",
]

#: sslyze 6: ``--custom_tls_config`` (Mozilla-format JSON) and the JSON output read here.
SSLYZE_REQUIREMENT = "sslyze~=6.0"
REPO = Path(__file__).resolve().parents[2]
#: Where the venv lives; ``CAPIF8SEC_SSLYZE_HOME`` moves it.
HOME = Path(os.environ.get("CAPIF8SEC_SSLYZE_HOME", REPO / ".venv-sslyze"))
#: Seconds pip may take to install sslyze (about 25 s with a registry).
INSTALL_TIMEOUT = 300.0
#: Seconds one sslyze run may take (about 5 s for three loopback servers).
SCAN_TIMEOUT = 240.0


class SslyzeUnavailable(Exception):
    """sslyze could not be installed (no registry, no wheel for this platform, ...)."""


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def provision(home: Path = HOME) -> Path:
    """The Python of a venv with sslyze installed; created on first use, then reused.

    :raises SslyzeUnavailable: venv creation or ``pip install`` failed (the reason is in the
        message).
    """
    venv = home / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".capif8sec-sslyze"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be creating it right now
        if python.exists() and stamp.is_file() and stamp.read_text() == SSLYZE_REQUIREMENT:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = shutil.which("python3") or sys.executable
        steps: list[tuple[str, list[str]]] = [
            ("python3 -m venv", [base, "-m", "venv", str(venv)]),
            (
                f"pip install {SSLYZE_REQUIREMENT}",
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--timeout",
                    "20",
                    "--retries",
                    "1",
                    SSLYZE_REQUIREMENT,
                ],
            ),
            ("import sslyze", [str(python), "-c", "import sslyze"]),
        ]
        for what, argv in steps:
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(venv, ignore_errors=True)
                raise SslyzeUnavailable(f"{what}: {exc}") from None
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise SslyzeUnavailable(
                    f"{what} exited {done.returncode}: {_tail(done.stderr or done.stdout, 2)}"
                )
        stamp.write_text(SSLYZE_REQUIREMENT)
    return python


# --------------------------------------------------------------------------- servers


@contextmanager
def listening(
    argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[int]:
    """Run ``argv`` until the block ends; yield the port of its ``listening on`` line."""
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().decode(errors="replace") if ready else ""
        if not line.startswith("listening on https://"):
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"{argv[-1]!r} did not start: {line!r}; stderr: {_tail(log.read_text())}"
            )
        yield int(line.strip().rsplit(":", 1)[1])
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --------------------------------------------------------------------------- sslyze


@dataclass(frozen=True)
class Verdict:
    """One server's line in sslyze's "compliance against TLS configuration" section."""

    status: str  # "compliant", "not compliant" or "error"
    issues: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SslyzeRun:
    """What one sslyze run produced."""

    returncode: int
    console: str
    document: dict[str, Any]
    verdicts: dict[str, Verdict]
    seconds: float

    @property
    def version(self) -> str:
        return str(self.document.get("sslyze_version", "?"))

    def result(self, port: int) -> dict[str, Any]:
        """The ``scan_result`` of the server on ``port``."""
        for server in self.document["server_scan_results"]:
            if server["server_location"]["port"] == port:
                assert server["scan_status"] == "COMPLETED", server["connectivity_error_trace"]
                result: dict[str, Any] = server["scan_result"]
                return result
        raise AssertionError(f"no scan result for port {port}")

    def accepted(self, port: int, version: str) -> set[str]:
        """IANA names of the suites accepted under ``version`` (``"1_2"``, ``"1_3"``, ...)."""
        attempt = self.result(port)[f"tls_{version}_cipher_suites"]
        assert attempt["status"] == "COMPLETED", attempt["error_trace"]
        return {s["cipher_suite"]["name"] for s in attempt["result"]["accepted_cipher_suites"]}

    def scan(self, port: int, command: str) -> dict[str, Any]:
        """The result of one scan command (``tls_compression``, ``elliptic_curves``, ...)."""
        attempt = self.result(port)[command]
        assert attempt["status"] == "COMPLETED", attempt["error_trace"]
        result: dict[str, Any] = attempt["result"]
        return result


_TITLE = "COMPLIANCE AGAINST TLS CONFIGURATION"
_VERDICT = re.compile(r"^\s+(\S+:\d+): (OK - Compliant|FAILED - Not compliant|ERROR - .*?)\.?$")
_ISSUE = re.compile(r"^\s+\* (\w+): (.*)$")


def parse_verdicts(console: str) -> dict[str, Verdict]:
    """``host:port`` -> verdict, from the console output's compliance section."""
    _, found, section = console.partition(_TITLE)
    if not found:
        return {}
    verdicts: dict[str, Verdict] = {}
    current: Verdict | None = None
    for line in section.splitlines():
        match = _VERDICT.match(line)
        if match:
            outcome = match.group(2)
            status = (
                "compliant"
                if outcome.startswith("OK")
                else "not compliant"
                if outcome.startswith("FAILED")
                else "error"
            )
            current = verdicts[match.group(1)] = Verdict(status)
            continue
        issue = _ISSUE.match(line)
        if issue and current is not None:
            current.issues[issue.group(1)] = issue.group(2)
    return verdicts


def run_sslyze(
    python: Path,
    targets: Sequence[str],
    *,
    profile: Path,
    ca_file: Path,
    client_cert: Path,
    client_key: Path,
    json_out: Path,
    extra: Sequence[str] = ("--early_data", "--resum"),
) -> SslyzeRun:
    """Scan ``targets`` (``HOST:PORT{IP}``) against ``profile`` in one sslyze run."""
    argv = [
        str(python),
        "-m",
        "sslyze",
        "--custom_tls_config",
        str(profile),
        "--certinfo_ca_file",
        str(ca_file),
        "--cert",
        str(client_cert),
        "--key",
        str(client_key),
        "--json_out",
        str(json_out),
        *extra,
        *targets,
    ]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=SCAN_TIMEOUT, check=False)
    seconds = time.monotonic() - start
    console = done.stdout + done.stderr
    with contextlib.suppress(FileNotFoundError):
        document = json.loads(json_out.read_text())
        return SslyzeRun(done.returncode, console, document, parse_verdicts(done.stdout), seconds)
    raise AssertionError(f"sslyze wrote no JSON (exit {done.returncode}): {console[-3000:]}")
