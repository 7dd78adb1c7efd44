"""withdraw.lua on a real Redis: order, leases, filters and their bound, and the recovery
(expired leases, the timeout backstop, due delayed works) every withdraw runs first."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from workflow import Client, Work, core
from workflow.keys import work_key
from workflow.scripting import load

from ..helpers import keys, now_ms, record, wait_until

P = "withdraw-pipe"


def raw_withdraw(client: Client, pipeline: str = P, **filters: Any) -> tuple[list, int]:
    """One withdraw script call, as the client builds it: `(records, wait_ms)`."""
    call = core.withdraw_call(
        client.settings, pipeline, 1, core.Filters.make(**filters), "raw", 0.0
    )
    reply = client.redis.eval(load(call.script).source, len(call.keys), *call.keys, *call.args)
    return core.decode_withdraw(reply)


def drain(client: Client, pipeline: str = P, **filters: Any) -> list[Work]:
    out: list[Work] = []
    while batch := client.withdraw(pipeline, **filters):
        out += batch
    return out


# -- order and count -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_order_is_priority_then_fifo(client: Client, seed: int) -> None:
    rng = random.Random(seed)
    pipeline = f"order-{seed}"
    works = [Work(pipeline=pipeline, priority=rng.randint(1, 5)) for _ in range(40)]
    cut = rng.randint(1, 39)  # two deposit calls: FIFO holds across calls too
    client.deposit(works[:cut])
    client.deposit(works[cut:])

    got = drain(client, pipeline)
    expected = sorted(works, key=lambda w: (-w.priority, works.index(w)))
    assert [w.id for w in got] == [w.id for w in expected]
    assert client.stats(pipeline)["withdrawn"] == len(works)


def test_count_takes_up_to_k_works_in_order(client: Client) -> None:
    works = [Work(pipeline=P, parameters={"i": i}) for i in range(5)]
    client.deposit(works)
    first = client.withdraw(P, count=3)
    assert [w.id for w in first] == [w.id for w in works[:3]]
    rest = client.withdraw(P, count=10)
    assert [w.id for w in rest] == [w.id for w in works[3:]]
    assert client.withdraw(P, count=10) == []
    assert client.redis.zcard(keys(client, P).running) == 5


def test_each_lease_token_is_distinct_and_stored(client: Client) -> None:
    client.deposit([Work(pipeline=P) for _ in range(6)])
    got = client.withdraw(P, count=4) + client.withdraw(P, count=2)
    tokens = [w._token for w in got]
    assert len(set(tokens)) == 6
    for w in got:
        assert record(client, w.id, P)[b"token"] == w._token.encode()


# -- the transition ------------------------------------------------------------------------


def test_withdraw_transition_fields_and_running_score(client: Client, make_client) -> None:
    worker = make_client(lease_ms=300, grace_ms=100)
    w = Work(pipeline=P, timeout=1, parameters={"a": 1})
    client.deposit([w])
    k = keys(client, P)

    before = now_ms(client)
    [got] = worker.withdraw(P)
    after = now_ms(client)
    rec = record(client, w.id, P)
    start = int(rec[b"start"])
    assert before <= start <= after
    assert rec[b"status"] == b"running"
    assert rec[b"attempt"] == b"1"
    assert int(rec[b"deadline"]) == start + 1000
    assert b"stop" not in rec
    # Lease of 300 ms ends before deadline + grace (1100 ms).
    assert client.redis.zscore(k.running, w.id) == start + 300
    assert client.redis.zscore(k.queued, w.id) is None
    assert (got.status, got.attempt, got.start, got.stop) == ("running", 1, start / 1000, None)
    assert got.parameters == {"a": 1}
    assert client.stats(P)["withdrawn"] == 1


def test_running_score_is_capped_at_deadline_plus_grace(client: Client, make_client) -> None:
    worker = make_client(lease_ms=60_000, grace_ms=250)
    client.deposit([Work(pipeline=P, id="w", timeout=1)])
    worker.withdraw(P)
    start = int(record(client, "w", P)[b"start"])
    assert client.redis.zscore(keys(client, P).running, "w") == start + 1000 + 250


def test_a_retried_work_gets_attempt_plus_one_and_stop_cleared(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [first] = client.withdraw(P)
    assert client.complete(first, "failure") == "queued"
    assert b"stop" in record(client, "w", P)
    [second] = client.withdraw(P)  # backoff is 0 in the test settings: due at once
    rec = record(client, "w", P)
    assert (rec[b"status"], rec[b"attempt"]) == (b"running", b"2")
    assert b"stop" not in rec
    assert second.attempt == 2
    assert second._token != first._token


# -- filters -------------------------------------------------------------------------------

FILTER_WORKS: dict[str, dict[str, Any]] = {
    "a": dict(site="chime", user="alice", tags=["x", "y"], event=[1, 2], priority=3,
              config={"parent": "p1"}),
    "b": dict(site="local", user="bob", tags=["y"], event=[3], priority=5),
    "c": dict(site="chime", user="bob", tags=["x"], event=[2, 4], priority=1,
              config={"parent": "p2"}),
    "d": dict(priority=3, config={"other": 1}),
}  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, "badc"),
        ({"site": "chime"}, "ac"),
        ({"site": "nowhere"}, ""),
        ({"user": "bob"}, "bc"),
        ({"tags": ["x"]}, "ac"),
        ({"tags": ["x", "y"]}, "bac"),
        ({"tags": ["x", "y"], "tags_mode": "all"}, "a"),
        ({"tags": ["zzz"]}, ""),
        ({"event": 2}, "ac"),
        ({"event": [3, 4]}, "bc"),
        ({"event": [99]}, ""),
        ({"priority": 3}, "ad"),
        ({"priority": 1}, "c"),
        ({"priority": 4}, ""),
        ({"parent": "p1"}, "a"),
        ({"parent": "p3"}, ""),
        ({"site": "chime", "user": "bob", "tags": ["x"], "event": 2}, "c"),
        ({"site": "chime", "priority": 3}, "a"),
        ({"user": "alice", "priority": 5}, ""),
        ({"tags": ["y"], "event": [1, 3], "site": "local"}, "b"),
        ({"parent": "p2", "tags": ["x"], "tags_mode": "all", "priority": 1}, "c"),
    ],
)
def test_filters(client: Client, filters: dict[str, Any], expected: str) -> None:
    ids = {}
    for name, fields in FILTER_WORKS.items():
        w = Work(pipeline=P, parameters={"name": name}, **fields)
        client.deposit([w])
        ids[w.id] = name
    got = client.withdraw(P, count=10, **filters)
    assert "".join(ids[w.id] for w in got) == expected
    # Works that did not match stay queued, untouched.
    queued = {m.decode() for m in client.redis.zrange(keys(client, P).queued, 0, -1)}
    assert {ids[i] for i in queued} == set(FILTER_WORKS) - set(expected)
    for i in queued:
        assert record(client, i, P)[b"status"] == b"queued"


def test_work_withdraw_with_reference_filters(client: Client) -> None:
    Work(pipeline=P, site="chime", tags=["a"], event=[5]).deposit()
    keep = Work(pipeline=P, site="chime", tags=["b"], event=[5])
    keep.deposit()
    got = Work.withdraw(pipeline=P, site="chime", tags=["b"], event=5)
    assert got is not None and got.id == keep.id
    assert Work.withdraw(pipeline=P, site="chime", tags=["b"]) is None


def test_event_filter_is_exact_for_large_event_ids(client: Client) -> None:
    client.deposit([Work(pipeline=P, event=[10**15 + 1])])
    assert client.withdraw(P, event=10**15 + 2) == []


def test_scan_limit_bounds_filtered_withdraw(client: Client, make_client) -> None:
    """Documented bound: a withdraw with a site/user/tags/event/parent filter examines at
    most `scan_limit` queued works (in queue order); a match beyond them is not found by
    that call. The priority filter alone is an exact score range and is not bounded."""
    bounded = make_client(scan_limit=5)
    client.deposit([Work(pipeline=P, site="other", priority=5) for _ in range(5)])
    target = Work(pipeline=P, site="chime", priority=1)
    client.deposit([target])

    assert bounded.withdraw(P, site="chime") == []
    assert client.redis.zscore(keys(client, P).queued, target.id) is not None
    [found] = bounded.withdraw(P, priority=1)  # score range: no scan needed
    assert found.id == target.id

    # Within the bound the same match is found.
    target2 = Work(pipeline=P, site="chime", priority=5)
    client.deposit([target2])
    client.withdraw(P, count=2, site="other")  # 3 non-matching works now precede it
    [found2] = bounded.withdraw(P, site="chime")
    assert found2.id == target2.id

    # The client caps `count` at scan_limit.
    client.deposit([Work(pipeline=P) for _ in range(10)])
    assert len(bounded.withdraw(P, count=10)) == 5


# -- recovery ------------------------------------------------------------------------------


def test_expired_lease_is_reclaimed_and_retried(client: Client, make_client) -> None:
    worker = make_client(lease_ms=300)
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [first] = worker.withdraw(P)
    assert client.withdraw(P) == []  # the lease still holds

    [second] = wait_until(lambda: client.withdraw(P))
    assert second.id == "w"
    assert second.attempt == 2
    assert second._token != first._token
    assert second.error is not None
    assert (second.error.kind, second.error.attempt) == ("lease", 1)
    stats = client.stats(P)
    assert (stats["expired"], stats["retried"], stats["withdrawn"]) == (1, 1, 2)


def test_expired_lease_without_retries_left_fails_terminally(client: Client, make_client) -> None:
    worker = make_client(lease_ms=150)
    client.deposit([Work(pipeline=P, id="w", retries=0)])
    worker.withdraw(P)
    k = keys(client, P)

    def failed() -> bool:
        assert client.withdraw(P) == []
        return record(client, "w", P)[b"status"] == b"failure"

    wait_until(failed)
    assert client.redis.zscore(k.running, "w") is None
    assert client.redis.zscore(k.failure, "w") is not None
    assert client.get("w", pipeline=P).error.kind == "lease"
    [(_, entry)] = client.redis.xrange(k.done)
    assert entry == {b"id": b"w", b"status": b"failure", b"attempt": b"1"}
    stats = client.stats(P)
    assert (stats["expired"], stats["failure"]) == (1, 1)
    assert "retried" not in stats


def test_timeout_backstop_ends_an_attempt_that_keeps_renewing(client: Client, make_client) -> None:
    worker = make_client(lease_ms=300, grace_ms=0)
    client.deposit([Work(pipeline=P, id="w", timeout=1, retries=0)])
    [w] = worker.withdraw(P)
    deadline = int(record(client, "w", P)[b"deadline"])
    k = keys(client, P)

    def reclaimed() -> bool:
        status = record(client, "w", P)[b"status"]
        if status == b"running":
            # A live worker renewing its lease: "ok" until the deadline, then "lost".
            assert worker.renew([w]) in (["ok"], ["lost"])
            score = client.redis.zscore(k.running, "w")
            assert score is None or score <= deadline  # grace 0: never past the deadline
            client.withdraw(P)  # anyone's withdraw runs the recovery
        return status != b"running"

    wait_until(reclaimed, timeout_s=4)
    rec = record(client, "w", P)
    assert rec[b"status"] == b"failure"
    assert int(rec[b"stop"]) >= deadline
    stored = client.get("w", pipeline=P)
    assert stored.error is not None
    assert stored.error.kind == "timeout"
    assert "timeout of 1 s" in stored.error.message
    assert worker.renew([w]) == ["lost"]


def test_due_delayed_works_are_promoted_behind_their_priority_class(client: Client) -> None:
    k = keys(client, P)
    late = Work(pipeline=P, priority=5)
    client.deposit([late], delay_s=0.4)
    early = Work(pipeline=P, priority=5)
    low = Work(pipeline=P, priority=3)
    client.deposit([early, low])
    [got] = client.withdraw(P)
    assert got.id == early.id  # the delayed one is not due yet
    client.deposit([early2 := Work(pipeline=P, priority=5)])

    due = client.redis.zscore(k.delayed, late.id)
    wait_until(lambda: now_ms(client) > due)
    got = client.withdraw(P, count=3)
    # Promoted in the same call, it queues behind the priority-5 work already waiting.
    assert [w.id for w in got] == [early2.id, late.id, low.id]
    assert client.redis.zcard(k.delayed) == 0
    assert int(record(client, late.id, P)[b"start"]) >= due


def test_a_queued_id_whose_record_was_deleted_is_dropped(client: Client) -> None:
    k = keys(client, P)
    ghost, real = Work(pipeline=P), Work(pipeline=P)
    client.deposit([ghost, real])
    client.redis.delete(work_key(client.settings.prefix, P, ghost.id))

    [got] = client.withdraw(P)
    assert got.id == real.id
    assert client.redis.zscore(k.queued, ghost.id) is None
    assert client.redis.zscore(k.running, ghost.id) is None

    # The filtered path drops it too.
    ghost2, match = Work(pipeline=P, site="s"), Work(pipeline=P, site="s")
    client.deposit([ghost2, match])
    client.redis.delete(work_key(client.settings.prefix, P, ghost2.id))
    [got] = client.withdraw(P, site="s")
    assert got.id == match.id
    assert client.redis.zcard(k.queued) == 0


# -- waiting -------------------------------------------------------------------------------


def test_wait_ms_hint_when_nothing_is_withdrawn(client: Client, make_client) -> None:
    assert raw_withdraw(client) == ([], -1)  # nothing pending at all

    client.deposit([Work(pipeline=P, site="elsewhere")])
    assert raw_withdraw(client, site="here") == ([], -1)  # queued but not matching

    client.deposit([Work(pipeline=P)], delay_s=0.5)
    records, wait_ms = raw_withdraw(client, site="here")
    assert records == []
    assert 0 < wait_ms <= 500

    make_client(lease_ms=200).withdraw(P, site="elsewhere")
    records, wait_ms = raw_withdraw(client, site="here")
    assert 0 < wait_ms <= 200  # the lease expires before the delayed work is due


def test_blocking_withdraw_follows_the_hint_and_the_wake_signal(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="later")], delay_s=0.2)
    t0 = time.monotonic()
    [got] = client.withdraw(P, timeout_s=3)
    assert got.id == "later"
    assert 0.15 < time.monotonic() - t0 < 1.5  # woken by the hint, not idle_wait_s (5 s)

    timer = threading.Timer(0.1, lambda: client.deposit([Work(pipeline=P, id="now")]))
    t0 = time.monotonic()
    timer.start()
    try:
        [got] = client.withdraw(P, timeout_s=3)
    finally:
        timer.join()
    assert got.id == "now"
    assert time.monotonic() - t0 < 1.5


def test_several_pipelines_in_one_call_are_served_in_the_order_given(client: Client) -> None:
    p1, p2 = "multi-1", "multi-2"
    a = Work(pipeline=p1, priority=1)
    b, c = Work(pipeline=p2, priority=5), Work(pipeline=p2, priority=5)
    client.deposit([a, b, c])
    got = client.withdraw([p1, p2], count=2)
    assert [w.id for w in got] == [a.id, b.id]
    got = client.withdraw([p1, p2], count=5)
    assert [w.id for w in got] == [c.id]
    assert client.stats(p1)["withdrawn"] == 1
    assert client.stats(p2)["withdrawn"] == 2


def test_empty_or_unknown_pipeline_returns_nothing_and_writes_nothing(client: Client) -> None:
    assert client.withdraw("never-used") == []
    assert client.withdraw("never-used", count=5, site="x") == []
    assert Work.withdraw(pipeline="never-used") is None
    k = keys(client, "never-used")
    assert client.redis.exists(*(key for key in k if not key.endswith(":"))) == 0
