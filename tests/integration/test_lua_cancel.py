"""cancel.lua on a real Redis: queued, delayed and running works stop; finished ones cannot."""

from __future__ import annotations

import pytest

from workflow import Client, InvalidTransition, LeaseLost, Work, WorkNotFound
from workflow.keys import PipelineKeys, pipeline_keys, work_key

P = "cancel-pipe"


def keys(client: Client, pipeline: str = P) -> PipelineKeys:
    return pipeline_keys(client.settings.prefix, pipeline)


def record(client: Client, work_id: str, pipeline: str = P) -> dict[bytes, bytes]:
    return client.redis.hgetall(work_key(client.settings.prefix, pipeline, work_id))


def now_ms(client: Client) -> int:
    sec, usec = client.redis.time()
    return sec * 1000 + usec // 1000


def where(client: Client, work_id: str, pipeline: str = P) -> set[str]:
    """The names of the sorted sets holding `work_id`."""
    k = keys(client, pipeline)
    names = ("queued", "running", "delayed", "success", "failure", "cancelled")
    return {n for n in names if client.redis.zscore(getattr(k, n), work_id) is not None}


def entries(client: Client, pipeline: str = P) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.redis.xrange(keys(client, pipeline).done)]


def assert_cancelled(client: Client, work_id: str, attempt: int = 0) -> None:
    rec = record(client, work_id)
    assert rec[b"status"] == b"cancelled"
    assert where(client, work_id) == {"cancelled"}
    assert client.redis.zscore(keys(client).cancelled, work_id) == int(rec[b"stop"])
    stored = client.get(work_id, pipeline=P)
    assert stored.error is not None and stored.error.kind == "cancelled"
    entry = {b"id": work_id.encode(), b"status": b"cancelled", b"attempt": b"%d" % attempt}
    assert entry in entries(client)


def test_queued_work_is_cancelled_and_never_withdrawn(client: Client) -> None:
    w = Work(pipeline=P, id="w")
    client.deposit([w, Work(pipeline=P, id="other")])
    before = now_ms(client)
    assert client.cancel(w, reason="not needed") == "queued"
    assert int(record(client, "w")[b"stop"]) >= before
    assert w.status == "cancelled"
    assert w.error is not None and w.error.message == "not needed"
    assert_cancelled(client, "w")
    assert client.get("w", pipeline=P).error.message == "not needed"

    assert [x.id for x in client.withdraw(P, count=10)] == ["other"]
    assert client.withdraw(P) == []
    stats = client.stats(P)
    assert (stats["cancelled"], stats["withdrawn"]) == (1, 1)


def test_delayed_work_is_cancelled_and_never_promoted(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")], delay_s=0.05)
    assert client.cancel("w", pipeline=P) == "queued"
    assert_cancelled(client, "w")
    assert client.requeue_expired(P) == (0, 0)
    assert client.withdraw(P) == []


def test_cancel_by_id_finds_the_pipeline(client: Client) -> None:
    Work(pipeline=P, id="w").deposit()
    assert client.cancel("w") == "queued"
    assert_cancelled(client, "w")


def test_running_work_is_cancelled_and_its_worker_is_fenced_off(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    assert client.cancel("w", pipeline=P) == "running"
    assert_cancelled(client, "w", attempt=1)

    assert client.renew([w]) == ["cancelled"]
    w.results = {"too": "late"}
    with pytest.raises(LeaseLost):
        client.complete(w, "success")
    rec = record(client, "w")
    assert rec[b"status"] == b"cancelled"
    assert b"results" not in rec
    assert rec[b"rejected"] == b"1"
    assert where(client, "w") == {"cancelled"}
    stats = client.stats(P)
    assert (stats["cancelled"], stats["rejected"]) == (1, 1)
    assert "success" not in stats
    assert len(entries(client)) == 1


@pytest.mark.parametrize("outcome", ["success", "failure", "cancelled"])
def test_finished_work_cannot_be_cancelled(client: Client, outcome: str) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=0)])
    if outcome == "cancelled":
        client.cancel("w", pipeline=P)
    else:
        [w] = client.withdraw(P)
        client.complete(w, outcome)  # type: ignore[arg-type]
    rec = record(client, "w")
    stream = entries(client)

    with pytest.raises(InvalidTransition) as info:
        client.cancel("w", pipeline=P)
    assert info.value.status == outcome
    assert record(client, "w") == rec
    assert entries(client) == stream
    assert client.stats(P).get("cancelled", 0) == (1 if outcome == "cancelled" else 0)


def test_unknown_work_is_not_found(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    with pytest.raises(WorkNotFound):
        client.cancel("nope", pipeline=P)
    with pytest.raises(WorkNotFound):
        client.cancel("nope")  # searched in every pipeline
    assert "cancelled" not in client.stats(P)
    assert entries(client) == []


def test_work_cancel_method(client: Client) -> None:
    w = Work(pipeline=P)
    w.deposit()
    w.cancel()
    assert w.status == "cancelled"
    assert_cancelled(client, w.id)  # type: ignore[arg-type]
