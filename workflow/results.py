"""`Results`: search, count, export and delete finished works; set retention.

    from workflow import Results
    Results.find(pipeline="calibration", event=12345, status="failure", limit=10)
    Results(client).count(tags=["beam-3"], since=timedelta(hours=2))

Methods work on the class (the default client) or on an instance bound to a client.
Results are newest first by stop time. Cost of a query, per pipeline searched:
O(log n) per index named, then about the number of results in the smallest index named
(within the time range); a query naming no field index scans the status sets in time
order. `count()` with at most one field value and no creation range is O(log n).
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from workflow import codec
from workflow.client import Client, default_client
from workflow.errors import CorruptWork, ValidationError, WorkNotFound
from workflow.indexer import Indexer
from workflow.keys import pipeline_keys
from workflow.query import STATUSES, Cursor, Query, decode_find, find_call
from workflow.work import Work

__all__ = ["Page", "Results", "Retention"]

LIMIT_MAX = 10_000
"""Most results one `find()` page may hold (`iterate()` has no limit)."""


class Page(list[Work]):
    """One page of results, newest first; `cursor` continues after it (None: the end)."""

    cursor: Cursor | None = None


@dataclass(frozen=True)
class Retention:
    """How long a pipeline keeps results: by age (seconds), by count, or both; None: no
    limit."""

    max_age_s: int | None = None
    max_count: int | None = None


class _either:
    """A method callable on the class (with the default client) or on an instance."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, obj: Any, cls: type) -> Callable[..., Any]:
        return self.fn.__get__(obj if obj is not None else cls(), cls)


FILTERS = frozenset({
    "status", "event", "tags", "tags_mode", "user", "site", "group",
    "since", "until", "created_since", "created_until",
})  # fmt: skip
"""The keyword filters of `find`, `iterate`, `count`, `delete` and `export`."""


def _query(pipeline: str | list[str] | None, filters: dict[str, Any]) -> Query:
    unknown = sorted(set(filters) - FILTERS)
    if unknown:
        raise ValidationError(unknown[0], f"is not a filter ({', '.join(sorted(FILTERS))})")
    return Query.make(pipeline, **filters)


