#!/usr/bin/env python3
"""Cost of `workflow status` on a big deployment (issue 5). A benchmark, not a test.

On a private Redis server in a temporary directory it deposits N queued works (default
1,000,000; `--quick`: 100,000) across 50 pipelines with `client.deposit` in big batches,
priorities 1-5 mixed, and leaves a few works running (held by a registered worker), a
few succeeded and a few failed, so every part of the view has something to show. Then it
times, 10 runs each (median and max, ms):

- `snapshot()`: the library call (two round trips, whatever the number of works);
- render: `render(snapshot)` printed to a 120-column console, no Redis;
- `workflow status`, `workflow status PIPELINE` and `workflow status --json`: the whole
  command through click (client, snapshot, render or encode, print).

and reports Redis `used_memory` per queued work. The server and the directory are
removed afterwards.

    python scripts/bench_status.py            # 1,000,000 works
    python scripts/bench_status.py --quick    # 100,000 works
    python scripts/bench_status.py --works 250000 --pipelines 10
"""

from __future__ import annotations

import argparse
import io
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from click.testing import CliRunner
from rich.console import Console

from workflow import Client, Failure, Settings, Work
from workflow.cli.main import cli
from workflow.cli.status import STATUS_THEME, render, status
from workflow.keys import worker_key, workers_key
from workflow.server import PrivateServer
from workflow.status import Snapshot, snapshot
from workflow.worker import WorkerInfo

PREFIX = "bench"
"""Key prefix of the benchmark's deployment (on its own private server anyway)."""
BATCH = 10_000
"""Most works per `client.deposit` call (the client sends them 500 per script call)."""
RUNS = 10
"""Timed runs of each measurement."""
LEASE_MS = 3_600_000
"""The benchmark's leases outlast it: running works stay running while it measures."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--works", type=int, default=1_000_000, help="queued works")
    parser.add_argument("--quick", action="store_true", help="100,000 works")
    parser.add_argument("--pipelines", type=int, default=50)
    args = parser.parse_args()
    total = 100_000 if args.quick else args.works
    directory = Path(tempfile.mkdtemp(prefix="wf-bench-status-"))
    try:
        with PrivateServer(directory) as server:
            settings = Settings(url=server.url, prefix=PREFIX, lease_ms=LEASE_MS)
            with Client(settings) as client:
                run(client, total, args.pipelines)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


def run(client: Client, total: int, n_pipelines: int) -> None:
    info = client.redis.info("server")
    print(f"{platform.node()}: Python {platform.python_version()}, "
          f"{info.get('redis_version')} ({info.get('executable') or 'redis-server'}); "
          f"{total:,} works, {n_pipelines} pipelines")  # fmt: skip
    names = [f"bench-{i:02d}" for i in range(n_pipelines)]
    before = used_memory(client)
    deposited, build_s, deposit_s = deposit(client, names, total)
    after = used_memory(client)
    print(f"deposit: {deposited:,} works in {deposit_s:.1f} s = {deposited / deposit_s:,.0f} "
          f"works/s (building the Work objects: {build_s:.1f} s more)")  # fmt: skip
    print(f"memory:  used_memory {after / 2**20:,.0f} MiB; "
          f"{(after - before) / deposited:,.0f} bytes per queued work")  # fmt: skip
    activity(client, names[:5])

    snap = snapshot(client)
    size = len(msgspec.json.encode(snap))
    print(f"snapshot: {len(snap.pipelines)} pipelines, "
          f"{sum(p.counts['queued'] for p in snap.pipelines):,} queued, "
          f"{sum(p.counts['running'] for p in snap.pipelines)} running, "
          f"{sum(p.counts['failure'] for p in snap.pipelines)} failed, "
          f"{len(snap.workers)} workers; JSON {size:,} bytes")  # fmt: skip
    print(f"\n{'measurement (10 runs)':<40} {'median ms':>10} {'max ms':>10}")
    report("snapshot(client)", lambda: snapshot(client))
    report("render(snapshot) to a console", lambda: show(snap))
    cli.commands.setdefault("status", status)  # until cli/main.py registers it
    base = ["--redis-url", client.settings.url, "--prefix", PREFIX, "status"]
    report("workflow status", lambda: command([*base]))
    report(f"workflow status {names[0]}", lambda: command([*base, names[0]]))
    report("workflow status --json", lambda: command([*base, "--json"]))
    report("  of which msgspec.json.encode", lambda: msgspec.json.encode(snap))
    print("\nthe view (first 12 lines):")
    print("\n".join(show(snap).splitlines()[:12]))


def deposit(client: Client, names: list[str], total: int) -> tuple[int, float, float]:
    """Deposit `total` works round-robin over the pipelines, `BATCH` at a time."""
    rng = random.Random(5)
    build_s = deposit_s = 0.0
    done = 0
    turn = 0
    per_pipeline = -(-total // len(names))
    while done < total:
        n = min(BATCH, per_pipeline, total - done)
        name = names[turn % len(names)]
        t0 = time.perf_counter()
        works = [
            Work(pipeline=name, parameters={"beam": rng.randrange(1024), "i": done + i},
                 priority=rng.randint(1, 5), tags=["bench"])
            for i in range(n)
        ]  # fmt: skip
        t1 = time.perf_counter()
        assert all(client.deposit(works))
        deposit_s += time.perf_counter() - t1
        build_s += t1 - t0
        done += n
        turn += 1
        if turn % 20 == 0:
            print(f"  ... {done:,} deposited", file=sys.stderr)
    return done, build_s, deposit_s


def activity(client: Client, names: list[str]) -> None:
    """A few works running (held by a registered worker), succeeded and failed."""
    held: list[str] = []
    for name in names:
        works = client.withdraw(name, count=6)
        for w in works[:2]:
            client.complete(w, "success")
        for w in works[2:4]:
            failure = Failure(kind="exception", message=f"ValueError: beam {w.parameters['beam']}")
            client.complete(w, "failure", failure=failure, terminal=True)
        held += [w.id for w in works[4:]]  # type: ignore[misc]
    client.pause(names[-1])
    now = time.time()
    info = WorkerInfo(
        name="bench-worker", host=platform.node(), pid=0, pipelines=names, function=None,
        concurrency=len(held), started=now, beat=now, processed=4 * len(names),
        failed=2 * len(names), current=held,
    )  # fmt: skip
    client.redis.set(worker_key(PREFIX, info.name), msgspec.json.encode(info), px=LEASE_MS)
    client.redis.zadd(workers_key(PREFIX), {info.name: int(now * 1000)})


def show(snap: Snapshot) -> str:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, theme=STATUS_THEME)
    console.print(render(snap))
    return console.file.getvalue()  # type: ignore[attr-defined]


def command(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv, env={"COLUMNS": "120"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def report(what: str, fn: Callable[[], object]) -> None:
    fn()  # warm-up
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{what:<40} {statistics.median(times):>10.2f} {max(times):>10.2f}")


def used_memory(client: Client) -> int:
    return int(client.redis.info("memory")["used_memory"])


if __name__ == "__main__":
    sys.exit(main())
