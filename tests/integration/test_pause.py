"""Pausing a pipeline: withdraw hands out nothing, while deposits, renewals, completions
and lease recovery go on; resume wakes blocked withdrawers at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from workflow import Client, Failure, ValidationError, Work
from workflow.keys import pipeline_keys, work_key

from ..helpers import client_list, now_ms, wait_until

P = "paused-pipe"
WAITER = "workflow-wait"
"""Client name of the connection a blocked withdraw waits on."""


def blocked(client: Client) -> int:
    """Connections blocked in BLPOP on behalf of a withdraw."""
    return sum(
        1 for c in client_list(client) if c.get("name") == WAITER and c.get("cmd") == "blpop"
    )


def status(client: Client, work_id: str) -> bytes:
    return client.redis.hget(work_key(client.settings.prefix, P, work_id), "status")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def timed_withdraw(pool: ThreadPoolExecutor, waiter: Client, **kw: Any) -> Future:
    def run() -> tuple[list[Work], float]:
        works = waiter.withdraw(P, **kw)
        return works, time.monotonic()

    return pool.submit(run)


def test_a_paused_pipeline_hands_out_nothing(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}") for i in range(3)])
    client.pause(P)
    assert client.paused(P)
    assert client.withdraw(P, count=3) == []
    assert Work.withdraw(P) is None
    assert client.counts(P)["queued"] == 3
    assert "withdrawn" not in client.stats(P)
    assert {status(client, f"w{i}") for i in range(3)} == {b"queued"}

    client.resume(P)
    assert not client.paused(P)
    assert [w.id for w in client.withdraw(P, count=3)] == ["w0", "w1", "w2"]


def test_pause_is_per_pipeline(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="p"), Work(pipeline="other", id="o")])
    client.pause(P)
    assert not client.paused("other")
    assert [w.id for w in client.withdraw([P, "other"], count=2)] == ["o"]


def test_pause_and_resume_are_idempotent_and_validate_the_name(client: Client) -> None:
    client.resume(P)  # never paused: harmless
    client.pause(P)
    client.pause(P)
    assert client.paused(P)
    client.resume(P)
    client.resume(P)
    assert not client.paused(P)
    for call in (client.pause, client.resume, client.paused):
        with pytest.raises(ValidationError, match="pipeline"):
            call("bad:name")


def test_recovery_runs_while_paused(client: Client, make_client) -> None:
    """An expired lease is reclaimed by a withdraw on the paused pipeline (which still
    hands out nothing), and due delayed works are promoted."""
    client.deposit(
        [Work(pipeline=P, id="retry", retries=1), Work(pipeline=P, id="last", retries=0)]
    )
    client.deposit([Work(pipeline=P, id="later")], delay_s=0.05)
    worker = make_client(lease_ms=100)
    assert len(worker.withdraw(P, count=2)) == 2
    expiry = client.redis.zrange(pipeline_keys(client.settings.prefix, P).running, -1, -1,
                                 withscores=True)[0][1]  # fmt: skip
    client.pause(P)
    wait_until(lambda: now_ms(client) > expiry + 60, poll_s=0.005)

    assert client.withdraw(P) == []

    assert client.counts(P) == {"queued": 2, "delayed": 0, "running": 0, "success": 0,
                                "failure": 1, "cancelled": 0}  # fmt: skip
    retried = client.get("retry", pipeline=P)
    assert (retried.status, retried.attempt, retried.error.kind) == ("queued", 1, "lease")
    assert client.get("last", pipeline=P).status == "failure"
    assert client.stats(P)["expired"] == 2
    assert client.get("later", pipeline=P).status == "queued"

    client.resume(P)
    assert sorted(w.id for w in client.withdraw(P, count=5)) == ["later", "retry"]


def test_deposits_renewals_and_completions_go_on_while_paused(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=i) for i in ("a", "b", "c")])
    held = client.withdraw(P, count=3)
    client.pause(P)

    assert client.deposit([Work(pipeline=P, id="new")]) == [True]
    assert client.counts(P)["queued"] == 1
    assert client.renew(held) == ["ok", "ok", "ok"]
    a, b, c = held
    a.results = {"done": True}
    assert client.complete(a, "success") == "success"
    assert client.complete(b, "failure", failure=Failure(message="x")) == "queued"
    assert client.complete(c, "release") == "queued"
    b.results = {"progress": 1}
    client.cancel("new", pipeline=P)
    client.retry("new", pipeline=P)
    assert client.get("a", pipeline=P).results == {"done": True}

    client.requeue_expired(P)
    assert client.counts(P)["queued"] == 3  # b (retry due), c (released), new (retried)
    assert client.withdraw(P, count=3) == []  # ...but none is handed out
    client.resume(P)
    assert sorted(w.id for w in client.withdraw(P, count=3)) == ["b", "c", "new"]


def test_resume_wakes_a_blocked_withdrawer_quickly(
    client: Client, make_client, pool: ThreadPoolExecutor
) -> None:
    waiter = make_client(idle_wait_s=30)  # without a wake-up it would sleep 10 s
    client.deposit([Work(pipeline=P, id="w")])
    client.pause(P)
    future = timed_withdraw(pool, waiter, timeout_s=10)
    wait_until(lambda: blocked(client), poll_s=0.005)
    time.sleep(0.05)
    assert not future.done()

    resumed = time.monotonic()
    client.resume(P)
    works, returned = future.result(timeout=5)
    assert [w.id for w in works] == ["w"]
    assert returned - resumed < 1.0


def test_a_deposit_while_paused_does_not_hand_out_work(
    client: Client, make_client, pool: ThreadPoolExecutor
) -> None:
    """A deposit wakes the blocked withdrawer, which looks, finds the pipeline paused and
    waits again (it does not return early or spin)."""
    waiter = make_client(idle_wait_s=30)
    client.pause(P)
    future = timed_withdraw(pool, waiter, timeout_s=10)
    wait_until(lambda: blocked(client), poll_s=0.005)
    client.deposit([Work(pipeline=P, id="w")])
    time.sleep(0.3)
    assert not future.done()
    wait_until(lambda: blocked(client), poll_s=0.005)
    client.resume(P)
    works, _ = future.result(timeout=5)
    assert [w.id for w in works] == ["w"]


def test_resume_wakes_every_blocked_withdrawer(
    client: Client, make_client, pool: ThreadPoolExecutor
) -> None:
    waiters = [make_client(idle_wait_s=30), make_client(idle_wait_s=30)]
    client.deposit([Work(pipeline=P, id="a"), Work(pipeline=P, id="b")])
    client.pause(P)
    futures = [timed_withdraw(pool, w, timeout_s=2) for w in waiters]
    wait_until(lambda: blocked(client) == 2, poll_s=0.005)
    resumed = time.monotonic()
    client.resume(P)
    results = [f.result(timeout=5) for f in futures]
    assert sorted(w.id for works, _ in results for w in works) == ["a", "b"]
    assert max(returned for _, returned in results) - resumed < 1.0
