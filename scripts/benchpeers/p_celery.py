"""Celery (Redis broker, no result backend): `apply_async`, `celery worker --pool=solo`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis
from celery import Celery

from benchpeers.common import QUEUE, URL_ENV, Adapter, record

app = Celery("bench", broker=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="noop")
def noop(i: int = -1, t0: float = 0.0) -> None:
    """The task."""
    record(i, t0)


class CeleryAdapter(Adapter):
    """Publishes through the module's app."""

    def __init__(self) -> None:
        super().__init__(name="celery", batch_how="no batch API: apply_async loop, one producer",
                         worker_how="celery worker --pool=solo --concurrency=1, no result "
                         "backend, default prefetch (4)")

    def open(self, url: str) -> None:
        super().open(url)
        self.sync = redis.Redis.from_url(url)

    def close(self) -> None:
        self.sync.close()

    def deposit_one(self, i: int) -> None:
        noop.apply_async((i, time.time()))

    def deposit_each(self, n: int) -> None:
        for _ in range(n):
            noop.apply_async()

    def deposit_batch(self, n: int) -> None:
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        return [str(bin_dir / "celery"), "-A", "benchpeers.p_celery", "worker", "--pool=solo",
                "--concurrency=1", "-Q", QUEUE, "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING"]  # fmt: skip

    def pending(self) -> int:
        return int(self.sync.llen(QUEUE)) + int(self.sync.hlen("unacked"))


ADAPTER = CeleryAdapter
