#!/usr/bin/env python3
"""Soak: a million works through 4 workers, with results retention on (issue 6). A
benchmark, not a test.

On a private Redis server it sets the pipeline's results retention (`--max-age`, default
20 s), starts `--workers` `workflow run` processes (default 4, isolated children; or
`--in-process`) and a producer that keeps at most `--backlog` works queued until `--works`
have been deposited. Every `--every` seconds it prints the works finished, the throughput
over the interval, what is queued, the results held, the completion stream's length and
Redis `used_memory`. When every work has finished it waits for retention to drop the
results and reports memory against the baseline taken before the first deposit.

    python scripts/soak.py                 # 1,000,000 works
    python scripts/soak.py --quick         # 50,000 works, retention 5 s
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from workflow import Client, Results, Settings, Work
from workflow.keys import pipeline_keys
from workflow.server import PrivateServer

PIPELINE = "soak"
PREFIX = "soak"
HERE = Path(__file__).resolve().parent


def noop(**_: object) -> dict[str, int]:
    """The soak's user function: nothing to do."""
    return {}


def used_memory(client: Client) -> int:
    return int(client.redis.info("memory")["used_memory"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--works", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--max-age", type=int, default=20, help="results retention, s")
    parser.add_argument("--every", type=float, default=10.0, help="report interval, s")
    parser.add_argument("--quick", action="store_true", help="50,000 works, retention 5 s")
    args = parser.parse_args()
    if args.quick:
        args.works, args.max_age, args.every = 50_000, 5, 5.0

    directory = Path(tempfile.mkdtemp(prefix="wf-soak-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with PrivateServer(directory) as server:
            client = Client(Settings(url=server.url, prefix=PREFIX))
            return soak(client, server.url, directory, procs, args)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        shutil.rmtree(directory, ignore_errors=True)


def soak(
    client: Client, url: str, directory: Path, procs: list[subprocess.Popen[bytes]],
    args: argparse.Namespace,
) -> int:  # fmt: skip
    k = pipeline_keys(PREFIX, PIPELINE)
    client.redis.sadd(f"{PREFIX}:pipelines", PIPELINE)
    Results(client).set_retention(PIPELINE, max_age_s=args.max_age)
    baseline = used_memory(client)
    mode = "in-process" if args.in_process else "isolated children"
    print(f"soak: {args.works:,} works, {args.workers} workers ({mode}), results kept "
          f"{args.max_age} s; Redis {url}; baseline used_memory {baseline / 1e6:.2f} MB")

    deposited = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal deposited
        while deposited < args.works and not stop.is_set():
            if client.redis.zcard(k.queued) > args.backlog // 2:
                time.sleep(0.02)
                continue
            n = min(5_000, args.works - deposited)
            client.deposit([Work(pipeline=PIPELINE, tags=["soak"], event=[deposited + i])
                            for i in range(n)])  # fmt: skip
            deposited += n

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    cmd = [sys.executable, "-m", "workflow.cli.main", "--redis-url", url, "--prefix", PREFIX,
           "run", PIPELINE, "soak.noop", "--log-level", "WARNING"]  # fmt: skip
    if args.in_process:
        cmd.append("--in-process")
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    for i in range(args.workers):
        log = (directory / f"worker{i}.log").open("wb")
        procs.append(subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=log))

    print(f"{'t (s)':>6} {'finished':>10} {'works/s':>8} {'queued':>7} {'results':>8} "
          f"{'stream':>7} {'dropped':>9} {'memory MB':>10}")  # fmt: skip
    start = last_t = time.monotonic()
    last_done = 0
    peak = baseline
    while True:
        time.sleep(args.every)
        stats = client.stats(PIPELINE)
        finished = stats.get("success", 0) + stats.get("failure", 0)
        now = time.monotonic()
        memory = used_memory(client)
        peak = max(peak, memory)
        print(f"{now - start:6.0f} {finished:10,} {(finished - last_done) / (now - last_t):8,.0f} "
              f"{client.redis.zcard(k.queued):7,} {client.redis.zcard(k.success):8,} "
              f"{client.redis.xlen(k.done):7,} {stats.get('dropped', 0):9,} "
              f"{memory / 1e6:10.2f}", flush=True)  # fmt: skip
        last_done, last_t = finished, now
        if finished >= args.works:
            break
        if any(p.poll() is not None for p in procs):
            print("a worker exited early: see", directory)
            return 1
    elapsed = time.monotonic() - start
    stop.set()
    for p in procs:
        p.send_signal(signal.SIGTERM)
    codes = [p.wait(60) for p in procs]
    print(f"all {args.works:,} finished in {elapsed:.0f} s ({args.works / elapsed:,.0f} works/s "
          f"overall); workers exited {codes}; peak used_memory {peak / 1e6:.2f} MB")  # fmt: skip

    deadline = time.monotonic() + args.max_age + 60
    indexer = Results(client)
    while time.monotonic() < deadline and client.redis.zcard(k.success):
        time.sleep(1)
        indexer.index(PIPELINE)  # the workers are gone: enforce retention from here
    stats = client.stats(PIPELINE)
    memory = used_memory(client)
    print(f"after retention: {client.redis.zcard(k.success):,} results left, "
          f"{stats.get('dropped', 0):,} dropped (stats), stream {client.redis.xlen(k.done)} "
          f"entries; used_memory {memory / 1e6:.2f} MB vs baseline {baseline / 1e6:.2f} MB "
          f"({(memory - baseline) / 1e3:+.0f} kB)")  # fmt: skip
    lost = args.works - stats.get("success", 0) - stats.get("failure", 0)
    print(f"lost: {lost}; duplicates finished: {max(0, -lost)}; failures: "
          f"{stats.get('failure', 0)}; lease expiries: {stats.get('expired', 0)}")  # fmt: skip
    return 0 if lost == 0 and stats.get("dropped", 0) == args.works else 1


if __name__ == "__main__":
    sys.exit(main())
