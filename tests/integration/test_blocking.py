"""Blocking withdraw: long waits survive the command socket timeout, idle waiters wake on
a deposit, `timeout_s` is honoured, and delayed (retried) work is picked up when due."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from workflow import Client, Work
from workflow.connection import COMMAND_TIMEOUT_S
from workflow.keys import pipeline_keys

from ..helpers import client_list, now_ms, wait_until

T = TypeVar("T")
P = "blocking"
WAITER = "workflow-wait"
"""Client name of the connection a blocked withdraw waits on."""


def blocked_waiters(client: Client) -> list[dict[str, Any]]:
    """Connections blocked in BLPOP on behalf of a withdraw."""
    return [
        c for c in client_list(client) if c.get("name") == WAITER and c.get("cmd") == "blpop"
    ]


def timed(fn: Callable[[], T]) -> Callable[[], tuple[T, float]]:
    """`fn` returning `(result, monotonic time it returned)`."""

    def run() -> tuple[T, float]:
        result = fn()
        return result, time.monotonic()

    return run


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def start_withdraw(
    pool: ThreadPoolExecutor, waiter: Client, pipelines: str | list[str], timeout_s: float
) -> Future[tuple[list[Work], float]]:
    return pool.submit(timed(lambda: waiter.withdraw(pipelines, timeout_s=timeout_s)))


@pytest.mark.slow
def test_a_long_blocking_withdraw_outlives_the_socket_timeout(
    client: Client, make_client: Callable[..., Client], pool: ThreadPoolExecutor
) -> None:
    """One BLPOP of ~12 s, longer than the 10 s command socket timeout: no TimeoutError,
    no reconnect and re-send at 10 s; the deposit at 11 s is returned."""
    assert COMMAND_TIMEOUT_S < 11
    waiter = make_client(idle_wait_s=30)  # a single wait spans the whole 12 s
    depositor = make_client()
    started = time.monotonic()
    future = start_withdraw(pool, waiter, P, timeout_s=12)
    wait_until(lambda: blocked_waiters(client), poll_s=0.005)
    time.sleep(max(0.0, started + 10.5 - time.monotonic()))
    [conn] = blocked_waiters(client)  # the same BLPOP, blocked for more than 10 s by now
    assert int(conn["age"]) >= 10 and int(conn["idle"]) >= 10, conn
    assert not future.done()
    time.sleep(max(0.0, started + 11 - time.monotonic()))
    work = Work(pipeline=P, parameters={"late": True})
    deposited = time.monotonic()
    depositor.deposit([work])
    works, returned = future.result(timeout=5)
    assert [w.id for w in works] == [work.id]
    assert works[0].status == "running"
    assert returned - deposited < 1.0
    assert 11 <= returned - started < 12


def test_an_idle_withdraw_wakes_on_a_deposit(
    client: Client, make_client: Callable[..., Client], pool: ThreadPoolExecutor
) -> None:
    waiter, depositor = make_client(), make_client()
    latencies = []
    for i in range(5):
        future = start_withdraw(pool, waiter, P, timeout_s=10)
        wait_until(lambda: blocked_waiters(client), poll_s=0.005)
        time.sleep(0.05)
        work = Work(pipeline=P, id=f"w{i}")
        deposited = time.monotonic()
        depositor.deposit([work])
        works, returned = future.result(timeout=5)
        assert [w.id for w in works] == [work.id]
        latencies.append(returned - deposited)
    assert max(latencies) < 1.0, latencies
    print(f"\nwake-up latency: median {statistics.median(latencies) * 1000:.1f} ms")


def test_a_withdraw_blocked_on_several_pipelines_wakes_on_any(
    client: Client, make_client: Callable[..., Client], pool: ThreadPoolExecutor
) -> None:
    waiter, depositor = make_client(), make_client()
    future = start_withdraw(pool, waiter, ["first", "second"], timeout_s=10)
    wait_until(lambda: blocked_waiters(client), poll_s=0.005)
    deposited = time.monotonic()
    depositor.deposit([Work(pipeline="second", id="w2")])
    works, returned = future.result(timeout=5)
    assert [(w.pipeline, w.id) for w in works] == [("second", "w2")]
    assert returned - deposited < 1.0


@pytest.mark.parametrize("stale_tokens", [False, True], ids=["quiet", "stale-wake-tokens"])
def test_timeout_expires_with_nothing_deposited(client: Client, stale_tokens: bool) -> None:
    if stale_tokens:  # wake-ups of deposits nobody waited for must not cut the wait short
        client.deposit([Work(pipeline=P) for _ in range(5)])
        assert len(client.withdraw(P, count=5)) == 5
        assert client.redis.llen(pipeline_keys(client.settings.prefix, P).wake) > 0
    started = time.monotonic()
    assert client.withdraw(P, timeout_s=1.5) == []
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 2.5, elapsed


def test_no_timeout_returns_at_once(client: Client) -> None:
    started = time.monotonic()
    assert client.withdraw(P) == []
    assert client.withdraw(P, timeout_s=0) == []
    assert time.monotonic() - started < 0.5


def test_a_blocking_withdraw_returns_queued_work_at_once(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="ready")])
    started = time.monotonic()
    assert [w.id for w in client.withdraw(P, timeout_s=10)] == ["ready"]
    assert time.monotonic() - started < 0.5


def _fail_once(client: Client) -> tuple[Work, float]:
    """Deposit, withdraw and fail a work with one retry left; `(work, seconds until due)`."""
    work = Work(pipeline=P, id="retried", retries=1)
    client.deposit([work])
    [held] = client.withdraw(P)
    assert client.complete(held, "failure") == "queued"
    k = pipeline_keys(client.settings.prefix, P)
    due_ms = client.redis.zscore(k.delayed, "retried")
    assert due_ms is not None
    return work, (due_ms - now_ms(client)) / 1000


def test_a_blocked_withdraw_picks_up_a_retry_when_it_is_due(
    client: Client, make_client: Callable[..., Client]
) -> None:
    """Nothing is queued, so withdraw waits; the delayed retry's due time (the script's
    `wait_ms` hint) bounds the wait, not `idle_wait_s`, and nothing wakes it early."""
    worker = make_client(backoff_base_ms=300, backoff_max_ms=300)
    assert worker.settings.idle_wait_s >= 5
    work, due_in_s = _fail_once(worker)
    assert 0.1 <= due_in_s <= 0.3
    worker.redis.delete(pipeline_keys(worker.settings.prefix, P).wake)  # no wake-up token
    started = time.monotonic()
    works = worker.withdraw(P, timeout_s=5)
    elapsed = time.monotonic() - started
    assert [w.id for w in works] == [work.id]
    assert works[0].attempt == 2
    assert due_in_s - 0.02 <= elapsed < due_in_s + 0.5, (elapsed, due_in_s)


def test_an_already_blocked_withdraw_picks_up_a_new_retry_when_due(
    client: Client, make_client: Callable[..., Client], pool: ThreadPoolExecutor
) -> None:
    worker = make_client(backoff_base_ms=300, backoff_max_ms=300)
    waiter = make_client(idle_wait_s=2.5)  # the ceiling it falls back to (default 5 s)
    worker.deposit([Work(pipeline=P, id="retried", retries=1)])
    [held] = worker.withdraw(P)
    worker.redis.delete(pipeline_keys(worker.settings.prefix, P).wake)
    future = start_withdraw(pool, waiter, P, timeout_s=8)
    wait_until(lambda: blocked_waiters(client), poll_s=0.005)
    time.sleep(0.1)
    assert worker.complete(held, "failure") == "queued"
    failed = time.monotonic()
    works, returned = future.result(timeout=10)
    assert [w.id for w in works] == ["retried"]
    assert returned - failed < 1.3, returned - failed


def test_an_already_blocked_withdraw_picks_up_a_delayed_deposit_when_due(
    client: Client, make_client: Callable[..., Client], pool: ThreadPoolExecutor
) -> None:
    waiter, depositor = make_client(idle_wait_s=2.5), make_client()
    future = start_withdraw(pool, waiter, P, timeout_s=8)
    wait_until(lambda: blocked_waiters(client), poll_s=0.005)
    time.sleep(0.1)
    depositor.deposit([Work(pipeline=P, id="later")], delay_s=0.3)
    deposited = time.monotonic()
    works, returned = future.result(timeout=10)
    assert [w.id for w in works] == ["later"]
    assert returned - deposited < 1.3, returned - deposited
