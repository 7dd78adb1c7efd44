"""cancel.lua on a real Redis: queued, delayed and running works stop; finished ones cannot."""

from __future__ import annotations

import pytest

from workflow import Client, InvalidTransition, LeaseLost, Work, WorkNotFound

from ..helpers import entries, keys, now_ms, record, where

P = "cancel-pipe"


def assert_cancelled(client: Client, work_id: str, attempt: int = 0) -> None:
    rec = record(client, work_id, P)
    assert rec[b"status"] == b"cancelled"
    assert where(client, work_id, P) == {"cancelled"}
    assert client.redis.zscore(keys(client, P).cancelled, work_id) == int(rec[b"stop"])
    stored = client.get(work_id, pipeline=P)
    assert stored.error is not None and stored.error.kind == "cancelled"
    entry = {b"id": work_id.encode(), b"status": b"cancelled", b"attempt": b"%d" % attempt}
    assert entry in entries(client, P)


def test_queued_work_is_cancelled_and_never_withdrawn(client: Client) -> None:
    w = Work(pipeline=P, id="w")
    client.deposit([w, Work(pipeline=P, id="other")])
    before = now_ms(client)
    assert client.cancel(w, reason="not needed") == "queued"
    assert int(record(client, "w", P)[b"stop"]) >= before
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
    rec = record(client, "w", P)
    assert rec[b"status"] == b"cancelled"
    assert b"results" not in rec
    assert rec[b"rejected"] == b"1"
    assert where(client, "w", P) == {"cancelled"}
    stats = client.stats(P)
    assert (stats["cancelled"], stats["rejected"]) == (1, 1)
    assert "success" not in stats
    assert len(entries(client, P)) == 1


@pytest.mark.parametrize("outcome", ["success", "failure", "cancelled"])
def test_finished_work_cannot_be_cancelled(client: Client, outcome: str) -> None:
    client.deposit([Work(pipeline=P, id="w", retries=0)])
    if outcome == "cancelled":
        client.cancel("w", pipeline=P)
    else:
        [w] = client.withdraw(P)
        client.complete(w, outcome)  # type: ignore[arg-type]
    rec = record(client, "w", P)
    stream = entries(client, P)

    with pytest.raises(InvalidTransition) as info:
        client.cancel("w", pipeline=P)
    assert info.value.status == outcome
    assert record(client, "w", P) == rec
    assert entries(client, P) == stream
    assert client.stats(P).get("cancelled", 0) == (1 if outcome == "cancelled" else 0)


def test_unknown_work_is_not_found(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    with pytest.raises(WorkNotFound):
        client.cancel("nope", pipeline=P)
    with pytest.raises(WorkNotFound):
        client.cancel("nope")  # searched in every pipeline
    assert "cancelled" not in client.stats(P)
    assert entries(client, P) == []


def test_work_cancel_method(client: Client) -> None:
    w = Work(pipeline=P)
    w.deposit()
    w.cancel()
    assert w.status == "cancelled"
    assert_cancelled(client, w.id)  # type: ignore[arg-type]
