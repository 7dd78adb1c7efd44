"""The results index at scale (issue 4): 100,000 works finished through the real scripts
across 4 pipelines, indexed, then searched. Every query is checked against a pure-Python
model of what was finished: the exact set, in exactly newest-first order (stop time desc,
then id desc), and `count()` equal to the model.

The data set is built once for the module (about 10 s on a loaded 2-core machine): works
are deposited in big batches, then withdrawn 500 at a time and finished with pipelined
`complete` (success, terminal failure) and `cancel` script calls, so many works share a
stop millisecond (the id tie-break is exercised). Stop times are read back from the
status sets.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from workflow import Client, Failure, Results, Settings, Work, core
from workflow.keys import work_key
from workflow.query import STATUSES, Query, decode_find, find_call
from workflow.server import PrivateServer

from ..conftest import TEST_PREFIX
from ..helpers import keys

PIPELINES = tuple(f"scale-{i}" for i in range(4))
TOTAL = 100_000
EVENTS = list(range(100_000, 100_800))
TAGS = [f"tag-{i:02d}" for i in range(20)]
USERS = [f"user-{i}" for i in range(8)]
SITES = ["cern", "desy", "fnal", "kek"]
GROUPS = [f"grp-{i}" for i in range(6)]
WEIGHTS = {"success": 60, "failure": 25, "cancelled": 15}
DEPOSIT_BATCH = 10_000
FINISH_BATCH = 500

# standalone: 100,000 works are built once, on the standalone run; the results index on a
# cluster is covered by the other results tests (same queries, smaller data).
pytestmark = [pytest.mark.slow, pytest.mark.standalone]


@dataclass(frozen=True, slots=True)
class Row:
    """What the model knows of one finished work."""

    id: str
    pipeline: str
    event: tuple[int, ...]
    tags: frozenset[str]
    user: str
    site: str
    group: frozenset[str]
    status: str
    stop_ms: int


@dataclass
class Data:
    """The filled deployment: a client on it and the model of every result."""

    client: Client
    rows: list[Row]
    fill_s: float
    index_s: float

    @property
    def results(self) -> Results:
        return Results(self.client)

    def model(self, keep: Callable[[Row], bool]) -> list[str]:
        """Ids of the rows `keep` accepts, newest first (stop desc, id desc)."""
        chosen = [r for r in self.rows if keep(r)]
        chosen.sort(key=lambda r: (r.stop_ms, r.id), reverse=True)
        return [r.id for r in chosen]


def _plan(rng: random.Random) -> tuple[list[Work], dict[str, str]]:
    """The works to deposit and the status each is to end with."""
    works: list[Work] = []
    status_of: dict[str, str] = {}
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    for i in range(TOTAL):
        n_events = 2 if rng.random() < 0.1 else 1
        groups = rng.sample(GROUPS, rng.randint(0, 2))
        w = Work(
            pipeline=PIPELINES[i % len(PIPELINES)],
            event=rng.sample(EVENTS, n_events),
            tags=rng.sample(TAGS, rng.randint(1, 3)),
            user=rng.choice(USERS),
            site=rng.choice(SITES),
            group=groups or None,
            retries=0,
            priority=rng.randint(1, 5),
        )
        w.id = f"w{i:06d}-{rng.randrange(16**6):06x}"
        works.append(w)
        status_of[w.id] = rng.choices(names, weights)[0]
    return works, status_of


def _finish(client: Client, pipeline: str, status_of: dict[str, str]) -> int:
    """Withdraw every queued work of `pipeline`, 500 at a time, and finish each batch the
    way a worker does: one `complete_many` round trip (and the cancels pipelined)."""
    cancel_reason = Failure(kind="cancelled", message="scale test", time=time.time())
    finished = 0
    while works := client.withdraw(pipeline, count=FINISH_BATCH):
        done = [(w, "success" if status_of[str(w.id)] == "success" else "failure",
                 None if status_of[str(w.id)] == "success"
                 else Failure(message="scale test"), True)
                for w in works if status_of[str(w.id)] != "cancelled"]  # fmt: skip
        statuses, _ = client.complete_many(done)  # type: ignore[arg-type]
        assert "rejected" not in statuses, statuses
        cancels = [core.cancel_call(client.settings, pipeline, str(w.id), cancel_reason)
                   for w in works if status_of[str(w.id)] == "cancelled"]  # fmt: skip
        assert all(isinstance(r, bytes) for r in client._run_many(cancels))
        finished += len(works)
    return finished


def _stops(client: Client) -> dict[str, tuple[str, int]]:
    """Every finished work's (status, stop ms), read back from the status sets."""
    out: dict[str, tuple[str, int]] = {}
    for pipeline in PIPELINES:
        k = keys(client, pipeline)
        for status in STATUSES:
            for member, score in client.redis.zrange(getattr(k, status), 0, -1, withscores=True):
                out[member.decode()] = (status, int(score))
    return out


