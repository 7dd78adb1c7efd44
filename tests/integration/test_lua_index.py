"""index.lua on a real Redis: finished works enter the results index exactly, once, and
leave it when they are retried, deleted or not archived."""

from __future__ import annotations

from workflow import Client, Work
from workflow.indexer import Indexer
from workflow.keys import index_key
from workflow.query import GROUP, index_call

from ..helpers import entries, keys, record

P = "index-pipe"


def finish(client: Client, work: Work, outcome: str = "success") -> Work:
    """Deposit `work`, withdraw it and finish it with `outcome`."""
    client.deposit([work])
    [w] = client.withdraw(P)
    client.complete(w, outcome, terminal=True)
    return w


def ix(client: Client, field: str, value: str | int) -> dict[str, float]:
    """The results index of one field value: id -> stop time."""
    key = index_key(client.settings.prefix, P, field, value)
    return {k.decode(): v for k, v in client.redis.zrange(key, 0, -1, withscores=True)}


def index_all(client: Client) -> Indexer:
    indexer = Indexer(client, [P], consumer="test")
    indexer.drain()
    return indexer


def index_keys(client: Client) -> set[str]:
    pattern = keys(client, P).ix + "*"
    return {k.decode() for k in client.redis.scan_iter(match=pattern)}


def test_a_finished_work_is_indexed_under_every_field_value(client: Client) -> None:
    big = 2**53 - 1
    w = finish(client, Work(pipeline=P, id="w", event=[7, big], tags=["a", "b c"], user="ann",
                            site="chime", group=["g1", "g2"]))  # fmt: skip
    stop = client.redis.zscore(keys(client, P).success, "w")
    index_all(client)
    expected = [("event", 7), ("event", big), ("tag", "a"), ("tag", "b c"), ("user", "ann"),
                ("site", "chime"), ("group", "g1"), ("group", "g2")]  # fmt: skip
    for field, value in expected:
        assert ix(client, field, value) == {"w": stop}, (field, value)
    assert len(index_keys(client)) == 8
    assert w.id == "w"
    # The entry is acknowledged: nothing pending in the group.
    assert client.redis.xpending(keys(client, P).done, GROUP)["pending"] == 0


def test_indexing_twice_changes_nothing(client: Client) -> None:
    finish(client, Work(pipeline=P, id="w", event=[1], tags=["t"]))
    index_all(client)
    before = {k: client.redis.zrange(k, 0, -1, withscores=True) for k in index_keys(client)}
    entry_id = client.redis.xrange(keys(client, P).done)[-1][0].decode()
    reply = client._run(index_call(client.settings, P, [(entry_id, "w"), (entry_id, "w")]))
    assert list(reply) == [2, 0, 0]
    after = {k: client.redis.zrange(k, 0, -1, withscores=True) for k in index_keys(client)}
    assert after == before


def test_an_update_of_a_finished_work_moves_it_between_indexes(client: Client) -> None:
    w = finish(client, Work(pipeline=P, id="w", tags=["old"], user="ann"))
    index_all(client)
    assert set(ix(client, "tag", "old")) == {"w"}
    w = client.get("w", pipeline=P)
    w.tags, w.user = ["new"], None
    client.update(w)
    assert entries(client, P)[-1][b"edit"] == b"1"
    index_all(client)
    assert ix(client, "tag", "old") == {} and ix(client, "user", "ann") == {}
    assert set(ix(client, "tag", "new")) == {"w"}


def test_a_retried_work_leaves_the_index_and_returns_when_it_finishes(client: Client) -> None:
    finish(client, Work(pipeline=P, id="w", tags=["t"], retries=0), "failure")
    index_all(client)
    assert set(ix(client, "tag", "t")) == {"w"}
    client.retry("w", pipeline=P)
    assert ix(client, "tag", "t") == {}
    assert b"ix" not in record(client, "w", P)
    index_all(client)  # the old failure entry is only acknowledged
    assert ix(client, "tag", "t") == {}
    [w] = client.withdraw(P)
    client.complete(w, "success")
    index_all(client)
    assert set(ix(client, "tag", "t")) == {"w"}


def test_a_deleted_work_leaves_every_index(client: Client) -> None:
    finish(client, Work(pipeline=P, id="w", tags=["t"], event=[3]))
    index_all(client)
    assert index_keys(client)
    client.delete("w", pipeline=P)
    assert index_keys(client) == set()
    indexer = index_all(client)  # its entry is acknowledged, nothing indexed
    assert indexer.indexed == 0 and index_keys(client) == set()


def test_a_work_not_archived_is_dropped_and_counted(client: Client) -> None:
    finish(client, Work(pipeline=P, id="w", tags=["t"], archive=False))
    finish(client, Work(pipeline=P, id="k", tags=["t"]))
    index_all(client)
    assert not client.redis.exists(keys(client, P).work + "w")
    assert set(ix(client, "tag", "t")) == {"k"}
    assert client.redis.zscore(keys(client, P).success, "w") is None
    assert client.stats(P)["unarchived"] == 1


def test_cancelled_and_failed_works_are_results_too(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="c", tags=["t"])])
    client.cancel("c", pipeline=P)
    finish(client, Work(pipeline=P, id="f", tags=["t"], retries=0), "failure")
    index_all(client)
    assert set(ix(client, "tag", "t")) == {"c", "f"}


def test_an_entry_of_a_work_not_finished_is_only_acknowledged(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="q", tags=["t"])])
    client.redis.xadd(keys(client, P).done, {"id": "q", "status": "success", "attempt": "1"})
    client.redis.xadd(keys(client, P).done, {"junk": "no id"})
    index_all(client)
    assert index_keys(client) == set()
    assert client.redis.xpending(keys(client, P).done, GROUP)["pending"] == 0
