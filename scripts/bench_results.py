#!/usr/bin/env python3
"""Cost of the results index (issue 4) as results grow. A benchmark, not a test.

On a private Redis server in a temporary directory it grows a deployment of completed works
across 4 pipelines to 10k, 30k, 100k and 300k results (`--quick`: up to 100k): each step
deposits the new works in big batches, withdraws them 500 at a time and finishes them with
pipelined `complete` (success, terminal failure) and `cancel` script calls, then indexes
them with `Results.index()` (index throughput, works/s). Every work has one event (ten
works per event, as when an experiment processes event by event), one tag of 20 (so a tag
holds ~5% of results) plus `calib` or `physics`, a user, a site and a group.

At each size it times (median and p95 over `--runs` runs, ms, one client, loopback TCP):

- get by id (`Results.get`, no pipeline given), a different id each run;
- find by event (selective: ~10 results), limit 100;
- find by tag (~5% of results), limit 100;
- find by status + 1 h stop-time range (status failure, since 1 h ago: every failure
  of the run is in range, the worst case for a range), limit 100;
- count by tag (~5% of results: counted by scanning the tag index);
- count all (status-set cardinalities only);
- find across all pipelines, no filter, limit 100.

and Redis memory per stored result (`INFO memory` used_memory deltas over each step): the
finished works before indexing (record + status set, completion stream excluded), after
indexing (the index added; the acknowledged stream trimmed), and the completion stream
per entry (`MEMORY USAGE` of the streams before indexing).

    python scripts/bench_results.py            # 10k, 30k, 100k, 300k results
    python scripts/bench_results.py --quick    # 10k, 30k, 100k; under a minute
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from workflow import Client, Failure, Results, Settings, Work, core
from workflow.keys import pipeline_keys
from workflow.server import PrivateServer

PREFIX = "bench"
PIPELINES = [f"results-{i}" for i in range(4)]
TAGS = [f"tag-{i:02d}" for i in range(20)]
USERS = [f"user-{i}" for i in range(10)]
SITES = ["cern", "desy", "fnal", "kek", "lbl"]
GROUPS = [f"grp-{i}" for i in range(8)]
STATUS_WEIGHTS = {"success": 70, "failure": 20, "cancelled": 10}
DEPOSIT_BATCH = 10_000
FINISH_BATCH = 500
SIZES = (10_000, 30_000, 100_000, 300_000)
QUICK_SIZES = (10_000, 30_000, 100_000)


@dataclass
class Step:
    """What one growth step measured."""

    size: int
    fill_s: float = 0.0
    index_s: float = 0.0
    bytes_unindexed: float = 0.0
    bytes_indexed: float = 0.0
    bytes_stream: float = 0.0
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="up to 100k results, 15 runs")
    parser.add_argument("--runs", type=int, help="timed runs per query (default 50; quick 15)")
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    runs = args.runs or (15 if args.quick else 50)
    directory = Path(tempfile.mkdtemp(prefix="wf-bench-results-"))
    started = time.perf_counter()
    try:
        with PrivateServer(directory) as server:
            settings = Settings(url=server.url, prefix=PREFIX)
            with Client(settings) as client:
                info = client.redis.info("server")
                print(f"{platform.node()}: Python {platform.python_version()}, "
                      f"{info.get('redis_version')} ({info.get('executable') or 'redis'}); "
                      f"{len(PIPELINES)} pipelines, {runs} runs per query")  # fmt: skip
                steps = grow(client, sizes, runs)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    table(steps)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


# -- filling --------------------------------------------------------------------------------


def grow(client: Client, sizes: tuple[int, ...], runs: int) -> list[Step]:
    """Fill to each size in turn, index, measure."""
    rng = random.Random(4)
    steps: list[Step] = []
    done = 0
    for size in sizes:
        step = Step(size)
        n = size - done
        before = used_memory(client)
        t0 = time.perf_counter()
        fill(client, rng, done, n)
        step.fill_s = time.perf_counter() - t0
        stream = sum(
            int(client.redis.memory_usage(pipeline_keys(PREFIX, p).done, samples=0) or 0)
            for p in PIPELINES
        )
        finished = used_memory(client)
        t0 = time.perf_counter()
        indexed = Results(client).index()
        step.index_s = time.perf_counter() - t0
        assert indexed == n, (indexed, n)
        after = used_memory(client)
        step.bytes_stream = stream / n
        step.bytes_unindexed = (finished - stream - before) / n
        step.bytes_indexed = (after - before) / n
        done = size
        print(f"  {size:>7,}: filled {n:,} in {step.fill_s:.1f} s, indexed in "
              f"{step.index_s:.1f} s ({n / step.index_s:,.0f} works/s)",
              file=sys.stderr)  # fmt: skip
        step.latency = measure(client, rng, size, runs)
        steps.append(step)
    return steps


def fill(client: Client, rng: random.Random, start: int, n: int) -> None:
    """Deposit `n` works (numbered from `start`) and finish every one of them."""
    names, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    status_of: dict[str, str] = {}
    works = []
    for i in range(start, start + n):
        w = Work(
            pipeline=PIPELINES[i % len(PIPELINES)],
            parameters={"event": i // 10, "beam": rng.randrange(1024)},
            event=[i // 10],
            tags=[rng.choice(TAGS), rng.choice(("calib", "physics"))],
            user=rng.choice(USERS),
            site=rng.choice(SITES),
            group=[rng.choice(GROUPS)],
            retries=0,
        )
        w.id = f"b{i:07d}"
        works.append(w)
        status_of[w.id] = rng.choices(names, weights)[0]
    for i in range(0, n, DEPOSIT_BATCH):
        assert all(client.deposit(works[i : i + DEPOSIT_BATCH]))
    for pipeline in PIPELINES:
        finish(client, pipeline, status_of)


def finish(client: Client, pipeline: str, status_of: dict[str, str]) -> None:
    """Withdraw every queued work of `pipeline` and finish each batch as a worker does
    (`complete_many`: one round trip per batch; the cancels pipelined)."""
    reason = Failure(kind="cancelled", message="bench", time=time.time())
    while works := client.withdraw(pipeline, count=FINISH_BATCH):
        done = [(w, "success" if status_of[str(w.id)] == "success" else "failure",
                 None if status_of[str(w.id)] == "success" else Failure(message="bench"), True)
                for w in works if status_of[str(w.id)] != "cancelled"]  # fmt: skip
        client.complete_many(done)  # type: ignore[arg-type]
        client._run_many([core.cancel_call(client.settings, pipeline, str(w.id), reason)
                          for w in works if status_of[str(w.id)] == "cancelled"])  # fmt: skip


# -- measuring ------------------------------------------------------------------------------


def measure(
    client: Client, rng: random.Random, size: int, runs: int
) -> dict[str, tuple[float, float]]:
    """Median and p95 (ms) of each query at this size."""
    r = Results(client)
    out: dict[str, tuple[float, float]] = {}

    def time_it(name: str, fn: Callable[[], object]) -> None:
        fn()  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[name] = (statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))])

    def some_id() -> str:
        return f"b{rng.randrange(size):07d}"

    def by_event() -> object:
        page = r.find(event=rng.randrange(size // 10))
        assert 0 < len(page) <= 10
        return page

    def by_tag() -> object:
        page = r.find(tags=rng.choice(TAGS))
        assert len(page) == 100
        return page

    def by_status_and_range() -> object:
        page = r.find(status="failure", since=timedelta(hours=1))
        assert len(page) == 100
        return page

    time_it("get by id", lambda: r.get(some_id()))
    time_it("find event (~10)", by_event)
    time_it("find tag (5%) limit 100", by_tag)
    time_it("find failure + 1 h, limit 100", by_status_and_range)
    time_it("count tag (5%)", lambda: r.count(tags=rng.choice(TAGS)))
    time_it("count all", lambda: r.count())
    time_it("find all pipelines limit 100", lambda: r.find(limit=100))
    return out


def used_memory(client: Client) -> int:
    return int(client.redis.info("memory")["used_memory"])


def table(steps: list[Step]) -> None:
    sizes = [s.size for s in steps]
    head = f"{'results':<32}" + "".join(f"{n:>16,}" for n in sizes)
    print("\nlatency, ms: median / p95")
    print(head)
    for name in steps[0].latency:
        cells = "".join(
            f"{f'{s.latency[name][0]:.2f} / {s.latency[name][1]:.2f}':>16}" for s in steps
        )
        print(f"{name:<32}{cells}")
    print("\nfill and index (per step: the new results only)")
    print(head)
    print(f"{'new results':<32}" + "".join(
        f"{s.size - (steps[i - 1].size if i else 0):>16,}" for i, s in enumerate(steps)
    ))  # fmt: skip
    print(f"{'fill (deposit+finish), works/s':<32}" + "".join(
        f"{(s.size - (steps[i - 1].size if i else 0)) / s.fill_s:>16,.0f}"
        for i, s in enumerate(steps)
    ))  # fmt: skip
    print(f"{'index, works/s':<32}" + "".join(
        f"{(s.size - (steps[i - 1].size if i else 0)) / s.index_s:>16,.0f}"
        for i, s in enumerate(steps)
    ))  # fmt: skip
    print("\nRedis memory, bytes per result (used_memory delta over the step)")
    print(head)
    for label, attr in (("result, not indexed", "bytes_unindexed"),
                        ("result, indexed (stream trimmed)", "bytes_indexed"),
                        ("completion stream entry", "bytes_stream")):  # fmt: skip
        print(f"{label:<32}" + "".join(f"{getattr(s, attr):>16,.0f}" for s in steps))
    print(f"{'index share':<32}" + "".join(
        f"{s.bytes_indexed - s.bytes_unindexed:>16,.0f}" for s in steps
    ))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
