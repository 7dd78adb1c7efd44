"""`examples/*.py` run in the test suite, against the private server, so they never rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflow.server import PrivateServer

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: Path, redis_server: PrivateServer, client: object) -> None:
    env = {**os.environ, "WORKFLOW_REDIS_URL": redis_server.url, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if path.name == "demo.py":
        text = " ".join(proc.stdout.split())  # rich wraps long lines at 80 columns
        assert "57/60 works succeeded, 3 failed" in text
        assert "exit codes [0, 0]" in text
        assert "60 results tagged 'demo'" in text
        assert all(f"beam {b}" in text for b in (307, 327, 347))
    if path.name == "reference_usage.py":
        assert "success 3 1" in proc.stdout
