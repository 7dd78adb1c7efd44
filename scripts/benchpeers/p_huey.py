"""huey (RedisHuey, blocking dequeue): calling the task enqueues it; `huey_consumer`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from huey import RedisHuey

from benchpeers.common import QUEUE, URL_ENV, Adapter, record

huey = RedisHuey(QUEUE, url=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"), results=False)


@huey.task()
def noop(i: int = -1, t0: float = 0.0) -> None:
    """The task."""
    record(i, t0)


class HueyAdapter(Adapter):
    """Enqueues through the module's RedisHuey."""

    def __init__(self) -> None:
        super().__init__(name="huey", batch_how="no batch API: call loop",
                         worker_how="huey_consumer -w 1 -k thread, RedisHuey (blocking "
                         "BRPOP), results off")

    def deposit_one(self, i: int) -> None:
        noop(i, time.time())

    def deposit_each(self, n: int) -> None:
        for _ in range(n):
            noop()

    def deposit_batch(self, n: int) -> None:
        self.deposit_each(n)

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        return [str(bin_dir / "huey_consumer"), "benchpeers.p_huey.huey", "-w", "1", "-k",
                "thread", "-q"]  # fmt: skip

    def pending(self) -> int:
        return int(huey.pending_count())


ADAPTER = HueyAdapter
