"""retry.lua on a real Redis: failed or cancelled works go back to the queue as new runs;
every other status is refused and nothing changes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from workflow import Client, Failure, InvalidTransition, LeaseLost, Work, WorkNotFound

from ..helpers import client_list, entries, keys, now_ms, record, wait_until, where

P = "retry-pipe"
STATES = ("queued", "running", "delayed", "success", "failure", "cancelled")


def snapshot(client: Client, work_id: str) -> tuple[Any, ...]:
    """Everything retry.lua could change."""
    k = keys(client, P)
    return (
        record(client, work_id, P),
        {n: client.redis.zrange(getattr(k, n), 0, -1, withscores=True) for n in STATES},
        client.stats(P),
        client.redis.lrange(k.wake, 0, -1),
        client.redis.get(k.seq),
        entries(client, P),
    )


def failed(client: Client, work_id: str = "w", *, retries: int = 0, **fields: Any) -> Work:
    """A work that failed terminally, with the failure on record; returns the worker's
    copy, given back the lease token of its last attempt (as a worker re-sending its
    completion, or one that does not know it lost the work, still holds it)."""
    client.deposit([Work(pipeline=P, id=work_id, retries=retries, **fields)])
    for attempt in range(1, retries + 2):
        client.requeue_expired(P)  # promote the backoff retry (backoff is 0 in tests)
        [held] = client.withdraw(P)
        assert held.attempt == attempt
        token = held._token  # type: ignore[attr-defined]
        status = client.complete(held, "failure", failure=Failure(message=f"boom {attempt}"))
    assert status == "failure"
    held._token = token  # type: ignore[attr-defined]
    return held


def test_failure_goes_back_to_the_queue_as_a_new_run(client: Client) -> None:
    failed(client)
    before = record(client, "w", P)
    stream = entries(client, P)
    client.redis.delete(keys(client, P).wake)
    t0 = now_ms(client)

    assert client.retry("w", pipeline=P) == "failure"

    rec = record(client, "w", P)
    assert (rec[b"status"], rec[b"attempt"]) == (b"queued", b"0")
    assert int(rec[b"queued_at"]) >= t0
    for gone in (b"stop", b"token", b"last"):
        assert gone not in rec
    assert rec[b"error"] == before[b"error"]  # the last failure stays on record
    assert rec[b"body"] == before[b"body"]
    assert where(client, "w", P) == {"queued"}
    stats = client.stats(P)
    assert (stats["requeued"], stats["failure"]) == (1, 1)  # lifetime counters
    assert client.redis.lrange(keys(client, P).wake, 0, -1) == [b"1"]
    assert entries(client, P) == stream  # not a finish: no stream entry

    w = client.get("w", pipeline=P)
    assert (w.status, w.attempt, w.stop) == ("queued", 0, None)
    assert w.error is not None and w.error.message == "boom 1"
    [again] = client.withdraw(P)
    assert (again.id, again.attempt, again.status) == ("w", 1, "running")
    assert client.complete(again, "success") == "success"


def test_the_new_run_has_its_full_retry_budget(client: Client) -> None:
    failed(client, retries=1)
    assert record(client, "w", P)[b"attempt"] == b"2"
    client.retry("w", pipeline=P)
    [w] = client.withdraw(P)
    assert w.attempt == 1
    assert client.complete(w, "failure", failure=Failure(message="again")) == "queued"
    assert where(client, "w", P) == {"delayed"}


@pytest.mark.parametrize("running", [False, True])
def test_cancelled_goes_back_to_the_queue(client: Client, running: bool) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    if running:
        client.withdraw(P)
    client.cancel("w", pipeline=P, reason="by mistake")
    assert client.retry("w") == "cancelled"  # found in every pipeline
    rec = record(client, "w", P)
    assert (rec[b"status"], rec[b"attempt"]) == (b"queued", b"0")
    assert where(client, "w", P) == {"queued"}
    w = client.get("w", pipeline=P)
    assert w.error is not None and (w.error.kind, w.error.message) == ("cancelled", "by mistake")
    assert [x.id for x in client.withdraw(P)] == ["w"]


def test_a_worker_of_a_cancelled_then_retried_work_is_fenced_off(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [old] = client.withdraw(P)
    client.cancel("w", pipeline=P)
    client.retry("w", pipeline=P)
    assert client.renew([old]) == ["lost"]
    old.results = {"stale": True}
    with pytest.raises(LeaseLost):
        client.complete(old, "success")
    rec = record(client, "w", P)
    assert rec[b"status"] == b"queued" and b"results" not in rec
    assert where(client, "w", P) == {"queued"}
    assert client.stats(P)["rejected"] == 1


def test_a_resent_completion_after_a_retry_is_rejected(client: Client) -> None:
    """The failing worker's completion is re-sent (its reply was lost) after an operator
    retried the work: the retry dropped the token, so the repeat is not mistaken for an
    idempotent re-send and does not fail the new run."""
    worker_copy = failed(client)
    token = worker_copy._token  # type: ignore[attr-defined]
    resend = Failure(message="boom 1")
    assert client.complete(worker_copy, "failure", failure=resend) == "failure"  # idempotent
    client.retry("w", pipeline=P)
    worker_copy._token = token  # type: ignore[attr-defined]
    with pytest.raises(LeaseLost):
        client.complete(worker_copy, "failure", failure=Failure(message="boom 1"))
    assert record(client, "w", P)[b"status"] == b"queued"
    assert where(client, "w", P) == {"queued"}


def test_a_stale_worker_cannot_complete_the_new_run(client: Client, make_client) -> None:
    first = failed(client)
    client.retry("w", pipeline=P)
    second = make_client()
    [new] = second.withdraw(P)
    first.results = {"from": "the old run"}
    with pytest.raises(LeaseLost):
        client.complete(first, "success")
    assert record(client, "w", P)[b"status"] == b"running"
    new.results = {"from": "the new run"}
    assert second.complete(new, "success") == "success"
    assert client.get("w", pipeline=P).results == {"from": "the new run"}
    stats = client.stats(P)
    assert (stats["rejected"], stats["success"], stats["requeued"]) == (1, 1, 1)


def test_retry_goes_behind_its_priority_class(client: Client) -> None:
    failed(client, "a", priority=3)
    client.deposit([
        Work(pipeline=P, id="b", priority=3),
        Work(pipeline=P, id="c", priority=5),
        Work(pipeline=P, id="d", priority=1),
    ])  # fmt: skip
    client.retry("a", pipeline=P)
    assert [w.id for w in client.withdraw(P, count=4)] == ["c", "b", "a", "d"]


def statuses() -> list[str]:
    return ["queued", "scheduled", "backoff", "running", "success"]


def put_in(client: Client, state: str) -> str:
    """Work `w` in a state retry must refuse; returns the status on its record."""
    w = Work(pipeline=P, id="w", retries=1)
    if state == "scheduled":
        client.deposit([w], delay_s=60)
        return "queued"
    client.deposit([w])
    if state == "queued":
        return "queued"
    [held] = client.withdraw(P)
    if state == "running":
        return "running"
    if state == "backoff":
        slow = Client(client.settings.replace(backoff_base_ms=60_000, backoff_max_ms=60_000))
        with slow:
            slow.complete(held, "failure", failure=Failure(message="x"))
        assert where(client, "w", P) == {"delayed"}
        return "queued"
    client.complete(held, "success")
    return "success"


@pytest.mark.parametrize("state", statuses())
def test_other_statuses_are_refused_and_nothing_changes(client: Client, state: str) -> None:
    status = put_in(client, state)
    before = snapshot(client, "w")
    with pytest.raises(InvalidTransition) as info:
        client.retry("w", pipeline=P)
    assert (info.value.status, info.value.operation) == (status, "retry")
    assert str(info.value) == f"cannot retry work 'w': its status is {status!r}"
    assert snapshot(client, "w") == before


def test_unknown_work_is_not_found(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    before = snapshot(client, "w")
    with pytest.raises(WorkNotFound):
        client.retry("nope", pipeline=P)
    with pytest.raises(WorkNotFound):
        client.retry("nope")  # searched in every pipeline
    assert snapshot(client, "w") == before
    assert "requeued" not in client.stats(P)


def test_retry_a_work_object(client: Client) -> None:
    failed(client)
    w = client.get("w", pipeline=P)
    assert client.retry(w) == "failure"
    assert (w.status, w.attempt) == ("queued", 0)


def test_retry_wakes_a_blocked_withdrawer(client: Client, make_client) -> None:
    failed(client)
    waiter = make_client(idle_wait_s=30)
    client.redis.delete(keys(client, P).wake)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(waiter.withdraw, P, timeout_s=10)
        wait_until(
            lambda: any(
                c.get("name") == "workflow-wait" and c.get("cmd") == "blpop"
                for c in client_list(client)
            ),
            poll_s=0.005,
        )
        started = time.monotonic()
        client.retry("w", pipeline=P)
        works = future.result(timeout=5)
    assert [w.id for w in works] == ["w"]
    assert time.monotonic() - started < 1.0


def test_an_unexplained_failure_of_the_new_run_does_not_reuse_the_old_error(
    client: Client,
) -> None:
    failed(client)
    client.retry("w", pipeline=P)
    [w] = client.withdraw(P)
    assert w.error is not None and w.error.attempt == w.attempt == 1  # the old run's
    client.complete(w, "failure")
    assert client.get("w", pipeline=P).error.message != "boom 1"
