"""expire.lua on a real Redis: retention drops exactly what the policy says, oldest first,
and counts every drop."""

from __future__ import annotations

import pytest

from workflow import Client, Results, ValidationError, Work
from workflow.query import expire_call

from ..helpers import keys, now_ms

P = "expire-pipe"


def finished(client: Client, n: int, status: str = "success", end_s: int = 0) -> list[str]:
    """`n` finished works of `status`, oldest first (stop times set 1 s apart, the last
    `end_s` seconds ago), indexed."""
    ids = [f"{status[0]}{i:03d}" for i in range(n)]
    client.deposit([Work(pipeline=P, id=i, tags=["t"], retries=0) for i in ids])
    for _ in ids:
        [w] = client.withdraw(P)
        if status == "cancelled":
            client.cancel(w.id, pipeline=P)
        else:
            client.complete(w, status, terminal=True)
    k = keys(client, P)
    now = now_ms(client)
    for age, work_id in enumerate(reversed(ids)):  # re-date the stops: 1 s apart
        stop = now - (end_s + age) * 1000 - 10
        client.redis.zadd(getattr(k, status), {work_id: stop})
        client.redis.hset(k.work + work_id, "stop", stop)
    Results(client).index(P)
    return ids


def survivors(client: Client) -> set[str]:
    return {w.id for w in Results(client).iterate(P)}  # type: ignore[misc]


def expire(client: Client, limit: int = 100) -> tuple[int, int]:
    dropped, more = client._run(expire_call(client.settings, P, limit))
    return int(dropped), int(more)


def test_no_policy_keeps_everything(client: Client) -> None:
    ids = finished(client, 5)
    assert expire(client) == (0, 0)
    assert survivors(client) == set(ids)


def test_max_count_drops_the_oldest_across_statuses(client: Client) -> None:
    ok = finished(client, 6, "success", end_s=10)
    bad = finished(client, 4, "failure")  # these stopped after every success
    Results(client).set_retention(P, max_count=5)
    assert expire(client) == (5, 0)
    assert survivors(client) == set(ok[5:] + bad)
    stats = client.stats(P)
    assert stats["dropped"] == 5 and stats["dropped:success"] == 5
    assert "dropped:failure" not in stats
    assert Results(client).count(P, tags="t") == 5  # the index lost them too


def test_max_age_drops_what_stopped_before_the_cutoff(client: Client) -> None:
    ids = finished(client, 10)  # stopped 9.01 s ... 0.01 s ago
    Results(client).set_retention(P, max_age_s=5)
    dropped, more = expire(client)
    assert (dropped, more) == (5, 0)  # stopped >= 5.01 s ago
    assert survivors(client) == set(ids[5:])
    assert client.stats(P)["dropped:success"] == 5


def test_both_limits_and_a_bounded_batch(client: Client) -> None:
    ids = finished(client, 10, "cancelled")
    Results(client).set_retention(P, max_age_s=8, max_count=4)
    assert expire(client, limit=3) == (3, 1)
    assert expire(client, limit=3) == (3, 0)
    assert survivors(client) == set(ids[6:])
    assert client.stats(P)["dropped:cancelled"] == 6
    for work_id in ids[:6]:
        assert not client.redis.exists(keys(client, P).work + work_id)


def test_the_indexer_enforces_retention(client: Client) -> None:
    finished(client, 8)
    Results(client).set_retention(P, max_count=3)
    Results(client).index(P)
    assert Results(client).count(P) == 3
    assert Results(client).retention(P).max_count == 3


def test_retention_settings_are_validated(client: Client) -> None:
    with pytest.raises(ValidationError, match="max_count"):
        Results(client).set_retention(P, max_count=0)
    with pytest.raises(ValidationError, match="max_age_s"):
        Results(client).set_retention(P, max_age_s=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="pipeline"):
        Results(client).set_retention("bad name!", max_count=3)
    Results(client).set_retention(P, max_count=3)
    Results(client).set_retention(P)  # no limits: keep forever
    assert Results(client).retention(P).max_count is None


def test_an_indexer_behind_on_retention_keeps_at_it_every_round(client: Client) -> None:
    """More to drop than one round allows (20 calls of EXPIRE_BATCH): the next round
    drops again at once instead of 5 s later."""
    from workflow import indexer as indexer_module
    from workflow.indexer import Indexer

    finished(client, 30)
    Results(client).set_retention(P, max_count=5)
    ix = Indexer(client, [P], consumer="t")
    original = indexer_module.EXPIRE_BATCH
    indexer_module.EXPIRE_BATCH = 1  # 20 drops per round
    try:
        ix.run_once()
        assert Results(client).count(P) == 10 and ix._housekept[P] == 0.0  # behind
        ix.run_once()
        assert Results(client).count(P) == 5 and ix._housekept[P] > 0.0  # caught up
    finally:
        indexer_module.EXPIRE_BATCH = original
