"""`Client.complete_many`: several completions and a refill withdraw in one round trip,
each completion fenced as one `complete` is, scripts reloaded after Redis lost them."""

from __future__ import annotations

import pytest

from workflow import Client, Failure, Work
from workflow.core import Filters

from ..helpers import entries, record, where

P = "many-pipe"


def test_completions_and_a_refill_in_one_round_trip(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}", retries=0) for i in range(6)])
    a, b, c = client.withdraw(P, count=3)
    a.results = {"x": 1}
    statuses, leased = client.complete_many(
        [(a, "success", None, False), (b, "failure", Failure(message="no"), False),
         (c, "release", None, False)],
        refill=(P, 2, Filters(), 0),
    )  # fmt: skip
    assert statuses == ["success", "failure", "queued"]
    assert [w.id for w in leased] == ["w2", "w3"]  # c went back to its place: first
    assert all(getattr(w, "_token", "") for w in leased)
    assert where(client, "w0", P) == {"success"} and where(client, "w1", P) == {"failure"}
    assert where(client, "w2", P) == {"running"} and leased[0].attempt == 1
    assert client.get("w0", pipeline=P).results == {"x": 1}
    assert client.get("w1", pipeline=P).error.message == "no"  # type: ignore[union-attr]
    assert [e[b"id"] for e in entries(client, P)] == [b"w0", b"w1"]
    assert (a.status, b.status, a._token) == ("success", "failure", "")


def test_a_stale_or_deleted_completion_is_rejected_alone(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}", retries=1) for i in range(3)])
    stale, gone, ok = client.withdraw(P, count=3)
    client.redis.zadd(f"{client.settings.prefix}:{{{P}}}:running", {"w0": 0})  # expired
    client.withdraw(P, count=1)  # reclaims w0's lease (a retry: backoff 0) and leases it
    client.delete("w1", pipeline=P)
    statuses, leased = client.complete_many(
        [(stale, "success", None, False), (gone, "success", None, False),
         (ok, "success", None, False)]
    )  # fmt: skip
    assert statuses == ["rejected", "rejected", "success"] and leased == []
    assert record(client, "w0", P)[b"status"] == b"running"


def test_scripts_lost_by_redis_are_loaded_again(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}") for i in range(3)])
    [w] = client.withdraw(P)
    client.redis.script_flush()
    statuses, leased = client.complete_many([(w, "success", None, False)],
                                            refill=(P, 5, Filters(), 0))  # fmt: skip
    assert statuses == ["success"] and [x.id for x in leased] == ["w1", "w2"]


def test_a_completion_without_a_lease_is_refused_before_sending(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    with pytest.raises(Exception, match="not withdrawn"):
        client.complete_many([(Work(pipeline=P, id="w"), "success", None, False)])
    assert where(client, "w", P) == {"queued"}


# -- leased ahead ---------------------------------------------------------------------------


def test_works_leased_ahead_count_their_attempt_when_completed(client: Client) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}", retries=0) for i in range(4)])
    now, a1, a2, a3 = client.withdraw(P, count=4, ahead=3)
    assert (now.attempt, a1.attempt, a2.attempt) == (1, 0, 0)
    assert (now._ahead, a1._ahead) == (False, True)  # type: ignore[attr-defined]
    assert record(client, "w1", P)[b"ahead"] == b"1"
    statuses, _ = client.complete_many([
        (now, "success", None, False), (a1, "success", None, False),
        (a2, "failure", Failure(message="no"), False), (a3, "release", None, False),
    ])  # fmt: skip
    assert statuses == ["success", "success", "failure", "queued"]
    assert [client.get(f"w{i}", pipeline=P).attempt for i in range(4)] == [1, 1, 1, 0]
    assert all(b"ahead" not in record(client, f"w{i}", P) for i in range(4))
    assert where(client, "w3", P) == {"queued"}  # back in its place, never run


def test_an_expired_lease_ahead_goes_back_uncounted_three_times(client: Client) -> None:
    """A worker killed while holding works leased ahead: they go back to the queue in
    their place, attempt not counted, with no error; the fourth time it counts (a work
    that kills its worker whenever it starts must run out of tries)."""
    client.deposit([Work(pipeline=P, id="w", retries=0), Work(pipeline=P, id="x")])
    running = f"{client.settings.prefix}:{{{P}}}:running"
    for n in range(1, 4):
        [w] = client.withdraw(P, count=1, ahead=1)
        assert w.id == "w" and w.attempt == 0
        client.redis.zadd(running, {"w": 0})  # its lease ran out
        assert client.requeue_expired(P) == (1, 0)
        rec = record(client, "w", P)
        assert (rec[b"status"], rec[b"attempt"]) == (b"queued", b"0")
        assert rec[b"unstarted"] == str(n).encode()
        assert b"error" not in rec and where(client, "w", P) == {"queued"}
    assert client.stats(P)["unstarted"] == 3
    [w] = client.withdraw(P, count=1, ahead=1)
    client.redis.zadd(running, {"w": 0})
    client.requeue_expired(P)
    failed = client.get("w", pipeline=P)
    assert (failed.status, failed.attempt, failed.error.kind) == ("failure", 1, "lease")  # type: ignore[union-attr]


def test_a_late_completion_of_an_expired_lease_ahead_is_rejected(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P, count=1, ahead=1)
    client.redis.zadd(f"{client.settings.prefix}:{{{P}}}:running", {"w": 0})
    client.requeue_expired(P)
    statuses, _ = client.complete_many([(w, "success", None, False)])
    assert statuses == ["rejected"] and where(client, "w", P) == {"queued"}
