"""RQ: `Queue.enqueue` / `enqueue_many` (one pipeline), `rq worker` Simple and forking."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from rq import Queue

from benchpeers.common import QUEUE, Adapter, record

SIMPLE, FORKING = "rq SimpleWorker", "rq Worker (fork)"
TASK = "benchpeers.p_rq.noop"


def noop(i: int = -1, t0: float = 0.0) -> None:
    """The job function, imported by the worker (or its forked work horse)."""
    record(i, t0)


class RQAdapter(Adapter):
    """RQ's own API; the worker is the `rq worker` command."""

    conn: redis.Redis
    queue: Queue

    def __init__(self) -> None:
        super().__init__(name="rq", batch_how="Queue.enqueue_many: one pipeline")

    @property
    def variants(self) -> dict[str, str]:
        return {SIMPLE: "rq.worker.SimpleWorker", FORKING: "rq.worker.Worker"}

    def describe(self, variant: str) -> str:
        if variant == SIMPLE:
            return "rq worker -w rq.worker.SimpleWorker: jobs run in the worker process"
        return "rq worker (default Worker): forks a work horse per job"

    def open(self, url: str) -> None:
        super().open(url)
        self.conn = redis.Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.conn)

    def close(self) -> None:
        self.conn.close()

    def deposit_one(self, i: int) -> None:
        t0 = time.time()
        self.queue.enqueue(TASK, i, t0)

    def deposit_each(self, n: int) -> None:
        for _ in range(n):
            self.queue.enqueue(TASK)

    def deposit_batch(self, n: int) -> None:
        self.queue.enqueue_many([Queue.prepare_data(TASK) for _ in range(n)])

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        argv = [str(bin_dir / "rq"), "worker", "--url", self.url, "-w", self.variants[variant],
                "--logging_level", "WARNING", QUEUE]  # fmt: skip
        return [*argv, "--burst"] if burst else argv

    def pending(self) -> int:
        return self.queue.count + self.queue.started_job_registry.count


ADAPTER = RQAdapter
