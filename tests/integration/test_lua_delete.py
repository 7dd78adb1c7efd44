"""delete.lua on a real Redis: a work in any state disappears from every set and its hash."""

from __future__ import annotations

import pytest

from workflow import Client, Work, WorkNotFound
from workflow.keys import work_key

from ..helpers import keys, where

P = "delete-pipe"


def put_in(client: Client, state: str) -> Work:
    """A work with id "w" in `state` (plus a bystander "b" queued behind it). The client's
    backoff is 60 s, so a retried work stays in delayed."""
    client.deposit([Work(pipeline=P, id="w", retries=1)], delay_s=60 if state == "delayed" else 0)
    client.deposit([Work(pipeline=P, id="b")])
    w = Work(pipeline=P, id="w")
    if state in ("running", "success", "failure", "retrying"):
        [w] = client.withdraw(P)
        if state == "success":
            client.complete(w, "success")
        elif state == "failure":
            client.complete(w, "failure", terminal=True)
        elif state == "retrying":
            client.complete(w, "failure")
    elif state == "cancelled":
        client.cancel("w", pipeline=P)
    return w


@pytest.mark.parametrize(
    ("state", "home"),
    [
        ("queued", "queued"),
        ("delayed", "delayed"),
        ("running", "running"),
        ("retrying", "delayed"),
        ("success", "success"),
        ("failure", "failure"),
        ("cancelled", "cancelled"),
    ],
)
def test_delete_removes_the_work_from_everywhere(
    client: Client, make_client, state: str, home: str
) -> None:
    put_in(make_client(backoff_base_ms=60_000, backoff_max_ms=60_000), state)
    assert where(client, "w", P) == {home}
    wkey = work_key(client.settings.prefix, P, "w")
    assert client.redis.exists(wkey)

    assert client.delete("w", pipeline=P) is True
    assert where(client, "w", P) == set()
    assert not client.redis.exists(wkey)
    assert client.stats(P)["deleted"] == 1
    with pytest.raises(WorkNotFound):
        client.get("w", pipeline=P)
    # The bystander is untouched.
    assert where(client, "b", P) == {"queued"}
    assert client.requeue_expired(P) == (0, 0)


def test_delete_by_id_or_work_object(client: Client) -> None:
    a, b = Work(pipeline=P), Work(pipeline=P)
    client.deposit([a, b])
    assert client.delete(a.id) is True  # type: ignore[arg-type]  # pipeline found by search
    assert b.delete() is True  # the Work method, default client
    assert client.redis.zcard(keys(client, P).queued) == 0
    assert client.stats(P)["deleted"] == 2


def test_deleting_an_unknown_work_is_false(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    assert client.delete("nope", pipeline=P) is False
    assert client.delete("nope") is False
    assert client.delete("w", pipeline=P) is True
    assert client.delete("w", pipeline=P) is False
    assert client.stats(P)["deleted"] == 1


def test_a_deleted_running_works_worker_learns_it(client: Client) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    [w] = client.withdraw(P)
    assert client.delete("w", pipeline=P) is True

    assert client.renew([w]) == ["missing"]
    with pytest.raises(WorkNotFound):
        client.complete(w, "success")
    with pytest.raises(WorkNotFound):
        client.complete(w, "failure")
    assert where(client, "w", P) == set()
    assert not client.redis.exists(work_key(client.settings.prefix, P, "w"))
    assert client.redis.xlen(keys(client, P).done) == 0
