"""Dramatiq: `Actor.send` (no batch API), the `dramatiq` worker command (Redis broker)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from benchpeers.common import QUEUE, URL_ENV, Adapter, record

THREADS = 8
"""Dramatiq's default worker threads per process."""

broker = RedisBroker(url=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(i: int = -1, t0: float = 0.0) -> None:
    """The actor."""
    record(i, t0)


class DramatiqAdapter(Adapter):
    """Sends through the module's broker (built from `$BENCH_REDIS_URL`)."""

    def __init__(self) -> None:
        super().__init__(name="dramatiq", batch_how="no batch API: send() loop",
                         worker_how=f"dramatiq --processes 1 --threads {THREADS} (its default "
                         "threads)")

    def open(self, url: str) -> None:
        super().open(url)
        self.sync = redis.Redis.from_url(url)

    def close(self) -> None:
        self.sync.close()

    def deposit_one(self, i: int) -> None:
        noop.send(i, time.time())

    def deposit_each(self, n: int) -> None:
        for _ in range(n):
            noop.send()

    def deposit_batch(self, n: int) -> None:
        self.deposit_each(n)

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        return [str(bin_dir / "dramatiq"), "benchpeers.p_dramatiq", "--processes", "1",
                "--threads", str(THREADS), "--queues", QUEUE]  # fmt: skip

    def pending(self) -> int:
        return int(self.sync.hlen(f"dramatiq:{QUEUE}.msgs"))  # a message leaves it when acked


ADAPTER = DramatiqAdapter
