"""Redis restarted under running workers, with AOF (`appendfsync everysec` and `always`):
workers reconnect by themselves and resume, and every work ends `success` exactly once.
With `always`, no acknowledged deposit is lost even to a SIGKILL of redis-server.

What each fsync policy can lose is stated in docs/design-notes.md ("Durability")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from workflow import Client, Work
from workflow.errors import ConnectionError
from workflow.server import PrivateServer

from ..helpers import keys, wait_until
from .conftest import FN, Fleet, assert_all_succeeded_once, keep_done_stream, ran_after

P = "faults-restart"
N = 1500
WORKERS = 2


@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
def test_workers_reconnect_and_resume_after_restarts(
    appendfsync: str,
    aof_server: Callable[..., PrivateServer],
    private_client: Callable[[PrivateServer], Client],
    fleet_factory: Callable[[Client], Fleet],
) -> None:
    """Two restarts mid-run: a clean one (SHUTDOWN) and a crash (SIGKILL of redis-server),
    each while the workers are busy."""
    server = aof_server(appendfsync)
    client = private_client(server)
    works = [Work(pipeline=P, id=f"r{i:05d}", parameters={"i": i, "seconds": 0.002}, retries=5)
             for i in range(N)]  # fmt: skip
    keep_done_stream(client, P)
    client.deposit(works)
    ids = {w.id for w in works}  # type: ignore[misc]
    fleet = fleet_factory(client)
    for i in range(WORKERS):
        fleet.start(i, P, FN + "logged", "-c", "2", lease_ms=2000)
    for proc in fleet.procs.values():
        proc.wait_ready()

    restarts, resumed_at = 0, 0.0
    for at, how in ((N // 4, "shutdown"), (N // 2, "kill")):
        wait_until(lambda at=at: client.counts(P)["success"] >= at, 60, 0.01,
                   what=f"{at} successes before the {how}")  # fmt: skip
        pid = server.pid
        if how == "shutdown":
            server.restart()
        else:
            server.kill()
            server.start()
        assert server.pid != pid
        restarts += 1
        resumed_at = time.time()
        before = _successes(client)
        # Resumed: the workers find the server again by themselves.
        wait_until(lambda b=before: _successes(client) > b + 50, 30, 0.05,
                   what=f"the workers to resume after the {how}")  # fmt: skip

    wait_until(lambda: _successes(client) == N, 90, 0.1, what=f"all {N} works to succeed")
    assert sorted(fleet.alive()) == list(range(WORKERS)), fleet.logs()
    assert_all_succeeded_once(client, P, ids)
    logs = fleet.logs()
    assert "Traceback" not in logs, logs
    # Both workers ran works after the last restart (neither stalled).
    assert ran_after(fleet.exec_log, resumed_at) == {"w0.0", "w1.0"}
    print(f"\nrestart run ({appendfsync}): {N} works, {restarts} restarts survived, "
          "0 duplicates, 0 losses")


def _successes(client: Client) -> int:
    try:
        return client.counts(P)["success"]
    except ConnectionError:
        return -1


def test_always_loses_no_acknowledged_deposit_to_a_kill_9(
    aof_server: Callable[..., PrivateServer], private_client: Callable[[PrivateServer], Client]
) -> None:
    """Deposits acknowledged before redis-server is SIGKILLed are all there after restart
    (`appendfsync always`: Redis fsyncs the AOF before it sends a reply). Three depositor
    threads deposit small batches as fast as they can until the kill."""
    server = aof_server("always")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    clients = [private_client(server) for _ in range(3)]

    def deposit(c: Client, name: str) -> None:
        n = 0
        while not stop.is_set():
            batch = [Work(pipeline=P, id=f"{name}-{n + j}") for j in range(5)]
            try:
                created = c.deposit(batch)
            except ConnectionError:
                return  # this batch was not acknowledged
            assert all(created)
            with lock:
                acknowledged.extend(w.id for w in batch)  # type: ignore[misc]
            n += 5

    threads = [threading.Thread(target=deposit, args=(c, f"d{i}")) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 3000, 30, 0.01, what="3000 acknowledged deposits")
    server.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    server.start()
    checker = private_client(server)
    queued = {m.decode() for m in checker.redis.zrange(keys(checker, P).queued, 0, -1)}
    lost = set(acknowledged) - queued
    assert not lost, f"{len(lost)} acknowledged deposits lost: {sorted(lost)[:10]}"
    records = [w for w in checker.get_many(P, acknowledged) if isinstance(w, Work)]
    assert len(records) == len(acknowledged)
    assert {w.status for w in records} == {"queued"}
    print(f"\nfsync always: {len(acknowledged)} acknowledged deposits, all present after kill -9")