@pytest.fixture(scope="module")
def data(redis_server: PrivateServer) -> Iterator[Data]:
    """100,000 finished and indexed works (built once: the tests only read)."""
    settings = Settings(url=redis_server.url, prefix=TEST_PREFIX, backoff_base_ms=0,
                        backoff_max_ms=0)  # fmt: skip
    client = Client(settings)
    client.redis.flushall()
    t0 = time.perf_counter()
    works, status_of = _plan(random.Random(20261127))
    for i in range(0, TOTAL, DEPOSIT_BATCH):
        assert all(client.deposit(works[i : i + DEPOSIT_BATCH]))
    for pipeline in PIPELINES:
        assert _finish(client, pipeline, status_of) == TOTAL // len(PIPELINES)
    t1 = time.perf_counter()
    indexed = Results(client).index()
    t2 = time.perf_counter()
    assert indexed == TOTAL
    stops = _stops(client)
    assert len(stops) == TOTAL
    rows = []
    for w in works:
        status, stop_ms = stops[w.id]  # type: ignore[index]
        assert status == status_of[w.id]  # type: ignore[index]
        rows.append(Row(
            w.id, w.pipeline, tuple(w.event or ()), frozenset(w.tags or ()), w.user or "",
            w.site, frozenset(w.group or ()), status, stop_ms,
        ))  # type: ignore[arg-type]  # fmt: skip
    try:
        yield Data(client, rows, t1 - t0, t2 - t1)
    finally:
        client.close()


def ids(page: list[Work]) -> list[str]:
    return [str(w.id) for w in page]


def check(data: Data, keep: Callable[[Row], bool], **query: Any) -> list[str]:
    """`find` (one page holding everything) and `count` of `query` equal the model."""
    expected = data.model(keep)
    assert 0 < len(expected) < 10_000, len(expected)  # meaningful, and fits one page
    page = data.results.find(limit=10_000, **query)
    assert ids(page) == expected
    assert page.cursor is None
    assert data.results.count(**query) == len(expected)
    return expected


# -- the data set itself --------------------------------------------------------------------


def test_the_data_set_is_what_the_test_needs(data: Data) -> None:
    """Everything finished and was indexed; many works share a stop ms (ties); the fill
    stays fast."""
    assert len(data.rows) == TOTAL
    by_status = {s: sum(r.status == s for r in data.rows) for s in STATUSES}
    assert all(n > 10_000 for n in by_status.values()), by_status
    distinct = len({(r.pipeline, r.stop_ms) for r in data.rows})
    assert distinct < TOTAL // 5, "works should share stop milliseconds"
    for pipeline in PIPELINES:
        counts = data.client.counts(pipeline)
        assert counts["queued"] == counts["running"] == counts["delayed"] == 0
    print(f"\nfill {data.fill_s:.1f} s, index {data.index_s:.1f} s "
          f"({TOTAL / data.index_s:,.0f} works/s)")  # fmt: skip


def test_count_all_and_by_status(data: Data) -> None:
    r = data.results
    assert r.count() == TOTAL
    for status in STATUSES:
        assert r.count(status=status) == sum(x.status == status for x in data.rows)
        assert r.count(PIPELINES[2], status=status) == sum(
            x.status == status and x.pipeline == PIPELINES[2] for x in data.rows
        )
    assert r.count(status=["failure", "cancelled"]) == sum(x.status != "success" for x in data.rows)


