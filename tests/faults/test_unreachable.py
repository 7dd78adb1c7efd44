"""Redis unreachable for 10 s while workers run: the server process stopped (SIGSTOP,
then SIGCONT: commands hang), or the network cut (a proxy resets every connection and
refuses new ones). Workers back off, reconnect, neither exit nor stall afterwards, and
every work ends `success` exactly once (works whose lease ran out during the outage run
again: execution is at-least-once). And idle workers whose open connections died for good
without a reset (a proxy swallows their bytes) while new ones work: they reconnect."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from workflow import Client, Work
from workflow.errors import ConnectionError
from workflow.server import PrivateServer

from ..helpers import wait_until
from .conftest import (
    FN,
    Fleet,
    Proxy,
    assert_all_succeeded_once,
    executions,
    keep_done_stream,
    ran_after,
)

P = "faults-outage"
N = 2000
WORKERS = 2
OUTAGE_S = 10.0


@pytest.mark.parametrize("how", ["sigstop", "network"])
def test_workers_ride_out_a_10s_outage(
    how: str,
    aof_server: Callable[..., PrivateServer],
    private_client: Callable[[PrivateServer], Client],
    fleet_factory: Callable[[Client], Fleet],
    proxy: Callable[[int], Proxy],
) -> None:
    server = aof_server()
    client = private_client(server)  # direct: the test itself always reaches Redis
    net = proxy(server.port)
    works = [Work(pipeline=P, id=f"o{i:05d}", parameters={"i": i, "seconds": 0.005}, retries=5)
             for i in range(N)]  # fmt: skip
    keep_done_stream(client, P)
    client.deposit(works)
    ids = {w.id for w in works}  # type: ignore[misc]
    fleet = fleet_factory(client)
    fleet.url = net.url  # the workers go through the proxy
    for i in range(WORKERS):
        fleet.start(i, P, FN + "logged", "-c", "2", lease_ms=2000)
    for proc in fleet.procs.values():
        proc.wait_ready()
    wait_until(lambda: client.counts(P)["success"] >= N // 5, 60, 0.01, what="a fifth done")

    if how == "sigstop":
        os.kill(server.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            time.sleep(OUTAGE_S)
        finally:
            os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
    else:
        net.cut()
        time.sleep(OUTAGE_S)
        net.restore()
    back = time.time()

    wait_until(lambda: _successes(client) == N, 90, 0.1, what=f"all {N} works to succeed")
    assert sorted(fleet.alive()) == list(range(WORKERS)), fleet.logs()
    assert_all_succeeded_once(client, P, ids)
    # Neither worker stalled: both ran works after the outage.
    assert ran_after(fleet.exec_log, back) == {"w0.0", "w1.0"}, fleet.logs()
    for proc in fleet.procs.values():
        log = proc.log()
        assert "Traceback" not in log, log
        # Backed off: a few warnings in 10 s from its threads (fetch, heartbeat, indexer,
        # completions), not a busy loop. (Stopped, the server still accepts connections
        # and commands wait: nothing need fail within the 10 s command timeout. Cut off,
        # every call fails at once.)
        failed = log.count("cannot reach Redis")
        assert (1 if how == "network" else 0) <= failed <= 60, log
    repeated = sum(len(r) - 1 for r in executions(fleet.exec_log).values())
    print(f"\noutage run ({how}): {N} works, {OUTAGE_S:.0f} s outage survived, "
          f"{repeated} executions repeated, 0 duplicates, 0 losses")


def _successes(client: Client) -> int:
    try:
        return client.counts(P)["success"]
    except ConnectionError:
        return -1


def test_idle_workers_whose_connections_die_silently_still_take_new_works(
    aof_server: Callable[..., PrivateServer],
    private_client: Callable[[PrivateServer], Client],
    fleet_factory: Callable[[Client], Fleet],
    proxy: Callable[[int], Proxy],
) -> None:
    """Idle workers wait for a wake-up on a blocking connection. If that connection dies
    without a reset (a firewall forgot it, a failover moved the address), no reply will
    ever come: the wait must still end, and the worker reconnect. (Before the fix the
    wake-up connection had no socket timeout and both workers waited forever.)"""
    server = aof_server()
    client = private_client(server)
    net = proxy(server.port)
    fleet = fleet_factory(client)
    fleet.url = net.url
    for i in range(WORKERS):
        fleet.start(i, P, FN + "logged", "-c", "2", lease_ms=2000)
    for proc in fleet.procs.values():
        proc.wait_ready()
    first = [Work(pipeline=P, id=f"a{i}", parameters={"i": i}) for i in range(10)]
    keep_done_stream(client, P)
    client.deposit(first)
    wait_until(lambda: client.counts(P)["success"] == 10, 30, 0.05, what="the first works")
    time.sleep(0.5)  # both idle, blocked on their wake-up connection
    net.freeze()
    frozen = time.time()
    later = [Work(pipeline=P, id=f"b{i:03d}", parameters={"i": i}) for i in range(200)]
    client.deposit(later)
    wait_until(lambda: client.counts(P)["success"] == 210, 60, 0.1, what="the later works")
    assert ran_after(fleet.exec_log, frozen) == {"w0.0", "w1.0"}, fleet.logs()
    assert_all_succeeded_once(client, P, {w.id for w in first + later})  # type: ignore[misc]
