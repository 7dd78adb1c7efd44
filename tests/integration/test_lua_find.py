"""find.lua on a real Redis, against a pure-Python model: every query returns exactly the
matching results, newest first (stop time, then id, descending), and paging by cursor or
by a small scan budget loses and repeats nothing, ties included."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from workflow import Client, Results, ValidationError, Work, query
from workflow.query import Cursor, Query

from ..helpers import keys

PIPES = ("find-a", "find-b")
TAGS = ("t0", "t1", "t2", "t3")


@pytest.fixture
def corpus(client: Client) -> list[Work]:
    """300 finished works in two pipelines with random fields, indexed; many share a stop
    time (a burst finishing in one ms)."""
    rng = random.Random(7)
    works = []
    for i in range(300):
        works.append(Work(
            pipeline=rng.choice(PIPES), id=f"w{i:04d}", retries=0,
            event=rng.sample(range(6), rng.randint(0, 2)) or None,
            tags=rng.sample(TAGS, rng.randint(0, 3)) or None,
            user=rng.choice([None, "ann", "bob"]), site=rng.choice(["chime", "kko"]),
            group=rng.choice([None, ["g1"], ["g1", "g2"]]),
        ))  # fmt: skip
    client.deposit(works)
    for p in PIPES:
        while got := client.withdraw(p, count=50):
            for w in got:
                outcome = rng.choice(["success", "success", "failure"])
                client.complete(w, outcome, terminal=True)
    base = 1_700_000_000_000
    finished = []
    for w in works:  # stop times: 40 distinct ms, so most share theirs with others
        stop = base + rng.randrange(40) * 1000
        k = keys(client, w.pipeline)
        status = client.get(str(w.id), pipeline=w.pipeline).status
        client.redis.zadd(getattr(k, status), {str(w.id): stop})
        client.redis.hset(k.work + str(w.id), "stop", stop)
        finished.append(client.get(str(w.id), pipeline=w.pipeline))
    Results(client).index()
    return finished


def model(works: list[Work], q: Query) -> list[str]:
    def ok(w: Work) -> bool:
        stop_ms = round((w.stop or 0) * 1000)
        checks = [
            not q.pipelines or w.pipeline in q.pipelines,
            w.status in q.status,
            not q.event or bool(set(q.event) & set(w.event or ())),
            not q.tags or (set(q.tags) <= set(w.tags or ()) if q.tags_mode == "all"
                           else bool(set(q.tags) & set(w.tags or ()))),
            not q.user or w.user in q.user,
            not q.site or w.site in q.site,
            not q.group or bool(set(q.group) & set(w.group or ())),
            q.since_ms is None or stop_ms >= q.since_ms,
            q.until_ms is None or stop_ms <= q.until_ms,
        ]  # fmt: skip
        return all(checks)

    hits = [w for w in works if ok(w)]
    hits.sort(key=lambda w: (round((w.stop or 0) * 1000), str(w.id)), reverse=True)
    return [str(w.id) for w in hits]


QUERIES: list[dict[str, Any]] = [
    {},
    {"pipeline": "find-a"},
    {"status": "failure"},
    {"status": ["success", "failure"], "pipeline": ["find-a", "find-b"]},
    {"event": 3},
    {"event": [1, 4]},
    {"tags": ["t1"]},
    {"tags": ["t1", "t2"]},
    {"tags": ["t1", "t2"], "tags_mode": "any"},
    {"user": "ann", "site": "kko"},
    {"group": "g2", "status": "success"},
    {"tags": "t0", "event": [0, 1, 2], "user": ["ann", "bob"]},
    {"since": 1_700_000_010, "until": 1_700_000_020},
    {"since": 1_700_000_010, "until": 1_700_000_020, "status": "failure", "tags": "t3"},
    {"event": 99},
    {"tags": ["t0", "t1", "t2", "t3"]},
]


@pytest.mark.parametrize("filters", QUERIES, ids=[str(q) for q in QUERIES])
def test_find_and_count_match_the_model(
    client: Client, corpus: list[Work], filters: dict[str, Any]
) -> None:
    results = Results(client)
    want = model(corpus, Query.make(**filters))
    assert [w.id for w in results.find(limit=1000, **filters)] == want
    assert [w.id for w in results.iterate(**filters)] == want
    assert results.count(**filters) == len(want)


@pytest.mark.parametrize("filters", QUERIES[:9], ids=[str(q) for q in QUERIES[:9]])
@pytest.mark.parametrize("page", [1, 7, 50])
def test_pages_by_cursor_and_offset_cover_everything_once(
    client: Client, corpus: list[Work], filters: dict[str, Any], page: int
) -> None:
    results = Results(client)
    want = model(corpus, Query.make(**filters))
    got: list[str] = []
    cursor: Cursor | None = None
    while True:
        chunk = results.find(limit=page, cursor=cursor, **filters)
        got += [str(w.id) for w in chunk]
        if chunk.cursor is None:
            break
        cursor = Cursor.parse(str(chunk.cursor))  # survives a round trip through text
    assert got == want
    assert [w.id for w in results.find(limit=page, offset=page, **filters)] == want[page:2 * page]


def test_a_tiny_scan_budget_only_costs_more_calls(
    client: Client, corpus: list[Work], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query, "FIND_BUDGET", 3)
    calls = []
    run = client._run
    monkeypatch.setattr(client, "_run", lambda call: calls.append(call) or run(call))
    assert Results(client).count(tags="t1") == len(model(corpus, Query.make(tags="t1")))
    assert len(calls) == 2  # one tag: ZCOUNT, one call per pipeline whatever the budget
    two = {"tags": ["t1", "t2"]}
    assert Results(client).count(**two) == len(model(corpus, Query.make(**two)))
    assert len(calls) > 20  # about 1 call per 3 entries of the driving index
    for filters in QUERIES:
        want = model(corpus, Query.make(**filters))
        assert [w.id for w in Results(client).iterate(**filters)] == want, filters
        assert Results(client).count(**filters) == len(want), filters


def test_get_and_relative_times(client: Client, corpus: list[Work]) -> None:
    w = corpus[0]
    assert Results(client).get(str(w.id)).payload == w.payload
    assert Results(client).count(since=timedelta(days=1)) == 0  # the corpus stopped in 2023
    assert Results(client).count(until=timedelta(days=1)) == len(corpus)


def test_class_methods_use_the_default_client(client: Client, corpus: list[Work]) -> None:
    assert Results.count() == len(corpus)
    assert [w.id for w in Results.find(limit=3)] == model(corpus, Query.make())[:3]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"status": "running"}, "status"),
        ({"event": "3"}, "event"),
        ({"event": True}, "event"),
        ({"tags": [1]}, "tags"),
        ({"tags": ["a"], "tags_mode": "some"}, "tags_mode"),
        ({"user": ""}, "user"),
        ({"since": "yesterday"}, "since"),
        ({"pipeline": "no spaces allowed"}, "pipeline"),
        ({"limit": -1}, "limit"),
        ({"limit": 10**6}, "limit"),
        ({"cursor": "nonsense"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_queries_name_the_field(client: Client, filters: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Results(client).find(**filters)
    assert info.value.field == field
