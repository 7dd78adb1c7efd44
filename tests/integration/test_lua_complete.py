"""complete.lua on a real Redis: success, failure with retry/backoff or terminal, release,
fencing by the lease token, and idempotent re-sends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow import Client, LeaseLost, Work, WorkNotFound, core
from workflow.execution import failure_from as format_exception
from workflow.keys import work_key
from workflow.scripting import load

from ..helpers import entries, keys, now_ms, record, wait_until, where

P = "complete-pipe"
CLASS = 2**42


def boom() -> Exception:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return exc


def raw_fail(client: Client, work: Work, jitter: float) -> Any:
    """A failure completion with a chosen jitter, built by the core as the client does."""
    call = core.complete_call(
        client.settings, work.pipeline, work.id, work._token, "failure", jitter
    )
    return client.redis.eval(load(call.script).source, len(call.keys), *call.keys, *call.args)


# -- success -------------------------------------------------------------------------------


def test_success_is_terminal_and_stores_the_outputs(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    w.results = {"sum": 3}
    w.products = ["out.h5"]
    w.plots = ["plot.png"]
    before = now_ms(client)
    assert client.complete(w, "success") == "success"
    after = now_ms(client)
    assert w.status == "success"

    rec = record(client, "w", P)
    stop = int(rec[b"stop"])
    assert before <= stop <= after
    assert rec[b"status"] == b"success"
    assert rec[b"attempt"] == b"1"
    assert json.loads(rec[b"results"]) == {"sum": 3}
    assert json.loads(rec[b"products"]) == ["out.h5"]
    assert json.loads(rec[b"plots"]) == ["plot.png"]
    assert b"error" not in rec
    assert where(client, "w", P) == {"success"}
    assert client.redis.zscore(keys(client, P).success, "w") == stop
    assert entries(client, P) == [{b"id": b"w", b"status": b"success", b"attempt": b"1"}]
    assert client.stats(P)["success"] == 1

    stored = client.get("w", pipeline=P)
    assert (stored.status, stored.stop, stored.results) == ("success", stop / 1000, {"sum": 3})
    assert stored.error is None


def test_success_after_a_failed_attempt_keeps_that_failure_on_record(client: Client) -> None:
    """complete.lua's header: the error of an earlier failed attempt is kept on success."""
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = client.withdraw(P)
    client.complete(w, "failure", failure=format_exception(boom()))
    [w] = client.withdraw(P)
    assert client.complete(w, "success") == "success"
    stored = client.get("w", pipeline=P)
    assert stored.status == "success"
    assert stored.error is not None
    assert (stored.error.message, stored.error.attempt) == ("ValueError: boom", 1)
    assert entries(client, P) == [{b"id": b"w", b"status": b"success", b"attempt": b"2"}]


# -- failure -------------------------------------------------------------------------------


def test_failure_with_retries_left_waits_in_delayed_with_backoff(
    client: Client, make_client
) -> None:
    worker = make_client(backoff_base_ms=200, backoff_max_ms=300)
    client.deposit([Work(pipeline=P, id="w", retries=3)])
    k = keys(client, P)
    # attempt n waits min(max, base * 2**(n-1)) = d, jittered into [d/2, d).
    for attempt, d in ((1, 200), (2, 300), (3, 300)):
        [w] = wait_until(lambda: worker.withdraw(P))
        assert w.attempt == attempt
        assert worker.complete(w, "failure", failure=format_exception(boom())) == "queued"
        rec = record(client, "w", P)
        assert rec[b"status"] == b"queued"
        assert rec[b"attempt"] == str(attempt).encode()
        assert where(client, "w", P) == {"delayed"}
        wait = client.redis.zscore(k.delayed, "w") - int(rec[b"stop"])
        assert d // 2 <= wait < d, (attempt, wait)
        error = client.get("w", pipeline=P).error
        assert error is not None
        assert (error.kind, error.attempt) == ("exception", attempt)
        assert error.message == "ValueError: boom"
        assert "Traceback" in (error.traceback or "") and "boom" in (error.traceback or "")
    assert client.stats(P)["retried"] == 3
    assert entries(client, P) == []  # nothing finished yet


@pytest.mark.parametrize(("jitter", "wait"), [(0.0, 100), (0.5, 150), (0.999999, 199)])
def test_backoff_jitter_bounds_are_exact(
    client: Client, make_client, jitter: float, wait: int
) -> None:
    worker = make_client(backoff_base_ms=200, backoff_max_ms=10_000)
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = worker.withdraw(P)
    assert raw_fail(worker, w, jitter) == [b"queued"]
    stop = int(record(client, "w", P)[b"stop"])
    assert client.redis.zscore(keys(client, P).delayed, "w") == stop + wait


def test_failure_with_no_retries_left_is_terminal(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=0)])
    [w] = client.withdraw(P)
    assert client.complete(w, "failure", failure=format_exception(boom())) == "failure"
    assert w.status == "failure"
    rec = record(client, "w", P)
    assert rec[b"status"] == b"failure"
    assert where(client, "w", P) == {"failure"}
    assert client.redis.zscore(keys(client, P).failure, "w") == int(rec[b"stop"])
    assert entries(client, P) == [{b"id": b"w", b"status": b"failure", b"attempt": b"1"}]
    stats = client.stats(P)
    assert stats["failure"] == 1 and "retried" not in stats
    stored = client.get("w", pipeline=P)
    assert stored.error is not None
    assert stored.error.message == "ValueError: boom"
    assert "Traceback" in (stored.error.traceback or "")


