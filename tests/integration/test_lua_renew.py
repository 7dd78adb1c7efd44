"""renew.lua on a real Redis: ok / lost / cancelled / missing, and the deadline cap."""

from __future__ import annotations

import time

import pytest

from workflow import Client, LeaseLost, Work

from ..helpers import keys, now_ms, record, wait_until

P = "renew-pipe"


def test_renew_ok_extends_the_lease_and_changes_nothing_else(client: Client, make_client) -> None:
    worker = make_client(lease_ms=300)
    client.deposit([Work(pipeline=P, id="w")])
    [w] = worker.withdraw(P)
    k = keys(client, P)
    first = client.redis.zscore(k.running, "w")
    rec = record(client, "w", P)

    wait_until(lambda: now_ms(client) >= first - 250)
    before = now_ms(client)
    assert worker.renew([w]) == ["ok"]
    after = now_ms(client)
    score = client.redis.zscore(k.running, "w")
    assert before + 300 <= score <= after + 300
    assert score > first
    assert record(client, "w", P) == rec
    assert w.renew() is None  # the Work method (default client, its own lease length)


def test_renew_with_a_wrong_token_is_lost(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    score = client.redis.zscore(keys(client, P).running, "w")

    stale = client.get("w", pipeline=P)
    assert client.renew([stale]) == ["lost"]  # never withdrawn by this process: no token
    stale._token = w._token + "x"
    assert client.renew([stale]) == ["lost"]
    assert client.redis.zscore(keys(client, P).running, "w") == score


def test_renew_after_reclaim_and_rewithdraw_by_another_client_is_lost(
    client: Client, make_client
) -> None:
    worker = make_client(lease_ms=150)
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = worker.withdraw(P)
    [w2] = wait_until(lambda: client.withdraw(P))  # reclaimed, retried, withdrawn again
    assert w2.attempt == 2
    score = client.redis.zscore(keys(client, P).running, "w")

    assert worker.renew([w]) == ["lost"]
    assert client.redis.zscore(keys(client, P).running, "w") == score
    assert client.renew([w2]) == ["ok"]


def test_renew_after_reclaim_before_rewithdraw_is_lost(client: Client, make_client) -> None:
    worker = make_client(lease_ms=100, backoff_base_ms=60_000, backoff_max_ms=60_000)
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = worker.withdraw(P)
    wait_until(lambda: worker.requeue_expired(P)[0] == 1)
    assert record(client, "w", P)[b"status"] == b"queued"  # waiting out its backoff
    assert worker.renew([w]) == ["lost"]
    assert client.redis.zscore(keys(client, P).running, "w") is None  # not re-added


def test_renew_after_completion_is_lost(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    client.complete(w, "success")
    assert client.renew([w]) == ["lost"]
    assert client.redis.zscore(keys(client, P).running, "w") is None


def test_renew_of_a_cancelled_work_says_cancelled(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    client.cancel("w", pipeline=P)
    assert client.renew([w]) == ["cancelled"]
    assert client.redis.zscore(keys(client, P).running, "w") is None  # not re-added


def test_renew_of_a_deleted_work_says_missing(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    client.delete(w)
    assert client.renew([w]) == ["missing"]
    assert client.redis.zscore(keys(client, P).running, "w") is None


def test_one_renew_call_answers_per_work_across_pipelines(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}") for i in range(4)])
    client.deposit([Work(pipeline="renew-other", id="o")])
    works = client.withdraw(P, count=4) + client.withdraw("renew-other")
    client.cancel("w1", pipeline=P)
    client.delete("w2", pipeline=P)
    works[3]._token = "not-the-token"
    assert client.renew(works) == ["ok", "cancelled", "missing", "lost", "ok"]


def test_renew_never_extends_past_deadline_plus_grace(client: Client, make_client) -> None:
    worker = make_client(lease_ms=60_000, grace_ms=200)
    client.deposit([Work(pipeline=P, id="w", timeout=1)])
    [w] = worker.withdraw(P)
    cap = int(record(client, "w", P)[b"deadline"]) + 200
    k = keys(client, P)
    assert client.redis.zscore(k.running, "w") == cap
    assert worker.renew([w]) == ["ok"]
    assert client.redis.zscore(k.running, "w") == cap

    # Short leases are extended from now until they reach the cap.
    short = make_client(lease_ms=300, grace_ms=200)
    client.deposit([Work(pipeline=P, id="s", timeout=1)])
    [s] = short.withdraw(P)
    cap = int(record(client, "s", P)[b"deadline"]) + 200
    scores = []
    while now_ms(client) < cap - 30:
        assert short.renew([s]) == ["ok"]
        scores.append(client.redis.zscore(k.running, "s"))
        time.sleep(0.05)
    assert max(scores) == cap
    assert scores == sorted(scores)
    while now_ms(client) < cap:
        time.sleep(0.01)
    # Past the cap the lease cannot be extended: the worker hears "lost"; the score stays
    # in the past, so the next withdraw or sweep reclaims the attempt.
    assert short.renew([s]) == ["lost"]
    assert client.redis.zscore(k.running, "s") == cap
    assert client.requeue_expired(P)[0] == 2  # "w" and "s" both ran past their caps
    assert client.get("s", pipeline=P).error.kind == "timeout"
    assert client.get("w", pipeline=P).error.kind == "timeout"


def test_work_renew_raises_when_the_lease_is_gone(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    w.renew()  # held: no error
    client.cancel("w", pipeline=P)
    with pytest.raises(LeaseLost, match="cancelled"):
        w.renew()
