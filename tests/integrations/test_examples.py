"""The runnable examples: each is one command that exits 0 when every outcome was as expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("script", "needs"),
    [
        ("ccf-azf-uvicorn/ccf_azf_uvicorn.py", ("uvicorn", "httpx")),
        ("rof-hypercorn/rof_hypercorn.py", ("hypercorn", "aiohttp")),
    ],
)
def test_example_runs(script: str, needs: tuple[str, ...]) -> None:
    for package in needs:
        pytest.importorskip(package, reason=f"the example needs {package} (an extra)")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("all outcomes as expected")
    assert "FAIL" not in proc.stdout
