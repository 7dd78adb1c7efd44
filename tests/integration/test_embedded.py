"""With no WORKFLOW_REDIS_URL, the library starts the embedded server and works over its
unix socket: the path a new user's first `Work(...).deposit()` takes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow import Client, Work
from workflow.server import stop_embedded

pytestmark = pytest.mark.standalone  # its own unix-socket server: the same in a cluster run


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="wfe-", dir="/tmp"))  # short: a socket path
    monkeypatch.setenv("WORKFLOW_HOME", str(directory))
    monkeypatch.delenv("WORKFLOW_REDIS_URL", raising=False)
    try:
        yield directory
    finally:
        stop_embedded(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_client_without_url_uses_the_embedded_server(home: Path) -> None:
    with Client() as client:
        assert client.settings.url.startswith("unix://")
        work = Work(pipeline="embedded", parameters={"a": 1})
        client.deposit([work])
        [got] = client.withdraw("embedded", timeout_s=1)
        got.results = {"ok": True}
        got.status = "success"
        client.update(got)
        assert client.get(work.id).status == "success"
        assert client.withdraw("embedded", timeout_s=0.2) == []  # the blocking connection too


@pytest.mark.slow
def test_worker_and_cli_attach_to_the_same_embedded_server(home: Path) -> None:
    with Client() as client:
        client.deposit([Work(pipeline="embedded", command=["true"]) for _ in range(3)])
    cli = [sys.executable, "-m", "workflow.cli.main"]
    proc = subprocess.run([*cli, "run", "embedded", "--burst"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "using embedded server" in proc.stderr
    out = subprocess.run([*cli, "counts", "embedded", "--json"], capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert '"success": 3' in out.stdout
