"""Helpers for the worker tests: `workflow run` as a real subprocess, a `Worker` in a
thread of the test process, journals written by `userfns`, and polling with deadlines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from workflow import Client, Work
from workflow.worker import Worker

from ..helpers import wait_until

HERE = Path(__file__).parent
FN = "userfns."
"""Prefix of user functions for subprocess workers (they run with cwd = this folder)."""
IN_FN = "tests.worker.userfns."
"""Prefix of user functions for a `Worker` run inside the test process."""
LEASE_MS = 1500
"""Default lease of the test workers: heartbeats every 0.5 s."""
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    return wait_until(check, timeout, poll_s=0.02, what=what)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events `userfns.note` appended to `path` (none if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def events(path: Path, event: str) -> list[dict[str, Any]]:
    return [e for e in read_journal(path) if e["event"] == event]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped yet counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The pids of the live processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    """Children, grandchildren... of `pid`."""
    found = children(pid)
    for child in list(found):
        found += descendants(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_of(client: Client, work: Work) -> str:
    return client.get(work.id, pipeline=work.pipeline).status  # type: ignore[arg-type]


def wait_status(client: Client, work: Work, *statuses: str, timeout: float = 10.0) -> Work:
    """Poll until the work is in one of `statuses`; returns the stored work."""

    def check() -> Work | None:
        stored = client.get(work.id, pipeline=work.pipeline)  # type: ignore[arg-type]
        return stored if stored.status in statuses else None

    return wait_for(check, timeout, f"work {work.id} to be {'/'.join(statuses)}")


def worker_command(
    url: str, prefix: str, *args: str, lease_ms: int | None = LEASE_MS, sleep: float = 0.2
) -> list[str]:
    """`workflow --redis-url URL --prefix PREFIX run --sleep S [--lease-ms L] ARGS...`."""
    return [
        sys.executable,
        "-m",
        "workflow.cli.main",
        "--redis-url",
        url,
        "--prefix",
        prefix,
        "run",
        "--sleep",
        str(sleep),
        *(["--lease-ms", str(lease_ms)] if lease_ms else []),
        *args,
    ]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test environment, less any connection settings that could leak in."""
    leaks = ("WORKFLOW_REDIS_URL", "WORKFLOW_PREFIX", "WORKFLOW_LEASE_MS")
    env = {k: v for k, v in os.environ.items() if k not in leaks}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


class WorkerProcess:
    """`workflow run ...` as a subprocess; its output (the log) goes to a file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.args, self.log_path = args, log_path
        self._out = open(log_path, "wb")  # noqa: SIM115 (closed in `close`)
        self.proc = subprocess.Popen(
            args, cwd=HERE, stdout=self._out, stderr=subprocess.STDOUT, env=env
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> WorkerProcess:
        """Until the worker has started its children and reached Redis."""
        wait_for(
            lambda: ": pipelines " in self.log() or self.proc.poll() is not None,
            timeout,
            "the worker to start",
        )
        assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"
        return self

    def wait(self, timeout: float = 15.0) -> int:
        """The exit code, waiting at most `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout} s:\n{self.log()}") from None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        """Kill the worker if it still runs, and whatever it started that outlived it (a
        killed worker's children should die with it, but see test_kill.py)."""
        left = descendants(self.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        for pid in left:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._out.close()


@pytest.fixture
def start_worker(client: Client, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `workflow run ARGS...` against the test server; killed at teardown.

    `lease_ms` and `sleep` are passed as `--lease-ms` / `--sleep` (short by default);
    `env` adds environment variables."""
    started: list[WorkerProcess] = []

    def start(
        *args: str,
        lease_ms: int | None = LEASE_MS,
        sleep: float = 0.2,
        ready: bool = True,
        env: dict[str, str] | None = None,
        url: str | None = None,
    ) -> WorkerProcess:
        cmd = worker_command(
            url or client.settings.url,
            client.settings.prefix,
            *args,
            lease_ms=lease_ms,
            sleep=sleep,
        )
        worker = WorkerProcess(cmd, tmp_path / f"worker-{len(started)}.log", worker_env(env))
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in started:
        worker.close()


class ThreadWorker:
    """A `Worker` running in a thread of the test process (no signal handlers)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-worker")
        self.thread.start()

    def _run(self) -> None:
        self.code = self.worker.run()

    def join(self, timeout: float = 15.0) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"worker thread still running after {timeout} s"
        assert self.code is not None
        return self.code


@pytest.fixture
def thread_worker(client: Client, make_client: Callable[..., Client]) -> Iterator[Callable]:
    """Run `Worker(client, pipelines, function, **options)` in a thread, on
    `worker_client` (default: the test settings with a short lease). The worker is stopped
    and its client closed at teardown."""
    started: list[ThreadWorker] = []
    given: list[Client] = []

    def start(
        pipelines: list[str],
        function: str | None = None,
        *,
        worker_client: Client | None = None,
        **options: Any,
    ) -> ThreadWorker:
        if worker_client is not None:
            given.append(worker_client)
        c = worker_client or make_client(lease_ms=LEASE_MS)
        options.setdefault("sleep_s", 0.2)
        tw = ThreadWorker(Worker(c, pipelines, function, **options))
        started.append(tw)
        return tw

    yield start
    for tw in started:
        tw.worker.stop(now=True)
        tw.thread.join(15)
    for c in given:
        c.close()
