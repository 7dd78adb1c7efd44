"""The worker registry: a live worker's record (host, pid, pipelines, current works,
counts) while it runs; gone after a clean exit; expired after `kill -9`."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from workflow import Client, Work
from workflow.worker import list_workers

from .conftest import FN, events, wait_for, wait_status


def test_a_running_worker_is_listed_then_gone_after_a_clean_exit(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    worker = start_worker("reg-a", "reg-b", FN + "journal", "--name", "reg-worker")
    ok = Work(pipeline="reg-a", parameters={"path": str(journal), "label": "ok"})
    bad = Work(pipeline="reg-b", function=FN + "boom", retries=0)
    client.deposit([ok, bad])
    wait_status(client, ok, "success")
    wait_status(client, bad, "failure")
    long = Work(pipeline="reg-a", parameters={"path": str(journal), "seconds": 1.5})
    client.deposit([long])
    wait_for(lambda: len(events(journal, "start")) == 2, 5, "the long work to start")

    def listed() -> object:
        infos = [i for i in list_workers(client) if i.name == "reg-worker"]
        return infos[0] if infos and infos[0].current == [long.id] else None

    info = wait_for(listed, 5, "the worker's record to show the long work")
    assert (info.host, info.pid) == (socket.gethostname(), worker.pid)
    assert info.pipelines == ["reg-a", "reg-b"] and info.function == FN + "journal"
    assert (info.processed, info.failed, info.concurrency) == (1, 1, 1)
    assert info.beat >= info.started > time.time() - 30

    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert list_workers(client) == []
    assert client.redis.zcard(f"{client.settings.prefix}:workers") == 0


@pytest.mark.slow
def test_a_killed_workers_record_expires(client: Client, start_worker) -> None:
    worker = start_worker("reg-a", FN + "add", lease_ms=1000)  # record TTL: max(3 * 1/3 s, 10 s)
    info = wait_for(lambda: list_workers(client), 5, "the worker's record")[0]
    assert info.pid == worker.pid
    worker.signal(signal.SIGKILL)
    worker.wait(5)
    killed = time.monotonic()
    assert list_workers(client)  # not at once: nobody knows it died ...
    wait_for(lambda: not list_workers(client), 12, "the record to expire")
    assert 8.0 < time.monotonic() - killed < 11.5  # ... until its TTL runs out
