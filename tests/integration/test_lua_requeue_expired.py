"""requeue_expired.lua on a real Redis: the recovery sweep withdraw also runs, on its own:
`(reclaimed, promoted)`, bounded by `recover_limit`."""

from __future__ import annotations

from workflow import Client, Work

from ..helpers import keys, now_ms, record, wait_until, where

P = "sweep-pipe"
STATES = ("queued", "running", "delayed", "success", "failure", "cancelled")
SLOW_BACKOFF = {"backoff_base_ms": 60_000, "backoff_max_ms": 60_000}


def expire_leases(client: Client, make_client, works: list[Work]) -> None:
    """Deposit `works` (one pipeline), withdraw them all with a 100 ms lease, and wait
    until it is over."""
    client.deposit(works)
    pipeline = works[0].pipeline
    worker = make_client(lease_ms=100)
    assert len(worker.withdraw(pipeline, count=len(works))) == len(works)
    last = client.redis.zrange(keys(client, pipeline).running, -1, -1, withscores=True)[0][1]
    wait_until(lambda: now_ms(client) > last)


def new(ids: str, pipeline: str = P, **fields) -> list[Work]:
    return [Work(pipeline=pipeline, id=i, **fields) for i in ids.split()]


def test_nothing_to_do(client: Client) -> None:
    assert client.requeue_expired(P) == (0, 0)
    client.deposit([Work(pipeline=P)])
    client.deposit([Work(pipeline=P)], delay_s=60)
    client.withdraw(P)  # a live 30 s lease
    assert client.requeue_expired(P) == (0, 0)
    assert client.counts(P) == dict.fromkeys(STATES, 0) | {"delayed": 1, "running": 1}


def test_expired_leases_are_retried_with_backoff(client: Client, make_client) -> None:
    sweeper = make_client(**SLOW_BACKOFF)
    expire_leases(client, make_client, new("a b c", retries=1))
    assert sweeper.requeue_expired(P) == (3, 0)
    for i in "abc":
        assert where(client, i, P) == {"delayed"}
        rec = record(client, i, P)
        assert (rec[b"status"], rec[b"attempt"]) == (b"queued", b"1")
        assert client.get(i, pipeline=P).error.kind == "lease"
    stats = client.stats(P)
    assert (stats["expired"], stats["retried"]) == (3, 3)
    assert client.redis.xlen(keys(client, P).done) == 0


def test_expired_leases_without_retries_fail(client: Client, make_client) -> None:
    expire_leases(client, make_client, new("a b", retries=0))
    assert client.requeue_expired(P) == (2, 0)
    for i in "ab":
        assert where(client, i, P) == {"failure"}
        assert record(client, i, P)[b"status"] == b"failure"
    done = [f for _, f in client.redis.xrange(keys(client, P).done)]
    assert sorted(done, key=lambda f: f[b"id"]) == [
        {b"id": b"a", b"status": b"failure", b"attempt": b"1"},
        {b"id": b"b", b"status": b"failure", b"attempt": b"1"},
    ]
    assert client.stats(P)["failure"] == 2


def test_a_retry_due_at_once_is_reclaimed_and_promoted_in_one_sweep(
    client: Client, make_client
) -> None:
    expire_leases(client, make_client, new("a", retries=1))
    assert client.requeue_expired(P) == (1, 1)  # the test settings' backoff is 0
    assert where(client, "a", P) == {"queued"}
    [w] = client.withdraw(P)
    assert (w.id, w.attempt) == ("a", 2)


def test_due_delayed_works_are_promoted_in_due_order(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="x", priority=5)])
    client.deposit([Work(pipeline=P, id="d1", priority=5)], delay_s=0.05)
    client.deposit([Work(pipeline=P, id="d2", priority=5)], delay_s=0.06)
    client.deposit([Work(pipeline=P, id="later")], delay_s=60)
    due = client.redis.zscore(keys(client, P).delayed, "d2")
    wait_until(lambda: now_ms(client) > due)

    assert client.requeue_expired(P) == (0, 2)
    order = [m.decode() for m in client.redis.zrange(keys(client, P).queued, 0, -1)]
    assert order == ["x", "d1", "d2"]
    assert where(client, "later", P) == {"delayed"}
    assert record(client, "d1", P)[b"status"] == b"queued"
    assert client.requeue_expired(P) == (0, 0)


def test_the_sweep_is_bounded_by_recover_limit(client: Client, make_client) -> None:
    ids = [f"w{i}" for i in range(5)]
    expire_leases(client, make_client, new(" ".join(ids), retries=1))
    k = keys(client, P)
    by_expiry = [m.decode() for m in client.redis.zrange(k.running, 0, -1)]
    sweeper = make_client(recover_limit=2, **SLOW_BACKOFF)
    assert sweeper.requeue_expired(P) == (2, 0)
    assert {i for i in ids if where(client, i, P) == {"running"}} == set(by_expiry[2:])
    assert sweeper.requeue_expired(P) == (2, 0)
    assert sweeper.requeue_expired(P) == (1, 0)
    assert sweeper.requeue_expired(P) == (0, 0)

    client.redis.zadd(k.delayed, dict.fromkeys(ids, 0))  # all due now
    assert sweeper.requeue_expired(P) == (0, 2)
    assert sweeper.requeue_expired(P) == (0, 2)
    assert sweeper.requeue_expired(P) == (0, 1)
    assert client.redis.zcard(k.queued) == 5


def test_withdraw_runs_the_same_bounded_recovery(client: Client, make_client) -> None:
    """Two identical pipelines: one recovered by the sweep, one by a withdraw that takes
    nothing (its filter matches no work). Same outcome, same bound."""
    swept, withdrawn = "sweep-a", "sweep-b"
    for pipeline in (swept, withdrawn):
        works = new("r1 r2 r3", pipeline, retries=1) + new("f1", pipeline, retries=0)
        expire_leases(client, make_client, works)
        client.deposit([Work(pipeline=pipeline, id="d1")], delay_s=0.05)
    wait_until(lambda: now_ms(client) > client.redis.zscore(keys(client, withdrawn).delayed, "d1"))

    limited = make_client(recover_limit=3, **SLOW_BACKOFF)
    assert limited.requeue_expired(swept) == (3, 1)
    assert limited.withdraw(withdrawn, site="no-such-site") == []
    for name in ("r1", "r2", "r3", "f1", "d1"):
        assert where(client, name, swept) == where(client, name, withdrawn), name
        a, b = record(client, name, swept), record(client, name, withdrawn)
        assert (a[b"status"], a[b"attempt"]) == (b[b"status"], b[b"attempt"]), name
    # recover_limit 3: the fourth expired lease waits for the next call.
    assert sum(where(client, n, swept) == {"running"} for n in ("r1", "r2", "r3", "f1")) == 1
    sa, sb = client.stats(swept), client.stats(withdrawn)
    assert sa == sb


def test_ids_whose_records_were_deleted_are_dropped(client: Client) -> None:
    k = keys(client, P)
    client.redis.zadd(k.running, {"ghost-run": 0})
    client.redis.zadd(k.delayed, {"ghost-delayed": 0})
    assert client.requeue_expired(P) == (1, 1)  # counted as handled ...
    assert client.redis.zcard(k.running) == 0  # ... and gone, not queued
    assert client.redis.zcard(k.delayed) == 0
    assert client.redis.zcard(k.queued) == 0
    assert "expired" not in client.stats(P)
