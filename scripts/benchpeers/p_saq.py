"""SAQ: `Queue.enqueue` (no batch enqueue: concurrent calls), the `saq` worker command."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from saq import Queue

from benchpeers.common import QUEUE, URL_ENV, Adapter, record

IN_FLIGHT = 100
"""Concurrent enqueue calls of the "batched" deposit."""


async def noop(ctx: dict[str, Any], *, i: int = -1, t0: float = 0.0) -> None:
    """The job coroutine."""
    record(i, t0)


# The worker's settings (`saq benchpeers.p_saq.settings`): SAQ's defaults (concurrency 10).
settings = {
    "queue": Queue.from_url(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"), name=QUEUE),
    "functions": [noop],
}


class SaqAdapter(Adapter):
    """SAQ's API on a private event loop."""

    queue: Queue

    def __init__(self) -> None:
        super().__init__(name="saq", worker_how="saq ... --workers 1, defaults (concurrency 10)",
                         batch_how=f"no batch API: asyncio.gather, {IN_FLIGHT} in flight")
        self.loop = asyncio.new_event_loop()

    def open(self, url: str) -> None:
        super().open(url)
        self.queue = Queue.from_url(url, name=QUEUE)
        self.loop.run_until_complete(self.queue.connect())

    def close(self) -> None:
        self.loop.run_until_complete(self.queue.disconnect())
        self.loop.close()

    def deposit_one(self, i: int) -> None:
        async def one() -> None:
            await self.queue.enqueue("noop", i=i, t0=time.time())

        self.loop.run_until_complete(one())

    def deposit_each(self, n: int) -> None:
        async def each() -> None:
            for _ in range(n):
                await self.queue.enqueue("noop")

        self.loop.run_until_complete(each())

    def deposit_batch(self, n: int) -> None:
        async def batch() -> None:
            for start in range(0, n, IN_FLIGHT):
                count = min(IN_FLIGHT, n - start)
                await asyncio.gather(*(self.queue.enqueue("noop") for _ in range(count)))

        self.loop.run_until_complete(batch())

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        return [str(bin_dir / "saq"), "benchpeers.p_saq.settings", "--workers", "1", "--quiet"]

    def pending(self) -> int:
        return self.loop.run_until_complete(self.queue.count("incomplete"))


ADAPTER = SaqAdapter
