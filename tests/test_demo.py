"""``capif8sec demo``: the whole CAPIF-8 story on loopback, both directions, every method.

The demo decides for itself whether each outcome was the expected one; these tests also read
its JSON and check the outcomes and their reasons one by one, so that a demo that let a refusal
through, or refused for the wrong reason, fails here.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from capif8sec.demo import run_demo
from capif8sec.tls.psk import HAS_PSK

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    out = io.StringIO()
    status = run_demo("json", out)
    result: dict[str, Any] = json.loads(out.getvalue())
    assert status == (0 if result["ok"] else 1)
    return result


def _step(demo: dict[str, Any], prefix: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [s for s in demo["steps"] if s["step"].startswith(prefix)]
    assert len(steps) == 1, prefix
    return steps[0]


def test_every_outcome_is_the_expected_one(demo: dict[str, Any]) -> None:
    assert demo["ok"], [s for s in demo["steps"] if not s["ok"]]
    assert all(s["expected"] == s["actual"] for s in demo["steps"])


def test_both_directions_and_every_rof_method(demo: dict[str, Any]) -> None:
    """The CCF is the TLS client towards the ROF and the server for the ROFs; the ROFs
    authenticate by certificate, PSK and password (TR 33.700-22 solution #2)."""
    accepted = [s for s in demo["steps"] if s["actual"] == "accepted" and s["direction"] != "-"]
    assert {s["direction"] for s in accepted} == {"CCF -> ROF", "ROF -> CCF"}
    methods = {s["method"] for s in accepted}
    assert {"certificate", "password"} <= methods
    assert ("psk (TLS)" if HAS_PSK else "psk (in-channel)") in methods


def test_the_ccf_request_is_answered_and_checked(demo: dict[str, Any]) -> None:
    step = _step(demo, "CCF asks ROF-A for owner")
    assert step["actual"] == "accepted"
    assert "granted 3gpp-monitoring-event:read" in step["detail"]
    assert step["policy"].startswith("allowed by rule rof-a")


@pytest.mark.parametrize(
    ("prefix", "evidence"),
    [
        ("a TLS 1.1 client", "TLS 1.1 ClientHello"),  # R24
        ("an ROF certificate without a CRL distribution point", "ee.crl_distribution_point"),
        ("ROF-C with a wrong PSK", "handshake failed" if HAS_PSK else "HTTP 401"),  # R44
        ("ROF-B with a wrong password", "HTTP 401"),  # R53
        ("ROF-A answers for owner", "owner-not-allowed"),  # R59
        ("a CCF that ROF-A does not accept", "ccf-not-accepted"),  # R56
    ],
)
def test_each_refusal_is_refused_for_its_reason(
    demo: dict[str, Any], prefix: str, evidence: str
) -> None:
    step = _step(demo, prefix)
    assert step["expected"] == step["actual"] == "refused"
    assert evidence in step["detail"] + step["policy"]


def test_the_notes_say_which_psk_mode_and_why(demo: dict[str, Any]) -> None:
    notes = " ".join(demo["notes"])
    if HAS_PSK:
        assert "TLS-level PSK" in notes
    else:
        assert "needs Python >= 3.13" in notes and "inside the channel" in notes


def test_the_cli_prints_a_table_within_the_time_budget() -> None:
    """What ``make demo`` runs: a table, exit status 0, well under 30 seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from capif8sec.cli import main; sys.exit(main())",
            "demo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all outcomes as expected" in result.stdout
    assert "expected  actual" in result.stdout
    assert elapsed < 30