def test_last_allowed_attempt_fails_terminally(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = client.withdraw(P)
    assert client.complete(w, "failure") == "queued"
    [w] = client.withdraw(P)
    assert client.complete(w, "failure") == "failure"
    assert (
        client.get("w", pipeline=P).error.message == "marked failure without an error record"
    )  # the default
    assert entries(client, P) == [{b"id": b"w", b"status": b"failure", b"attempt": b"2"}]


def test_terminal_failure_skips_the_retries(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=2)])
    [w] = client.withdraw(P)
    assert client.complete(w, "failure", terminal=True) == "failure"
    assert where(client, "w", P) == {"failure"}
    assert "retried" not in client.stats(P)


# -- release -------------------------------------------------------------------------------


def test_release_hands_the_work_back_without_counting_the_attempt(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", priority=4), Work(pipeline=P, id="x", priority=4)])
    [w] = client.withdraw(P)
    k = keys(client, P)
    client.redis.delete(k.wake)
    assert client.complete(w, "release") == "queued"

    rec = record(client, "w", P)
    assert (rec[b"status"], rec[b"attempt"]) == (b"queued", b"0")
    assert b"stop" not in rec
    assert where(client, "w", P) == {"queued"}
    # Back in its place: the sequence number it was deposited with, ahead of x.
    assert client.redis.zscore(k.queued, "w") == (5 - 4) * CLASS + 1
    assert client.redis.llen(k.wake) == 1
    assert client.stats(P)["released"] == 1
    assert entries(client, P) == []
    assert [v.id for v in client.withdraw(P, count=2)] == ["w", "x"]
    assert record(client, "w", P)[b"attempt"] == b"1"


def test_release_keeps_the_wake_list_within_wake_cap(client: Client, make_client) -> None:
    small = make_client(wake_cap=2)
    small.deposit([Work(pipeline=P) for _ in range(5)])
    for w in small.withdraw(P, count=5):
        small.complete(w, "release")
    assert client.redis.llen(keys(client, P).wake) <= 2


# -- fencing and idempotence ---------------------------------------------------------------


def test_a_stale_completion_is_rejected_and_recorded(client: Client, make_client) -> None:
    old_worker = make_client(lease_ms=150)
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [old] = old_worker.withdraw(P)
    [new] = wait_until(lambda: client.withdraw(P))  # lease expired: reclaimed, re-withdrawn
    before = record(client, "w", P)

    old.results = {"late": True}
    with pytest.raises(LeaseLost):
        old_worker.complete(old, "success")
    rec = record(client, "w", P)
    assert rec.pop(b"rejected") == b"1"
    assert rec == before  # the newer attempt is untouched
    assert where(client, "w", P) == {"running"}
    assert client.stats(P)["rejected"] == 1
    assert "success" not in client.stats(P)
    assert entries(client, P) == []

    new.results = {"on": "time"}
    assert client.complete(new, "success") == "success"
    assert client.get("w", pipeline=P).results == {"on": "time"}

    # Still rejected (and counted) once the newer attempt has finished.
    with pytest.raises(LeaseLost):
        old_worker.complete(old, "failure")
    assert client.stats(P)["rejected"] == 2
    assert record(client, "w", P)[b"rejected"] == b"2"


def test_completion_without_a_lease_is_rejected(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    never = client.get("w", pipeline=P)
    with pytest.raises(LeaseLost):  # this object was never withdrawn: no token
        client.complete(never, "success")
    never._token = "forged:1"
    with pytest.raises(LeaseLost):
        client.complete(never, "success")
    assert record(client, "w", P)[b"status"] == b"queued"
    assert client.stats(P)["rejected"] == 1


@pytest.mark.parametrize(
    ("outcome", "status", "stat"),
    [("success", "success", "success"), ("failure", "queued", "retried"),
     ("release", "queued", "released")],
)  # fmt: skip
def test_resending_the_same_completion_is_idempotent(
    client: Client, outcome: str, status: str, stat: str
) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = client.withdraw(P)
    token = w._token  # type: ignore[attr-defined]
    assert client.complete(w, outcome) == status  # type: ignore[arg-type]
    assert w._token == ""  # type: ignore[attr-defined]  # the attempt is over for this object
    rec = record(client, "w", P)
    stream = entries(client, P)

    w._token = token  # type: ignore[attr-defined]  # the same call re-sent after a lost reply
    assert client.complete(w, outcome) == status  # type: ignore[arg-type]
    assert record(client, "w", P) == rec
    assert entries(client, P) == stream
    assert client.stats(P)[stat] == 1
    assert "rejected" not in client.stats(P)

    # A different outcome with the same token is not a re-send: rejected.
    other = "failure" if outcome == "success" else "success"
    w._token = token  # type: ignore[attr-defined]
    with pytest.raises(LeaseLost):
        client.complete(w, other)  # type: ignore[arg-type]


def test_completing_a_deleted_work_is_not_found(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    client.redis.delete(work_key(client.settings.prefix, P, "w"))
    with pytest.raises(WorkNotFound):
        client.complete(w, "success")
    assert not client.redis.exists(work_key(client.settings.prefix, P, "w"))
    assert entries(client, P) == []
