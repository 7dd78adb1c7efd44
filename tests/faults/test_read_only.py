"""Redis refusing writes for a while under running workers, as when a failover demotes
the server to a replica (`REPLICAOF` a master that is not there: every script answers
READONLY): workers keep trying, with backoff, and resume when the server takes writes
again; every work ends `success` exactly once.

Before the fix, the first READONLY reply to a withdraw killed the worker's fetch thread:
the worker looked alive (its heartbeat went on) but never took another work."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from workflow import Client, Work
from workflow.server import PrivateServer
from workflow.worker import Worker

from ..helpers import wait_until
from .conftest import FN, Fleet, assert_all_succeeded_once, keep_done_stream, ran_after

P = "faults-readonly"
N = 1000
WORKERS = 2
READ_ONLY_S = 3.0


def test_workers_resume_after_redis_refused_writes(
    aof_server: Callable[..., PrivateServer],
    private_client: Callable[[PrivateServer], Client],
    fleet_factory: Callable[[Client], Fleet],
) -> None:
    server = aof_server()
    client = private_client(server)
    works = [Work(pipeline=P, id=f"ro{i:05d}", parameters={"i": i, "seconds": 0.005}, retries=5)
             for i in range(N)]  # fmt: skip
    keep_done_stream(client, P)
    client.deposit(works)
    ids = {w.id for w in works}  # type: ignore[misc]
    fleet = fleet_factory(client)
    for i in range(WORKERS):
        fleet.start(i, P, FN + "logged", "-c", "2", lease_ms=2000)
    for proc in fleet.procs.values():
        proc.wait_ready()
    wait_until(lambda: client.counts(P)["success"] >= N // 5, 60, 0.01, what="a fifth done")

    admin = redis.Redis.from_url(server.url)
    admin.replicaof("127.0.0.1", "1")  # demoted: read-only, its master unreachable
    try:
        time.sleep(READ_ONLY_S)
        assert client.counts(P)["success"] < N, "the works outlast the read-only period"
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()
    back = time.time()

    wait_until(lambda: client.counts(P)["success"] == N, 60, 0.1, what=f"all {N} works")
    assert sorted(fleet.alive()) == list(range(WORKERS)), fleet.logs()
    assert_all_succeeded_once(client, P, ids)
    assert ran_after(fleet.exec_log, back) == {"w0.0", "w1.0"}, fleet.logs()
    for proc in fleet.procs.values():
        assert "Traceback" not in proc.log(), proc.log()
        assert "READONLY" in proc.log() or "read only replica" in proc.log(), proc.log()


def test_an_unexpected_fetch_failure_stops_the_worker_with_exit_1(
    make_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard behind the fix: whatever kills the fetch thread, the worker does not live
    on without taking works; it stops and exits 1."""
    c = make_client(lease_ms=1500)

    def broken(*args: object, **kwargs: object) -> list[Work]:
        raise RuntimeError("a bug in withdraw")

    monkeypatch.setattr(c, "withdraw", broken)
    worker = Worker(c, [P], FN + "add", in_process=True, sleep_s=0.1, grace_s=0)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "the worker stalled"
    assert codes == [1]
