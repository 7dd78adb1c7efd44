"""arq: `ArqRedis.enqueue_job` (no batch API: concurrent calls), `arq.worker.run_worker`.

The worker is arq's own `Worker` with its defaults (max_jobs 10, poll_delay 0.5 s),
started by `python -m benchpeers.p_arq` instead of the `arq` command only to set logging
to WARNING, as for every library (arq logs every job at INFO otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import redis
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import run_worker

from benchpeers.common import Adapter, record, redis_url

IN_FLIGHT = 100
"""Concurrent enqueue calls of the "batched" deposit."""


async def noop(ctx: dict[str, Any], i: int = -1, t0: float = 0.0) -> None:
    """The job coroutine."""
    record(i, t0)


class WorkerSettings:
    """arq's worker settings class (defaults apart from the function list)."""

    functions = [noop]


class ArqAdapter(Adapter):
    """arq's API on a private event loop."""

    pool: ArqRedis

    def __init__(self) -> None:
        super().__init__(name="arq", worker_how="arq Worker, defaults: max_jobs 10, poll_delay "
                         "0.5 s (an idle worker polls: about poll_delay/2 enqueue-to-start)",
                         batch_how=f"no batch API: asyncio.gather, {IN_FLIGHT} in flight")
        self.loop = asyncio.new_event_loop()

    def open(self, url: str) -> None:
        super().open(url)
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(url)))
        self.sync = redis.Redis.from_url(url)

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()
        self.sync.close()

    def deposit_one(self, i: int) -> None:
        async def one() -> None:
            await self.pool.enqueue_job("noop", i, time.time())

        self.loop.run_until_complete(one())

    def deposit_each(self, n: int) -> None:
        async def each() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("noop")

        self.loop.run_until_complete(each())

    def deposit_batch(self, n: int) -> None:
        async def batch() -> None:
            for start in range(0, n, IN_FLIGHT):
                count = min(IN_FLIGHT, n - start)
                await asyncio.gather(*(self.pool.enqueue_job("noop") for _ in range(count)))

        self.loop.run_until_complete(batch())

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        return [str(bin_dir / "python"), "-m", "benchpeers.p_arq", *(["--burst"] if burst else [])]

    def pending(self) -> int:
        return int(self.sync.zcard("arq:queue"))  # jobs leave it when they finish


ADAPTER = ArqAdapter

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run_worker(WorkerSettings,  # type: ignore[arg-type]
               redis_settings=RedisSettings.from_dsn(redis_url()),
               burst="--burst" in sys.argv)  # fmt: skip
