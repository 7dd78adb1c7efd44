"""Bad input never damages the queue: invalid calls change nothing, and corrupt records
planted in Redis are reported (`CorruptWork`) or failed out of the way by withdraw, so the
pipeline keeps flowing."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import msgspec
import pytest

from workflow import (
    Client,
    CorruptWork,
    LeaseLost,
    ValidationError,
    Work,
    WorkflowError,
    WorkNotFound,
)
from workflow.keys import namespace_pattern, work_key

from ..helpers import keys, where_ordered

P = "bad-input"


def wkey(client: Client, work_id: str, pipeline: str = P) -> str:
    return work_key(client.settings.prefix, pipeline, work_id)


def snapshot(client: Client) -> dict[bytes, Any]:
    """Every key of the deployment with its full content."""
    r = client.redis
    out: dict[bytes, Any] = {}
    for key in sorted(r.scan_iter(match=namespace_pattern(client.settings.prefix))):
        kind = r.type(key)
        if kind == b"zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            out[key] = r.hgetall(key)
        elif kind == b"list":
            out[key] = r.lrange(key, 0, -1)
        elif kind == b"set":
            out[key] = r.smembers(key)
        elif kind == b"stream":
            out[key] = [fields for _, fields in r.xrange(key)]
        else:
            out[key] = r.get(key)
    return out


def status_of(client: Client, work_id: str, pipeline: str = P) -> str | None:
    raw = client.redis.hget(wkey(client, work_id, pipeline), "status")
    return raw.decode() if raw else None


def error_of(client: Client, work_id: str, pipeline: str = P) -> dict[str, Any]:
    raw = client.redis.hget(wkey(client, work_id, pipeline), "error")
    assert raw, "no error recorded"
    return msgspec.json.decode(raw)


@pytest.fixture
def queue(client: Client) -> list[Work]:
    """A pipeline with three queued works, so every test can check they stay intact."""
    works = [Work(pipeline=P, id=f"ok{i}", parameters={"i": i}) for i in range(3)]
    assert client.deposit(works) == [True, True, True]
    return works


# -- invalid deposits deposit nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "spoil"),
    [
        ("priority", lambda w: setattr(w, "priority", 9)),
        ("priority", lambda w: setattr(w, "priority", True)),
        ("timeout", lambda w: setattr(w, "timeout", 0)),
        ("retries", lambda w: setattr(w, "retries", 11)),
        ("pipeline", lambda w: setattr(w, "pipeline", "bad:name")),
        ("pipeline", lambda w: setattr(w, "pipeline", "{tag}")),
        ("tags", lambda w: setattr(w, "tags", "x")),
        ("status", lambda w: setattr(w, "status", "zombie")),
        ("id", lambda w: setattr(w, "id", "a b")),
        ("command", lambda w: setattr(w, "command", [])),
    ],
)
def test_a_batch_with_one_invalid_work_deposits_none(
    client: Client, queue: list[Work], field: str, spoil: Any
) -> None:
    before = snapshot(client)
    batch = [Work(pipeline=P, id=f"new{i}") for i in range(4)]
    spoil(batch[2])
    with pytest.raises(ValidationError) as info:
        client.deposit(batch)
    assert info.value.field == field
    assert snapshot(client) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("parameters", {"x": object()}), ("parameters", {"x": math.nan}), ("results", [math.inf])],
    ids=repr,
)
def test_unencodable_data_in_a_batch_deposits_none(
    client: Client, queue: list[Work], field: str, value: Any
) -> None:
    before = snapshot(client)
    batch = [Work(pipeline=P, id=f"new{i}") for i in range(3)]
    setattr(batch[-1], field, value)
    with pytest.raises(ValidationError) as info:
        client.deposit(batch)
    assert info.value.field == field
    assert snapshot(client) == before


@pytest.mark.parametrize("layout", ["two pipelines", "two chunks"])
def test_unencodable_work_late_in_a_batch_deposits_none(
    client: Client, queue: list[Work], layout: str
) -> None:
    before = snapshot(client)
    if layout == "two pipelines":
        batch = [Work(pipeline="other", id="o1"), Work(pipeline=P, id="new1")]
    else:
        batch = [Work(pipeline=P, id=f"new{i}") for i in range(501)]
    batch[-1].parameters = {"x": object()}
    with pytest.raises(ValidationError) as info:
        client.deposit(batch)
    assert info.value.field == "parameters"
    assert client.counts("other")["queued"] == 0
    assert snapshot(client) == before


@pytest.mark.parametrize(
    "bad",
    [["not a work"], [{"pipeline": P}], [None]],
    ids=repr,
)
def test_depositing_something_else_than_works(client: Client, queue: list[Work], bad: Any) -> None:
    before = snapshot(client)
    with pytest.raises(ValidationError) as info:
        client.deposit([Work(pipeline=P, id="new1"), *bad])
    assert info.value.field == "work"
    assert snapshot(client) == before


@pytest.mark.parametrize(
    "delay_s",
    [
        -1,
        True,
        "1",
        math.nan,
        math.inf,
    ],
    ids=repr,
)
def test_bad_delay_deposits_nothing(client: Client, queue: list[Work], delay_s: Any) -> None:
    before = snapshot(client)
    with pytest.raises(ValidationError) as info:
        client.deposit([Work(pipeline=P, id="new1")], delay_s=delay_s)
    assert info.value.field == "delay_s"
    assert snapshot(client) == before


# -- invalid withdraws take nothing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("priority", {"priority": 9}),
        ("priority", {"priority": 0}),
        ("priority", {"priority": "5"}),
        ("priority", {"priority": True}),
        ("tags", {"tags": "x"}),
        ("tags", {"tags": ["a", 1]}),
        ("event", {"event": "abc"}),
        ("event", {"event": ["1"]}),
        ("event", {"event": 1.5}),
        ("site", {"site": 3}),
        ("user", {"user": ["u"]}),
        ("parent", {"parent": 7}),
        ("tags_mode", {"tags": ["a"], "tags_mode": "most"}),
        ("count", {"count": 0}),
        ("count", {"count": -1}),
        ("count", {"count": True}),
    ],
    ids=repr,
)
def test_withdraw_with_bad_filters(
    client: Client, queue: list[Work], field: str, kwargs: dict[str, Any]
) -> None:
    before = snapshot(client)
    with pytest.raises(ValidationError) as info:
        client.withdraw(P, **kwargs)
    assert info.value.field == field
    assert info.value.rule
    assert snapshot(client) == before
    assert [w.id for w in client.withdraw(P, count=3)] == ["ok0", "ok1", "ok2"]


@pytest.mark.parametrize("pipelines", ["", "a b", "a:b", "{p}", "x" * 129, [], [P, "bad:p"]])
def test_withdraw_from_a_bad_pipeline_name(
    client: Client, queue: list[Work], pipelines: Any
) -> None:
    before = snapshot(client)
    with pytest.raises(ValidationError) as info:
        client.withdraw(pipelines)
    assert info.value.field == "pipeline"
    assert snapshot(client) == before


def test_withdraw_filters_through_the_work_api(client: Client, queue: list[Work]) -> None:
    before = snapshot(client)
    with pytest.raises(ValidationError):
        Work.withdraw(P, priority=9)
    with pytest.raises(ValidationError):
        Work.withdraw(P, tags="x")  # type: ignore[arg-type]
    assert snapshot(client) == before


# -- other calls with bad input --------------------------------------------------------------


def test_bad_ids_and_pipelines_on_reads_and_edits(client: Client, queue: list[Work]) -> None:
    before = snapshot(client)
    for bad_id in ("", None, 3):
        with pytest.raises(ValidationError):
            client.get(bad_id, pipeline=P)  # type: ignore[arg-type]
    for call in (client.get, client.cancel, client.delete):
        with pytest.raises(ValidationError):
            call("ok0", pipeline="bad:p")  # type: ignore[operator]
    with pytest.raises(WorkNotFound):
        client.get("nope", pipeline=P)
    with pytest.raises(WorkNotFound):
        client.cancel("nope", pipeline=P)
    assert client.delete("nope", pipeline=P) is False
    assert snapshot(client) == before


def test_a_completion_that_cannot_be_encoded_keeps_the_lease(
    client: Client, queue: list[Work]
) -> None:
    [work] = client.withdraw(P)
    before = snapshot(client)
    work.results = {"x": math.nan}
    with pytest.raises(ValidationError) as info:
        client.complete(work, "success")
    assert info.value.field == "results"
    work.priority = 7
    with pytest.raises(ValidationError):
        client.complete(work, "success")
    assert snapshot(client) == before
    work.results, work.priority = {"x": 1.0}, 3
    assert client.complete(work, "success") == "success"
    assert client.get(work.id, pipeline=P).results == {"x": 1.0}  # type: ignore[arg-type]


def test_an_invalid_update_changes_nothing(client: Client, queue: list[Work]) -> None:
    work = client.get("ok1", pipeline=P)
    before = snapshot(client)
    work.priority = 0
    with pytest.raises(ValidationError):
        client.update(work)
    work.priority, work.tags = 3, "x"  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        client.update(work)
    assert snapshot(client) == before


# -- corrupt records planted in Redis --------------------------------------------------------

CORRUPTIONS: list[tuple[str, dict[str, Any], list[str]]] = [
    # name, fields to set (None: delete the field), words expected in the reason
    ("body not JSON", {"body": b"not json {"}, ["JSON"]),
    ("body a list", {"body": b"[1, 2]"}, ["object"]),
    ("body of wrong types", {"body": b'{"pipeline": "bad-input", "id": "bad", "priority": "x"}'},
     ["priority"]),
    ("body breaks a rule", {"body": b'{"pipeline": "bad-input", "id": "bad", "timeout": 0}'},
     ["timeout"]),
    ("body of another id", {"body": b'{"pipeline": "bad-input", "id": "other"}'}, ["id"]),
    ("body missing", {"body": None}, ["body"]),
    ("body not UTF-8", {"body": b"\xff\xfe"}, []),
    ("results not JSON", {"results": b"{"}, []),
    ("error of wrong type", {"error": b'"boom"'}, []),
    ("status unknown", {"status": b"zombie"}, ["status"]),
    ("start not a number", {"start": b"soon"}, []),
]  # fmt: skip


def plant(client: Client, work_id: str, changes: dict[str, Any]) -> None:
    key = wkey(client, work_id)
    for field, value in changes.items():
        if value is None:
            client.redis.hdel(key, field)
        else:
            client.redis.hset(key, field, value)


@pytest.mark.parametrize(("changes", "words"), [c[1:] for c in CORRUPTIONS],
                         ids=[c[0] for c in CORRUPTIONS])  # fmt: skip
def test_get_reports_a_corrupt_record(
    client: Client, queue: list[Work], changes: dict[str, Any], words: list[str]
) -> None:
    client.deposit([Work(pipeline=P, id="bad")])
    plant(client, "bad", changes)
    before = snapshot(client)
    for pipeline in (P, None):
        with pytest.raises(CorruptWork) as info:
            client.get("bad", pipeline=pipeline)
        assert info.value.work_id == "bad"
        for word in words:
            assert word in info.value.reason
    assert snapshot(client) == before, "reading a corrupt record changes nothing"
    assert client.get("ok0", pipeline=P).id == "ok0"


@pytest.mark.parametrize(("changes", "words"), [c[1:] for c in CORRUPTIONS[:7]],
                         ids=[c[0] for c in CORRUPTIONS[:7]])  # fmt: skip
def test_withdraw_fails_a_corrupt_record_and_goes_on(
    client: Client, queue: list[Work], changes: dict[str, Any], words: list[str]
) -> None:
    client.deposit([Work(pipeline=P, id="bad", priority=5)])  # withdrawn first
    plant(client, "bad", changes)
    got = client.withdraw(P, count=2)
    assert got, "the good work behind it is withdrawn"
    assert [w.id for w in got] == ["ok0", "ok1"][: len(got)]  # all of them: see below
    assert status_of(client, "bad") == "failure"
    assert where_ordered(client, "bad", P) == ["failure"]
    error = error_of(client, "bad")
    assert error["kind"] == "corrupt"
    for word in words:
        assert word in error["message"]
    assert client.stats(P)["failure"] == 1
    # the rest of the pipeline flows on
    for work in got:
        assert client.complete(work, "success") == "success"
    rest = client.withdraw(P, count=5)
    assert [w.id for w in got + rest] == ["ok0", "ok1", "ok2"]


def test_withdraw_returns_the_next_good_work_after_a_corrupt_one(
    client: Client, queue: list[Work]
) -> None:
    client.deposit([Work(pipeline=P, id="bad", priority=5)])
    plant(client, "bad", {"body": b"not json"})
    assert [w.id for w in client.withdraw(P)] == ["ok0"]
    assert status_of(client, "bad") == "failure"
    plant(client, "ok1", {"body": None})
    assert [w.id for w in client.withdraw(P, count=2)] == ["ok2"]  # all that is left


def test_a_withdraw_that_meets_a_corrupt_record_loses_no_work(
    client: Client, queue: list[Work]
) -> None:
    """Whatever withdraw does with a corrupt record (today: it raises, see above), every
    work is still in exactly one set afterwards."""
    client.deposit([Work(pipeline=P, id="bad", priority=5)])
    plant(client, "bad", {"body": b"not json"})
    with contextlib.suppress(WorkflowError, TypeError):
        client.withdraw(P, count=2)
    for work_id in ("bad", "ok0", "ok1", "ok2"):
        assert len(where_ordered(client, work_id, P)) == 1, work_id
    assert where_ordered(client, "ok2", P) == ["queued"]


def test_a_garbage_priority_field_does_not_crash_the_scripts(
    client: Client, queue: list[Work]
) -> None:
    """Garbage in the record's routing copy of `priority`: the scripts fall back to class 3
    instead of raising; the client sees the copy disagree with the body and fails the work
    as corrupt (recorded), while the rest keeps flowing."""
    client.deposit([Work(pipeline=P, id="odd", priority=5, retries=3)])
    [work] = client.withdraw(P)  # queued at priority 5 by deposit
    assert work.id == "odd"
    assert client.complete(work, "failure") == "queued"  # waits in delayed
    plant(client, "odd", {"priority": b"abc"})
    assert client.requeue_expired(P) == (0, 1)  # promotion reads the garbage copy
    order = [m.decode() for m in client.redis.zrange(keys(client, P).queued, 0, -1)]
    assert order == ["ok0", "ok1", "ok2", "odd"]  # class 3: the fallback, behind the others
    got = client.withdraw(P, count=4)
    assert [w.id for w in got] == ["ok0", "ok1", "ok2"]
    assert where_ordered(client, "odd", P) == ["failure"]
    error = msgspec.json.decode(
        client.redis.hget(work_key(client.settings.prefix, P, "odd"), "error")
    )
    assert error["kind"] == "corrupt" and "priority" in error["message"]
    assert client.delete("odd", pipeline=P) is True


def test_get_reports_a_garbage_priority_field(client: Client, queue: list[Work]) -> None:
    client.deposit([Work(pipeline=P, id="odd", priority=5)])
    plant(client, "odd", {"priority": b"abc"})
    with pytest.raises(CorruptWork):
        client.get("odd", pipeline=P)


def test_a_garbage_attempt_field_does_not_crash_withdraw(client: Client, queue: list[Work]) -> None:
    client.deposit([Work(pipeline=P, id="odd", priority=5)])
    plant(client, "odd", {"attempt": b"zz"})
    try:
        client.withdraw(P, count=2)
    finally:
        for work_id in ("odd", "ok0", "ok1", "ok2"):
            assert len(where_ordered(client, work_id, P)) == 1, f"{work_id} lost or duplicated"


def test_delete_removes_a_record_missing_its_status(client: Client, queue: list[Work]) -> None:
    client.deposit([Work(pipeline=P, id="bad")])
    plant(client, "bad", {"status": None})
    assert client.delete("bad", pipeline=P) is True
    assert not client.redis.exists(wkey(client, "bad"))
    assert where_ordered(client, "bad", P) == []


def test_renew_and_complete_of_a_foreign_object_change_nothing(
    client: Client, queue: list[Work]
) -> None:
    """A Work built by hand (never withdrawn) holds no lease."""
    [held] = client.withdraw(P)
    before = snapshot(client)
    fake = Work(pipeline=P, id=held.id)
    with pytest.raises(LeaseLost):
        client.complete(fake, "success")
    assert client.renew([fake]) == ["lost"]
    assert snapshot(client) == before
