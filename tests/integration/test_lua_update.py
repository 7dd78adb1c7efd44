"""update.lua on a real Redis: progress saves under the lease, in-place edits, priority
moves, no status change without the lease, and the reference `work.update()` flow."""

from __future__ import annotations

import json
import time

import pytest

from workflow import Client, InvalidTransition, LeaseLost, Work

from ..helpers import entries, keys, record

P = "update-pipe"
CLASS = 2**42


def queue_order(client: Client) -> list[str]:
    return [m.decode() for m in client.redis.zrange(keys(client, P).queued, 0, -1)]


# -- running works: progress under the lease -----------------------------------------------


def test_running_work_with_its_token_saves_progress_only(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    before = record(client, "w", P)
    score = client.redis.zscore(keys(client, P).running, "w")

    w.results = {"progress": 0.5}
    w.products = ["partial.h5"]
    w.update()
    after = record(client, "w", P)
    assert json.loads(after.pop(b"results")) == {"progress": 0.5}
    assert json.loads(after.pop(b"products")) == ["partial.h5"]
    assert after == before  # status, attempt, token, start, deadline: unchanged
    assert client.redis.zscore(keys(client, P).running, "w") == score
    assert entries(client, P) == []
    assert client.stats(P) == {"deposited": 1, "withdrawn": 1}
    assert client.renew([w]) == ["ok"]  # still holding the lease


def test_running_work_without_the_token_is_lease_lost(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    before = record(client, "w", P)

    other = client.get("w", pipeline=P)  # read, not withdrawn: no token
    other.results = {"not": "mine"}
    with pytest.raises(LeaseLost):
        other.update()
    other._token = w._token + "0"
    with pytest.raises(LeaseLost):
        other.update()
    after = record(client, "w", P)
    assert after.pop(b"rejected") == b"2"
    assert after == before


# -- works not running: edits in place -----------------------------------------------------


def test_queued_work_is_edited_in_place(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", parameters={"a": 1})])
    score = client.redis.zscore(keys(client, P).queued, "w")
    w = client.get("w", pipeline=P)
    w.parameters = {"a": 2}
    w.tags = ["new"]
    w.update()
    stored = client.get("w", pipeline=P)
    assert (stored.status, stored.parameters, stored.tags) == ("queued", {"a": 2}, ["new"])
    assert client.redis.zscore(keys(client, P).queued, "w") == score
    [got] = client.withdraw(P, tags=["new"])  # the filter copy follows the edit
    assert got.id == "w"


def test_priority_change_moves_a_queued_work_keeping_its_fifo_place(client: Client) -> None:
    for name in ("b1", "b2"):
        client.deposit([Work(pipeline=P, id=name, priority=3)])
    for name in ("a1", "a2"):
        client.deposit([Work(pipeline=P, id=name, priority=5)])
    assert queue_order(client) == ["a1", "a2", "b1", "b2"]

    b2 = client.get("b2", pipeline=P)
    b2.priority = 5
    b2.update()
    # Same sequence number (2), new class: ahead of the priority-5 works deposited later.
    assert client.redis.zscore(keys(client, P).queued, "b2") == (5 - 5) * CLASS + 2
    assert record(client, "b2", P)[b"priority"] == b"5"
    a2 = client.get("a2", pipeline=P)
    a2.priority = 1
    a2.update()
    assert client.redis.zscore(keys(client, P).queued, "a2") == (5 - 1) * CLASS + 4
    assert queue_order(client) == ["b2", "a1", "b1", "a2"]
    assert [w.id for w in client.withdraw(P, count=4)] == ["b2", "a1", "b1", "a2"]


def test_priority_change_of_a_delayed_work_applies_when_promoted(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="q", priority=5)])
    client.deposit([Work(pipeline=P, id="d", priority=1)], delay_s=0.1)
    d = client.get("d", pipeline=P)
    d.priority = 5
    d.update()
    assert client.redis.zscore(keys(client, P).queued, "d") is None  # still delayed
    time.sleep(0.15)
    assert client.requeue_expired(P) == (0, 1)
    assert queue_order(client) == ["q", "d"]
    assert client.redis.zscore(keys(client, P).queued, "d") < CLASS


@pytest.mark.parametrize("new_status", ["success", "failure", "cancelled", "running"])
def test_status_change_without_the_lease_is_invalid_and_writes_nothing(
    client: Client, new_status: str
) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    before = record(client, "w", P)
    w = client.get("w", pipeline=P)
    w.status = new_status
    w.results = 99
    with pytest.raises(InvalidTransition) as info:
        w.update()
    assert info.value.status == "queued"
    assert record(client, "w", P) == before
    assert entries(client, P) == []


def test_status_change_of_a_finished_work_is_invalid(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    client.complete(w, "success")
    before = record(client, "w", P)
    stored = client.get("w", pipeline=P)
    stored.status = "queued"
    with pytest.raises(InvalidTransition):
        stored.update()
    assert record(client, "w", P) == before


def test_holding_the_lease_does_not_allow_other_status_changes(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    before = record(client, "w", P)
    w.status = "queued"
    with pytest.raises(InvalidTransition):
        w.update()
    assert record(client, "w", P) == before


def test_finished_work_results_are_edited_in_place(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    client.complete(w, "success")
    stored = client.get("w", pipeline=P)
    stored.results = {"corrected": True}
    stored.update()
    assert client.get("w", pipeline=P).results == {"corrected": True}
    assert record(client, "w", P)[b"status"] == b"success"


# -- the reference flow --------------------------------------------------------------------


def test_reference_flow_update_with_success_finishes_the_work(client: Client) -> None:
    Work(pipeline=P, parameters={"a": 1, "b": 2}).deposit()
    w = Work.withdraw(pipeline=P)
    assert w is not None
    w.results = 3  # an int, as in the reference's example
    w.status = "success"
    w.update()

    rec = record(client, w.id, P)  # type: ignore[arg-type]
    assert rec[b"status"] == b"success"
    assert rec[b"results"] == b"3"
    assert client.redis.zscore(keys(client, P).success, w.id) == int(rec[b"stop"])
    assert client.redis.zscore(keys(client, P).running, w.id) is None
    assert entries(client, P) == [{b"id": w.id.encode(), b"status": b"success", b"attempt": b"1"}]  # type: ignore[union-attr]
    stored = Work.get(w.id)  # type: ignore[arg-type]
    assert (stored.status, stored.results, stored.attempt) == ("success", 3, 1)


@pytest.mark.parametrize(("retries", "status"), [(1, "queued"), (0, "failure")])
def test_reference_flow_update_with_failure_retries_or_fails(
    client: Client, retries: int, status: str
) -> None:
    Work(pipeline=P, id="w", retries=retries).deposit()
    w = Work.withdraw(pipeline=P)
    assert w is not None
    w.status = "failure"
    w.update()
    assert w.status == status
    assert record(client, "w", P)[b"status"] == status.encode()
    assert client.get("w", pipeline=P).error is not None


def test_updating_results_again_after_finishing_is_stored(client: Client) -> None:
    Work(pipeline=P, id="w").deposit()
    w = Work.withdraw(pipeline=P)
    assert w is not None
    w.results = 3
    w.status = "success"
    w.update()
    w.results = 4
    w.update()
    assert client.get("w", pipeline=P).results == 4


def test_clearing_a_field_is_stored(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w", user="alice", results={"old": 1})])
    w = client.get("w", pipeline=P)
    w.user = None
    w.results = None
    w.update()
    stored = client.get("w", pipeline=P)
    assert (stored.user, stored.results) == (None, None)
    assert client.withdraw(P, user="alice") == []


def test_progress_save_after_the_lease_was_reclaimed_is_lease_lost(
    client: Client, make_client
) -> None:
    worker = make_client(lease_ms=100, backoff_base_ms=60_000, backoff_max_ms=60_000)
    client.deposit([Work(pipeline=P, id="w", retries=1)])
    [w] = worker.withdraw(P)
    time.sleep(0.15)
    assert worker.requeue_expired(P) == (1, 0)
    w.results = {"progress": 1}
    with pytest.raises(LeaseLost):
        worker.update(w)