def test_get_by_id(data: Data) -> None:
    for row in data.rows[:: TOTAL // 50]:
        work = data.results.get(row.id)
        assert (work.id, work.pipeline, work.status) == (row.id, row.pipeline, row.status)
        assert work.stop is not None and round(work.stop * 1000) == row.stop_ms


# -- queries ----------------------------------------------------------------------------------


def test_find_by_event(data: Data) -> None:
    e = EVENTS[17]
    check(data, lambda r: e in r.event, event=e)
    some = EVENTS[100:103]
    check(data, lambda r: any(x in r.event for x in some), event=some)
    check(data, lambda r: e in r.event and r.status == "failure", event=e, status="failure")


def test_find_by_all_tags(data: Data) -> None:
    a, b = TAGS[3], TAGS[11]
    got = check(data, lambda r: {a, b} <= r.tags, tags=[a, b])
    assert len(got) > 100
    check(data, lambda r: {a, b, TAGS[0]} <= r.tags, tags=[a, b, TAGS[0]], tags_mode="all")


def test_find_by_any_tag(data: Data) -> None:
    a, b = TAGS[5], TAGS[6]
    p = PIPELINES[1]
    got = check(
        data, lambda r: r.pipeline == p and r.status == "failure" and bool({a, b} & r.tags),
        pipeline=p, status="failure", tags=[a, b], tags_mode="any",
    )  # fmt: skip
    assert len(got) > 500


def test_find_by_user_and_site(data: Data) -> None:
    check(data, lambda r: r.user == USERS[2] and r.site == "desy", user=USERS[2], site="desy")
    check(
        data, lambda r: r.user in USERS[:2] and r.site == "kek" and r.pipeline == PIPELINES[3],
        pipeline=PIPELINES[3], user=USERS[:2], site="kek",
    )  # fmt: skip


def test_find_by_group(data: Data) -> None:
    check(
        data, lambda r: GROUPS[4] in r.group and r.status == "cancelled",
        group=GROUPS[4], status="cancelled",
    )  # fmt: skip


def test_find_by_status_and_time_range(data: Data) -> None:
    """`since`/`until` are inclusive stop-time bounds, in any of their forms."""
    stops = sorted({r.stop_ms for r in data.rows})
    lo, hi = stops[len(stops) * 4 // 10], stops[len(stops) * 5 // 10]

    def keep(r: Row) -> bool:
        return r.status == "failure" and lo <= r.stop_ms <= hi

    got = check(data, keep, status="failure", since=lo / 1000, until=hi / 1000)
    assert len(got) > 500
    as_dt = {"since": datetime.fromtimestamp(lo / 1000, UTC),
             "until": datetime.fromtimestamp(hi / 1000, UTC)}  # fmt: skip
    assert ids(data.results.find(limit=10_000, status="failure", **as_dt)) == got
    # a time range alone (every status) and an open-ended one
    check(data, lambda r: lo <= r.stop_ms <= lo + 50, since=lo / 1000, until=(lo + 50) / 1000)
    top = stops[-40]
    check(data, lambda r: r.stop_ms >= top and r.status == "success",
          since=top / 1000, status="success")  # fmt: skip


def test_all_pipelines_versus_one(data: Data) -> None:
    """The same filters on every pipeline merge the pipelines newest first; on one
    pipeline they give exactly that pipeline's part of it."""
    t = TAGS[7]
    everywhere = check(data, lambda r: t in r.tags and r.status == "cancelled",
                       tags=t, status="cancelled")  # fmt: skip
    pipeline_of = {r.id: r.pipeline for r in data.rows}
    assert len({pipeline_of[i] for i in everywhere}) == len(PIPELINES)
    for p in PIPELINES:
        one = check(data, lambda r, p=p: t in r.tags and r.status == "cancelled" and
                    r.pipeline == p, pipeline=p, tags=t, status="cancelled")  # fmt: skip
        assert one == [i for i in everywhere if pipeline_of[i] == p]
    two = list(PIPELINES[:2])
    check(data, lambda r: t in r.tags and r.status == "cancelled" and r.pipeline in two,
          pipeline=two, tags=t, status="cancelled")  # fmt: skip


def test_limit_and_offset(data: Data) -> None:
    expected = data.model(lambda r: TAGS[9] in r.tags)
    page = data.results.find(tags=TAGS[9], limit=100, offset=250)
    assert ids(page) == expected[250:350]
    assert data.results.find(tags=TAGS[9], limit=0) == []
    newest = data.results.find(limit=25)
    assert ids(newest) == data.model(lambda r: True)[:25]


def test_cursor_paging_yields_every_result_once_in_order(data: Data) -> None:
    """Paging a query of several thousand results across all pipelines with the cursor:
    every result once, in order, the last page without a cursor."""
    t = TAGS[13]
    expected = data.model(lambda r: t in r.tags and r.status == "success")
    assert 4_000 < len(expected) < 10_000
    got: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = data.results.find(tags=t, status="success", limit=700, cursor=cursor)
        got += ids(page)
        pages += 1
        if page.cursor is None:
            break
        cursor = str(page.cursor)  # the text form, as the CLI hands it back
        assert pages < 100
    assert got == expected
    assert pages == len(expected) // 700 + 1
    assert data.results.count(tags=t, status="success") == len(expected)


def test_cursor_paging_through_ties_on_one_pipeline(data: Data) -> None:
    """Small pages cut through runs of works sharing a stop ms: nothing repeated or lost."""
    p = PIPELINES[0]
    expected = data.model(lambda r: r.pipeline == p and r.site == "fnal" and r.user == USERS[5])
    got: list[str] = []
    page = data.results.find(p, site="fnal", user=USERS[5], limit=7)
    while True:
        got += ids(page)
        if page.cursor is None:
            break
        page = data.results.find(p, site="fnal", user=USERS[5], limit=7, cursor=page.cursor)
    assert got == expected


def test_iterate_and_counts_of_big_queries(data: Data) -> None:
    """Queries larger than one find call's budget: `count()` (scanned) and `iterate()`
    still exact."""
    t = TAGS[1]
    expected = data.model(lambda r: t in r.tags and r.status != "cancelled")
    assert len(expected) > 5_000
    assert data.results.count(tags=t, status=["success", "failure"]) == len(expected)
    got = [str(w.id) for w in data.results.iterate(tags=t, status=["success", "failure"])]
    assert got == expected
    assert data.results.count(tags=[TAGS[2], TAGS[3]], tags_mode="any") == len(
        data.model(lambda r: bool({TAGS[2], TAGS[3]} & r.tags))
    )


def test_small_pages_cut_through_shared_stop_milliseconds(data: Data) -> None:
    """Pages of 3 over a stop-time window where many works share each ms, on all
    pipelines at once: the cursor splits ties and still gives every result once."""
    stops = sorted(r.stop_ms for r in data.rows)
    lo = stops[TOTAL // 3]
    hi = next(s for s in stops[TOTAL // 3 :] if s >= lo + 15)
    expected = data.model(lambda r: lo <= r.stop_ms <= hi)
    by_ms: dict[int, int] = {}
    for r in data.rows:
        if lo <= r.stop_ms <= hi:
            by_ms[r.stop_ms] = by_ms.get(r.stop_ms, 0) + 1
    assert max(by_ms.values()) > 3, "pages must end inside runs of one ms"
    got: list[str] = []
    page = data.results.find(since=lo / 1000, until=hi / 1000, limit=3)
    while True:
        got += ids(page)
        if page.cursor is None:
            break
        page = data.results.find(since=lo / 1000, until=hi / 1000, limit=3, cursor=page.cursor)
    assert got == expected


def test_find_by_creation_range(data: Data) -> None:
    """`created_since`/`created_until` (inclusive, ms of the record's `creation`) combined
    with a field filter: exact set and order."""
    p = PIPELINES[2]
    mine = [r for r in data.rows if r.pipeline == p]
    pipe = data.client.redis.pipeline(transaction=False)
    for r in mine:
        pipe.hget(work_key(TEST_PREFIX, p, r.id), "creation")
    created = {r.id: int(c) for r, c in zip(mine, pipe.execute(), strict=True)}
    times = sorted(created.values())
    lo, hi = times[len(times) // 4], times[len(times) // 2]
    check(
        data,
        lambda r: r.pipeline == p and TAGS[8] in r.tags and lo <= created[r.id] <= hi,
        pipeline=p, tags=TAGS[8], created_since=lo / 1000, created_until=hi / 1000,
    )  # fmt: skip


def test_count_by_one_field_value_needs_no_scan(data: Data) -> None:
    """results.py: "`count()` with at most one field value and no creation range is
    O(log n)": one `find` call in count mode answers it, even with a budget of 1 entry."""
    p = PIPELINES[0]
    cases: list[tuple[dict[str, Any], Callable[[Row], bool]]] = [
        ({"tags": TAGS[4]}, lambda r: TAGS[4] in r.tags),
        ({"event": EVENTS[3]}, lambda r: EVENTS[3] in r.event),
        ({"user": USERS[1]}, lambda r: r.user == USERS[1]),
    ]
    for filters, keep in cases:
        call = find_call(data.client.settings, p, Query.make(p, **filters), mode="count", budget=1)
        _, cursor, n = decode_find(data.client._run(call))
        assert (n, cursor) == (sum(r.pipeline == p and keep(r) for r in data.rows), None)
