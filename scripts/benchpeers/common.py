"""What the harness and every library's worker share: the stamp board and the no-op task.

The no-op task of every library calls `record()`. It writes into a small file mapped
into memory (`MAP_SHARED`, path in `$BENCH_STAMPS`), so the harness sees every start and
finish without a single extra Redis command (which would distort the round-trip counts
and cost the fastest library the most):

- one slot per worker process (`$BENCH_SLOT`): works finished, the first work's start
  and the last work's finish (`time.time()`);
- one latency cell per latency probe `i`: the task's start minus the probe's `t0`
  (taken right before the enqueue call, on the same machine's clock).

A drain is timed from the first work's start in any worker to the last work's finish:
interpreter start-up, imports and connecting are excluded, for every library alike.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

URL_ENV, STAMPS_ENV, SLOT_ENV = "BENCH_REDIS_URL", "BENCH_STAMPS", "BENCH_SLOT"
SLOTS = 8
"""Worker processes one measurement can have (slot = `$BENCH_SLOT`)."""
SLOT = struct.Struct("<qdd")
"""A slot: works finished, first start, last finish."""
CELL = struct.Struct("<d")
LATENCY_CELLS = 20_000
"""Latency probes one measurement can have."""
LATENCY_AT = SLOTS * SLOT.size
SIZE = LATENCY_AT + LATENCY_CELLS * CELL.size
QUEUE = "bench"
"""Queue / pipeline name every library uses."""


class Board:
    """The stamp board: a file of `SIZE` bytes mapped shared into every process."""

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(path)
        if create:
            self.path.write_bytes(bytes(SIZE))
        with open(self.path, "r+b") as f:
            self.buf = mmap.mmap(f.fileno(), SIZE)

    def clear(self) -> None:
        self.buf[:] = bytes(SIZE)

    def slots(self) -> list[tuple[int, float, float]]:
        return [SLOT.unpack_from(self.buf, k * SLOT.size) for k in range(SLOTS)]

    def done(self) -> int:
        """Works finished in all worker processes."""
        return sum(s[0] for s in self.slots())

    def span(self) -> tuple[int, float]:
        """(works finished, seconds from the first start to the last finish)."""
        used = [s for s in self.slots() if s[0] and s[1] and s[2]]  # skip a half-written one
        if not used:
            return 0, 0.0
        return sum(s[0] for s in used), max(s[2] for s in used) - min(s[1] for s in used)

    def latencies(self, n: int) -> list[float]:
        """Seconds from enqueue to start of probes 0..n-1 (0.0: not started yet)."""
        return [CELL.unpack_from(self.buf, LATENCY_AT + i * CELL.size)[0] for i in range(n)]


_board: Board | None = None
_lock = threading.Lock()


def record(i: int = -1, t0: float = 0.0) -> None:
    """The no-op work: stamp its start (latency probe `i`) and its finish, nothing else."""
    started = time.time()
    global _board
    if _board is None:
        _board = Board(os.environ[STAMPS_ENV])
    buf = _board.buf
    at = int(os.environ.get(SLOT_ENV, "0")) * SLOT.size
    # One slice assignment each (a memcpy): `pack_into` would zero the bytes first, and the
    # harness reading at that moment would see a slot with works but no start time.
    with _lock:  # threaded workers (dramatiq, huey) share one slot per process
        if i >= 0:
            buf[LATENCY_AT + i * CELL.size : LATENCY_AT + (i + 1) * CELL.size] = CELL.pack(
                started - t0)
        n, first, _ = SLOT.unpack_from(buf, at)
        buf[at : at + SLOT.size] = SLOT.pack(n + 1, first or started, time.time())


def redis_url() -> str:
    """The private server's URL, in the worker processes."""
    return os.environ[URL_ENV]


@dataclass
class Adapter:
    """One library, harness side. Subclasses fill in the library calls.

    `variants` maps a label to a worker flavour (e.g. RQ's SimpleWorker and forking
    Worker); `batch_how` says what "batched deposit" means for this library."""

    name: str = ""
    batch_how: str = ""
    worker_how: str = ""
    url: str = ""

    @property
    def variants(self) -> dict[str, str]:
        return {self.name: ""}

    def describe(self, variant: str) -> str:
        """How the worker of `variant` is run (its settings, for the report)."""
        return self.worker_how

    def open(self, url: str) -> None:
        """Connect the depositing side to the private server."""
        self.url = url

    def close(self) -> None:
        """Release connections."""

    def deposit_one(self, i: int) -> None:
        """Enqueue latency probe `i`: `t0 = time.time()` right before the library call."""
        raise NotImplementedError

    def deposit_each(self, n: int) -> None:
        """Enqueue `n` no-op works one call (one round trip or more) each."""
        raise NotImplementedError

    def deposit_batch(self, n: int) -> None:
        """Enqueue `n` no-op works the fastest way the library offers (`batch_how`)."""
        raise NotImplementedError

    def worker_argv(self, variant: str, bin_dir: Path, burst: bool) -> list[str]:
        """The command line of one worker process of `variant`."""
        raise NotImplementedError

    def pending(self) -> int:
        """Works not yet finished, as the library's own records in Redis say."""
        raise NotImplementedError
