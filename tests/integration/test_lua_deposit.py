"""deposit.lua on a real Redis: new works are queued (or delayed), existing ids untouched."""

from __future__ import annotations

from workflow import Client, Work
from workflow.client import DEPOSIT_CHUNK
from workflow.keys import pipelines_key

from ..helpers import keys, now_ms, record

P = "deposit-pipe"
CLASS = 2**42
"""Width of one priority class in the queued score: (5 - priority) * 2**42 + sequence."""


def test_new_work_is_queued_with_attempt_zero_and_fifo_score(client: Client) -> None:
    w = Work(pipeline=P, parameters={"a": 1}, priority=2, user="u", tags=["t"], event=[7])
    assert client.deposit([w]) == [True]
    assert w.id is not None
    assert (w.status, w.attempt) == ("queued", 0)

    k = keys(client, P)
    rec = record(client, w.id, P)
    assert rec[b"status"] == b"queued"
    assert rec[b"attempt"] == b"0"
    assert rec[b"priority"] == b"2"
    # The filter copies the withdraw script reads are separate fields.
    assert (rec[b"site"], rec[b"user"], rec[b"tags"], rec[b"event"]) == (
        b"local",
        b"u",
        b'["t"]',
        b"[7]",
    )
    assert b"token" not in rec and b"start" not in rec
    assert client.redis.get(k.seq) == b"1"
    assert client.redis.zscore(k.queued, w.id) == (5 - 2) * CLASS + 1
    assert client.redis.zscore(k.delayed, w.id) is None
    assert client.get(w.id, pipeline=P) == w


def test_work_deposit_uses_the_default_client(client: Client) -> None:
    w = Work(pipeline=P, parameters={"a": 1})
    assert w.deposit() is True
    assert client.redis.zscore(keys(client, P).queued, w.id) == 2 * CLASS + 1
    assert w.deposit(return_ids=True) == w.id  # a re-deposit: same id, nothing new
    assert client.redis.zcard(keys(client, P).queued) == 1


def test_batch_across_priorities_scores_each_class_fifo(client: Client) -> None:
    priorities = [1, 5, 3, 5, 2, 4, 1, 3]
    works = [Work(pipeline=P, priority=p, parameters={"i": i}) for i, p in enumerate(priorities)]
    assert client.deposit(works) == [True] * len(works)

    k = keys(client, P)
    for seq, (w, p) in enumerate(zip(works, priorities, strict=True), start=1):
        assert client.redis.zscore(k.queued, w.id) == (5 - p) * CLASS + seq
    ordered = [m.decode() for m in client.redis.zrange(k.queued, 0, -1)]
    expected = [w.id for w in sorted(works, key=lambda w: (-w.priority, works.index(w)))]
    assert ordered == expected
    assert client.stats(P)["deposited"] == len(works)


def test_redeposit_of_an_existing_id_changes_nothing(client: Client) -> None:
    w = Work(pipeline=P, parameters={"v": 1})
    client.deposit([w])
    k = keys(client, P)
    before = record(client, w.id, P)
    score = client.redis.zscore(k.queued, w.id)

    again = Work(pipeline=P, id=w.id, parameters={"v": 2}, priority=5, retries=0)
    assert client.deposit([again]) == [False]
    assert again.status == "created"  # not touched: it was not deposited
    assert record(client, w.id, P) == before
    assert client.redis.zscore(k.queued, w.id) == score
    assert client.redis.zcard(k.queued) == 1
    assert client.redis.get(k.seq) == b"1"
    assert client.stats(P)["deposited"] == 1

    # The same id twice in one batch: the first wins.
    twin_a = Work(pipeline=P, id="twin", parameters={"n": "a"})
    twin_b = Work(pipeline=P, id="twin", parameters={"n": "b"})
    assert client.deposit([twin_a, twin_b]) == [True, False]
    assert client.get("twin", pipeline=P).parameters == {"n": "a"}
    assert client.redis.zcard(k.queued) == 2


