"""Workers SIGKILLed at random points of a 5,000-work run across 4 workers (each killed
worker is restarted): every work ends `success` exactly once, and every execution beyond
one per work, and every attempt beyond one, is explained by a kill.

The single-kill cases (a work held by a killed worker comes back after its lease, the
worker's children die with it) are in tests/worker/test_kill.py."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

from workflow import Client, Work
from workflow.worker import BATCH_MAX

from ..helpers import wait_until
from .conftest import FN, Fleet, assert_all_succeeded_once, executions, keep_done_stream

P = "faults-kill"
N = 5000
WORKERS = 4
CONCURRENCY = 2
KILLS = 6
LEASE_MS = 2000


def test_sigkilled_workers_lose_nothing_and_duplicate_nothing(
    client: Client, fleet_factory: Callable[[Client], Fleet]
) -> None:
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    works = [Work(pipeline=P, id=f"k{i:05d}", parameters={"i": i}, retries=KILLS + 1)
             for i in range(N)]  # fmt: skip
    keep_done_stream(client, P)
    client.deposit(works)
    ids = {w.id for w in works}  # type: ignore[misc]
    fleet = fleet_factory(client)
    args = (P, FN + "logged", "-c", str(CONCURRENCY))
    for i in range(WORKERS):
        fleet.start(i, *args, lease_ms=LEASE_MS)
    for proc in fleet.procs.values():
        proc.wait_ready()

    # Kill at random moments between 10 % and 80 % of the run, then restart the worker.
    for threshold in sorted(rng.uniform(0.1, 0.8) * N for _ in range(KILLS)):
        wait_until(lambda t=threshold: client.counts(P)["success"] >= t, 60, 0.005,
                   what=f"{threshold:.0f} successes (seed {seed})")  # fmt: skip
        time.sleep(rng.uniform(0, 0.05))  # not always right after a poll
        victim = rng.randrange(WORKERS)
        fleet.kill(victim)
        fleet.start(victim).wait_ready()

    wait_until(lambda: client.counts(P)["success"] == N, 120, 0.1,
               what=f"all {N} works to succeed (seed {seed})")  # fmt: skip
    assert sorted(fleet.alive()) == list(range(WORKERS)), fleet.logs()
    assert "Traceback" not in fleet.logs()

    # Exactly once in results.
    assert_all_succeeded_once(client, P, ids)

    # Attempts account for every kill: an attempt beyond the first only ever follows a
    # lease lost to a killed worker, and the stats count each such expiry once.
    stored = {w.id: w for w in client.get_many(P, sorted(ids))}  # type: ignore[union-attr]
    extra_attempts = sum(w.attempt - 1 for w in stored.values())  # type: ignore[union-attr]
    for w in stored.values():
        assert w.attempt >= 1  # type: ignore[union-attr]
        if w.attempt > 1:  # type: ignore[union-attr]
            assert w.error is not None and w.error.kind == "lease", w  # type: ignore[union-attr]
    stats = client.stats(P)
    assert stats.get("expired", 0) == stats.get("retried", 0) == extra_attempts
    # Works leased ahead of a free slot went back uncounted ("unstarted") when their
    # worker was killed: withdrawn again, no attempt lost.
    assert stats["withdrawn"] == N + extra_attempts + stats.get("unstarted", 0)
    assert stats["success"] == N and "failure" not in stats
    # A killed worker held at most its running works (attempts counted) and finished works
    # not yet recorded (at most BATCH_MAX): a kill cannot cost more attempts than that.
    assert extra_attempts <= KILLS * (CONCURRENCY + BATCH_MAX), (extra_attempts, seed)

    # Every execution is explained: one per work by the attempt that succeeded; any other
    # was an earlier attempt, run by a worker that was then killed.
    runs = executions(fleet.exec_log)
    assert set(runs) == ids
    killed = set(fleet.killed)
    repeated = 0
    for work_id, seen in runs.items():
        final = stored[work_id].attempt  # type: ignore[union-attr]
        assert all(attempt <= final for attempt, _, _ in seen), (work_id, seen)
        # One execution per work by a worker that lived on; every other one was by a
        # worker killed afterwards (a work leased ahead that had started when its worker
        # died runs again under the same attempt number: Redis never learnt it started).
        assert sum(tag not in killed for _, tag, _ in seen) <= 1, (work_id, seen, killed)
        repeated += len(seen) - 1
    assert repeated <= extra_attempts + stats.get("unstarted", 0)
    print(f"\nkill run (seed {seed}): {N} works, {len(killed)} kills survived, "
          f"{extra_attempts} attempts lost to kills, {stats.get('unstarted', 0)} works "
          f"leased ahead handed back uncounted, {repeated} executions repeated, "
          "0 duplicates, 0 losses")  # fmt: skip
