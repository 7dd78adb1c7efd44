"""The results indexer as it runs: inside workers, as `workflow results index`, killed
mid-batch, facing dead consumers and an unreachable Redis."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workflow import Client, Results, Work
from workflow.indexer import Indexer
from workflow.keys import index_key
from workflow.query import GROUP

from ..helpers import keys
from .conftest import HERE, WorkerProcess, wait_for, worker_env

P = "indexer-pipe"


def finish_all(client: Client, works: list[Work]) -> None:
    """Deposit `works` and finish each through the scripts (no indexer running)."""
    client.deposit(works)
    while got := client.withdraw(P, count=100):
        for w in got:
            client.complete(w, "success")


def indexed_ids(client: Client, tag: str) -> list[str]:
    key = index_key(client.settings.prefix, P, "tag", tag)
    return [k.decode() for k in client.redis.zrange(key, 0, -1)]


def pending(client: Client) -> int:
    return int(client.redis.xpending(keys(client, P).done, GROUP)["pending"])


def test_entries_of_a_dead_indexer_are_claimed(client: Client) -> None:
    finish_all(client, [Work(pipeline=P, tags=["t"]) for _ in range(30)])
    done = keys(client, P).done
    client.redis.xgroup_create(done, GROUP, id="0")
    got = client.redis.xreadgroup(GROUP, "dead", {done: ">"}, count=20)  # then it "died"
    assert len(got[0][1]) == 20 and pending(client) == 20
    live = Indexer(client, [P], consumer="live", claim_idle_ms=50)
    live.run_once()  # reads the 10 unread entries; the 20 are not idle long enough yet
    assert len(indexed_ids(client, "t")) == 10 and pending(client) == 20
    time.sleep(0.1)
    live._housekept.clear()  # housekeeping (claiming) is due again
    live.run_once()
    assert len(indexed_ids(client, "t")) == 30 and pending(client) == 0
    assert client.redis.xlen(done) <= 1  # acknowledged entries are trimmed


def test_a_crash_between_read_and_index_loses_nothing(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish_all(client, [Work(pipeline=P, tags=["t"]) for _ in range(25)])
    crashing = Indexer(client, [P], consumer="crashing", batch=10)

    def crash(pipeline: str, entries: list[object]) -> int:
        if entries:  # read from the stream, not yet indexed: the process dies here
            raise SystemExit("killed mid-batch")
        return 0

    monkeypatch.setattr(crashing, "_index", crash)
    with pytest.raises(SystemExit):
        crashing.run_once()
    assert pending(client) == 10 and indexed_ids(client, "t") == []
    Indexer(client, [P], consumer="next", claim_idle_ms=1).drain()
    ids = indexed_ids(client, "t")
    assert len(ids) == len(set(ids)) == 25 and pending(client) == 0


def test_the_indexer_rides_out_an_unreachable_redis(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Client(client.settings.replace(url="redis://127.0.0.1:1/0"))
    indexer = Indexer(dead, [P], consumer="x")
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stop, 0.05))
    thread.start()
    time.sleep(0.5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert "results indexer: cannot reach Redis" in caplog.text
    dead.close()


def test_a_worker_indexes_what_it_finishes(
    client: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    works = [Work(pipeline=P, parameters={"a": i, "b": 1}, tags=["w"], event=[i])
             for i in range(20)]  # fmt: skip
    client.deposit(works)
    worker = start_worker(P, "userfns.add", "--burst", "--in-process")
    assert worker.wait(30) == 0
    # The worker indexed every result before it exited.
    assert sorted(indexed_ids(client, "w")) == sorted(str(w.id) for w in works)
    assert Results(client).count(P, event=7) == 1
    assert Results(client).find(P, event=7)[0].results == {"sum": 8}


def test_a_worker_without_indexing(
    client: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    client.deposit([Work(pipeline=P, parameters={"a": 1, "b": 1}, tags=["w"])])
    worker = start_worker(P, "userfns.add", "--burst", "--in-process", "--no-index")
    assert worker.wait(30) == 0
    assert indexed_ids(client, "w") == []
    assert Results(client).count(P, tags="w") == 0  # not indexed yet
    assert Results(client).count(P, status="success") == 1  # the status sets see it
    Results(client).index(P)
    assert Results(client).count(P, tags="w") == 1


def test_killing_the_indexer_mid_run_loses_and_duplicates_nothing(
    client: Client, tmp_path: Path
) -> None:
    """`workflow results index` SIGKILLed again and again while 3,000 works finish:
    the index ends exactly right, nothing pending, each result once."""
    rng = random.Random(11)
    n = 3000
    works = [Work(pipeline=P, tags=[f"t{i % 3}"], event=[i]) for i in range(n)]
    client.deposit(works)
    cmd = [sys.executable, "-m", "workflow.cli.main", "--redis-url", client.settings.url,
           "--prefix", client.settings.prefix, "results", "index", P,
           "--claim-idle-ms", "200"]  # fmt: skip

    def start(i: int) -> WorkerProcess:
        return WorkerProcess([*cmd, "--name", f"ix{i}"], tmp_path / f"ix{i}.log", worker_env())

    indexer, kills, finished = start(0), 0, 0
    try:
        wait_for(lambda: "indexing results" in indexer.log(), 15, "the indexer to start")
        while finished < n:
            for w in client.withdraw(P, count=50):
                client.complete(w, "success")
                finished += 1
            if rng.random() < 0.3:  # kill it at a random point, start another
                time.sleep(rng.random() * 0.05)
                indexer.proc.send_signal(signal.SIGKILL)
                indexer.wait(10)
                indexer.close()
                kills += 1
                indexer = start(kills)
        assert kills >= 5
        wait_for(lambda: sum(len(indexed_ids(client, f"t{k}")) for k in range(3)) == n,
                 30, "every result to be indexed")  # fmt: skip
        wait_for(lambda: pending(client) == 0, 10, "no pending entry")
    finally:
        indexer.close()
    for k in range(3):
        ids = indexed_ids(client, f"t{k}")
        assert len(ids) == len(set(ids)) == len([i for i in range(n) if i % 3 == k])
    ids = [w.id for w in Results(client).iterate(P)]
    assert len(ids) == len(set(ids)) == n
    assert Results(client).count(P, event=[17, 2999]) == 2


def test_results_index_once(client: Client) -> None:
    finish_all(client, [Work(pipeline=P, tags=["t"]) for _ in range(5)])
    out = subprocess.run(
        [sys.executable, "-m", "workflow.cli.main", "--redis-url", client.settings.url,
         "--prefix", client.settings.prefix, "results", "index", "--once"],
        cwd=HERE, env=worker_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "indexed 5 of 5 entries" in out.stderr
    assert len(indexed_ids(client, "t")) == 5