def test_redeposit_of_a_running_or_finished_work_does_not_requeue_it(client: Client) -> None:
    w = Work(pipeline=P, id="fixed-id")
    client.deposit([w])
    [got] = client.withdraw(P)
    client.complete(got, "success")
    assert client.deposit([Work(pipeline=P, id="fixed-id")]) == [False]
    assert record(client, "fixed-id", P)[b"status"] == b"success"
    assert client.redis.zcard(keys(client, P).queued) == 0


def test_delay_parks_the_work_in_delayed_with_one_wake_token(client: Client) -> None:
    k = keys(client, P)
    before = now_ms(client)
    w = Work(pipeline=P)
    assert client.deposit([w], delay_s=0.5) == [True]
    after = now_ms(client)

    due = client.redis.zscore(k.delayed, w.id)
    assert before + 500 <= due <= after + 500
    assert client.redis.zscore(k.queued, w.id) is None
    assert record(client, w.id, P)[b"status"] == b"queued"
    assert client.redis.get(k.seq) is None  # a sequence number is taken on promotion
    # One token: a blocked withdrawer wakes, finds it not due, and waits until it is.
    assert client.redis.llen(k.wake) == 1
    assert client.stats(P)["deposited"] == 1


def test_wake_tokens_are_capped_at_wake_cap(client: Client, make_client) -> None:
    k = keys(client, P)
    small = make_client(wake_cap=5)
    small.deposit([Work(pipeline=P) for _ in range(3)])
    assert client.redis.llen(k.wake) == 3
    small.deposit([Work(pipeline=P) for _ in range(10)])
    assert client.redis.llen(k.wake) == 5

    client.redis.delete(k.wake)
    client.deposit([Work(pipeline=P) for _ in range(client.settings.wake_cap + 10)])
    assert client.redis.llen(k.wake) == client.settings.wake_cap

    # An all-existing batch adds nothing and so wakes nobody.
    client.redis.delete(k.wake)
    client.deposit([Work(pipeline=P, id="same")])
    client.redis.delete(k.wake)
    client.deposit([Work(pipeline=P, id="same")])
    assert client.redis.llen(k.wake) == 0


def test_stats_count_only_new_works(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}") for i in range(4)])
    client.deposit([Work(pipeline=P, id=f"w{i}") for i in range(6)], delay_s=1)
    assert client.stats(P) == {"deposited": 6}


def test_global_pipelines_set_lists_every_pipeline_once(client: Client, make_client) -> None:
    client.deposit([Work(pipeline=P), Work(pipeline="other.pipe"), Work(pipeline=P)])
    fresh = make_client()  # its own registration cache: the write is idempotent
    fresh.deposit([Work(pipeline=P)])
    members = client.redis.smembers(pipelines_key(client.settings.prefix))
    assert members == {P.encode(), b"other.pipe"}
    assert client.pipelines() == sorted([P, "other.pipe"])
    # Each pipeline's works went to that pipeline's own keys.
    assert client.redis.zcard(keys(client, P).queued) == 3
    assert client.redis.zcard(keys(client, "other.pipe").queued) == 1


def test_batch_larger_than_one_deposit_chunk(client: Client) -> None:
    n = 2 * DEPOSIT_CHUNK + 7
    works = [Work(pipeline=P, priority=1 + i % 5, parameters={"i": i}) for i in range(n)]
    assert client.deposit(works) == [True] * n
    assert len({w.id for w in works}) == n

    k = keys(client, P)
    assert client.redis.zcard(k.queued) == n
    assert client.redis.get(k.seq) == str(n).encode()
    assert client.stats(P)["deposited"] == n
    scores = dict(client.redis.zrange(k.queued, 0, -1, withscores=True))
    for seq, w in enumerate(works, start=1):
        assert scores[w.id.encode()] == (5 - w.priority) * CLASS + seq
    assert client.redis.llen(k.wake) == client.settings.wake_cap
