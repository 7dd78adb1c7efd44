"""workflow: `Client.deposit`, and the `workflow run` worker (in-process and isolated)."""

from __future__ import annotations

import time
from pathlib import Path

from benchpeers.common import QUEUE, Adapter, record
from workflow import Client, Settings, Work

PREFIX = "bench"
FUNCTION = "benchpeers.p_workflow.noop"
IN_PROCESS, ISOLATED = "workflow in-process", "workflow isolated"


def noop(i: int = -1, t0: float = 0.0) -> None:
    """The work `workflow run` calls with the work's parameters."""
    record(i, t0)


class WorkflowAdapter(Adapter):
    """Deposits through the public `Client`; works run by `workflow run ... -c 1`."""

    client: Client

    def __init__(self) -> None:
        super().__init__(name="workflow", batch_how="client.deposit(list): 500 per script call")

    @property
    def variants(self) -> dict[str, str]:
        return {IN_PROCESS: "--in-process", ISOLATED: "-c 1 (one warm child process)"}

    def describe(self, variant: str) -> str:
        how = "runs works in the worker process" if variant == IN_PROCESS else (
            "-c 1: one warm child process runs the works")
        return f"workflow run (--burst in drains), {how}"

    def open(self, url: str) -> None:
        super().open(url)
        self.client = Client(Settings(url=url, prefix=PREFIX))

    def close(self) -> None:
        self.client.close()

    def deposit_one(self, i: int) -> None:
        work = Work(pipeline=QUEUE)  # built (and validated) before the clock starts
        t0 = time.time()
        work.parameters = {"i": i, "t0": t0}
        self.client.deposit([work])

    def deposit_each(self, n: int) -> None:
        for _ in range(n):
            self.client.deposit([Work(pipeline=QUEUE)])

    def deposit_batch(self, n: int) -> None:
        self.client.deposit([Work(pipeline=QUEUE) for _ in range(n)])

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        argv = [str(bin_dir / "workflow"), "--redis-url", self.url, "--prefix", PREFIX, "run",
                QUEUE, FUNCTION, "-c", "1", "--log-level", "WARNING"]  # fmt: skip
        if variant == IN_PROCESS:
            argv.append("--in-process")
        if burst:
            argv.append("--burst")
        return argv

    def pending(self) -> int:
        counts = self.client.counts(QUEUE)
        return counts["queued"] + counts["delayed"] + counts["running"]


ADAPTER = WorkflowAdapter