class Results:
    """The results index of one deployment. `Results()` uses the default client."""

    def __init__(self, client: Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Client:
        """The client this uses (the default client unless one was given)."""
        return self._client or default_client()

    # -- queries ------------------------------------------------------------------------

    @_either
    def find(
        self,
        pipeline: str | list[str] | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        cursor: Cursor | str | None = None,
        **filters: Any,
    ) -> Page:
        """Finished works matching the filters, newest first: a page of at most `limit`,
        after skipping `offset` (or starting after `cursor`). Filters: `status`, `event`,
        `tags` (+ `tags_mode` "all"/"any"), `user`, `site`, `group`, `since`/`until`
        (stop time), `created_since`/`created_until`; see `Query.make`."""
        for name, value, top in (("limit", limit, LIMIT_MAX), ("offset", offset, 10**9)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValidationError(name, f"must be an integer from 0 to {top}", value)
        q = _query(pipeline, filters)
        start = Cursor.parse(cursor) if cursor is not None else None
        merged = list(itertools.islice(self._merged(q, start, limit + offset), limit + offset))
        page = Page(work for work, _ in merged[offset:])
        page.cursor = merged[-1][1] if len(merged) == limit + offset and merged else None
        return page

    @_either
    def iterate(self, pipeline: str | list[str] | None = None, **filters: Any) -> Iterator[Work]:
        """Every finished work matching the filters, newest first, fetched page by page."""
        q = _query(pipeline, filters)
        for work, _ in self._merged(q, None, 500):
            yield work

    @_either
    def count(self, pipeline: str | list[str] | None = None, **filters: Any) -> int:
        """How many finished works match the filters (same filters as `find`)."""
        q = _query(pipeline, filters)
        total = 0
        for name in self._pipelines(q):
            cursor: Cursor | None = None
            while True:
                call = find_call(self.client.settings, name, q, mode="count", cursor=cursor)
                _, cursor, n = decode_find(self.client._run(call))
                total += n
                if cursor is None:
                    break
        return total

    @_either
    def get(self, work_id: str, *, pipeline: str | None = None) -> Work:
        """The finished work `work_id`; `WorkNotFound` if there is none (or it has not
        finished)."""
        work = self.client.get(work_id, pipeline=pipeline)
        if work.status not in STATUSES:
            raise WorkNotFound(
                work_id, work.pipeline, f"no result for {work_id!r}: it is {work.status}"
            )
        return work

    # -- writes -------------------------------------------------------------------------

    @_either
    def delete(
        self, pipeline: str | list[str] | None = None, *, ids: Iterable[str] | None = None,
        **filters: Any,
    ) -> int:  # fmt: skip
        """Delete finished works: those listed in `ids`, else every one matching the
        filters (`delete()` with no filter at all is refused). Returns how many."""
        if ids is not None:
            if filters:
                raise ValidationError("ids", "cannot be combined with filters")
            victims = [(work_id, pipeline if isinstance(pipeline, str) else None)
                       for work_id in ids]  # fmt: skip
        elif not filters and pipeline is None:
            raise ValidationError("filters", "delete needs ids, a pipeline or a filter")
        else:
            victims = [(w.id, w.pipeline) for w in self.iterate(pipeline, **filters)]
        deleted = 0
        for work_id, name in victims:
            if not isinstance(work_id, str):
                raise ValidationError("ids", "must be strings", work_id)
            try:
                self.get(work_id, pipeline=name)
            except WorkNotFound:
                continue
            deleted += self.client.delete(work_id, pipeline=name)
        return deleted

    @_either
    def export(self, file: IO[str], pipeline: str | list[str] | None = None,
               **filters: Any) -> int:  # fmt: skip
        """Write matching results to `file` as JSON Lines (one payload per line, newest
        first). Returns how many were written."""
        n = 0
        for work in self.iterate(pipeline, **filters):
            file.write(codec.encode_json(work).decode() + "\n")
            n += 1
        file.flush()
        return n

    @_either
    def set_retention(
        self, pipeline: str, *, max_age_s: int | None = None, max_count: int | None = None
    ) -> Retention:
        """Keep `pipeline`'s results at most `max_age_s` seconds after they stop and/or
        at most `max_count` of them (oldest dropped first); None removes that limit.
        Enforced continuously by the indexers; every drop is counted in the pipeline's
        stats (`dropped`, `dropped:<status>`)."""
        Query.make(pipeline)
        for name, value in (("max_age_s", max_age_s), ("max_count", max_count)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValidationError(name, "must be an integer >= 1 or None", value)
        key = pipeline_keys(self.client.settings.prefix, pipeline).retention
        r = self.client.redis
        pipe = r.pipeline(transaction=False)
        pipe.delete(key)
        policy = {n: v for n, v in (("max_age_s", max_age_s), ("max_count", max_count)) if v}
        if policy:
            pipe.hset(key, mapping=policy)
        self.client._io(pipe.execute, True)
        return Retention(max_age_s, max_count)

    @_either
    def retention(self, pipeline: str) -> Retention:
        """The retention policy of `pipeline`."""
        Query.make(pipeline)
        key = pipeline_keys(self.client.settings.prefix, pipeline).retention
        raw = self.client._io(lambda: self.client.redis.hgetall(key), True)
        values = {k.decode(): int(v) for k, v in raw.items()}
        return Retention(values.get("max_age_s"), values.get("max_count"))

    @_either
    def index(self, pipeline: str | list[str] | None = None) -> int:
        """Index every finished work waiting in the completion streams now, and enforce
        retention (workers do this continuously; this is for tools and tests)."""
        names = Query.make(pipeline).pipelines or None
        return Indexer(self.client, names, consumer="workflow-index-now").drain()

    # -- plumbing -----------------------------------------------------------------------

    def _pipelines(self, q: Query) -> list[str]:
        return list(q.pipelines) or self.client.pipelines()

    def _merged(self, q: Query, start: Cursor | None, page: int) -> Iterator[tuple[Work, Cursor]]:
        """Results of every pipeline, merged newest first."""
        streams = [self._stream(q, name, start, page) for name in self._pipelines(q)]
        yield from (
            (work, cursor)
            for _, work, cursor in heapq.merge(*streams, key=lambda t: t[0], reverse=True)
        )

    def _stream(
        self, q: Query, pipeline: str, cursor: Cursor | None, page: int
    ) -> Iterator[tuple[Cursor, Work, Cursor]]:
        """One pipeline's results, newest first, fetched `page` at a time."""
        while True:
            call = find_call(self.client.settings, pipeline, q, cursor=cursor, limit=page)
            records, cursor, _ = decode_find(self.client._run(call))
            for work_id, record in records:
                try:
                    work = codec.decode_record(work_id, record)
                except CorruptWork:
                    continue  # reported by `workflow work show`; a search skips it
                here = Cursor(int(record.get("stop", b"0")), work_id)
                yield here, work, here
            if cursor is None:
                return
