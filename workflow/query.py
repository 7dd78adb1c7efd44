"""Results queries without I/O: validated filters, the script calls, the reply decoding.

A query on one pipeline is one `find` script call: an AND of groups, each an OR of sorted
sets scored by stop time (the status sets, and one results index per field value). The
smallest group in the stop-time range drives the scan, so a selective query costs about
the number of results it could match, not the number of results stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from workflow.core import FILTER_MAX, Call
from workflow.errors import ValidationError
from workflow.keys import index_key, pipeline_keys
from workflow.settings import Settings
from workflow.work import NAME_RE

__all__ = [
    "GROUP",
    "STATUSES",
    "Cursor",
    "Query",
    "decode_find",
    "expire_call",
    "find_call",
    "index_call",
    "to_ms",
]

STATUSES = ("success", "failure", "cancelled")
"""The statuses of a finished work: every result has one."""
GROUP = "workflow-results"
"""The consumer group of results indexers on each pipeline's completion stream."""
FIND_BUDGET = 5_000
"""Most index entries one `find` call examines: keeps each call to a few ms."""

TimeArg = datetime | timedelta | float | int | None
"""A point in time: a datetime, unix seconds, or a timedelta meaning that long ago."""


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page of results ended: its last result's stop time (ms) and id."""

    stop_ms: int
    id: str

    def __str__(self) -> str:
        return f"{self.stop_ms}:{self.id}"

    @classmethod
    def parse(cls, text: str | Cursor) -> Cursor:
        """A cursor from its text form `STOP_MS:ID`."""
        if isinstance(text, Cursor):
            return text
        stop, sep, work_id = str(text).partition(":")
        if not sep or not stop.isdigit() or not work_id:
            raise ValidationError("cursor", "must be STOP_MS:ID as returned by a query", text)
        return cls(int(stop), work_id)


def to_ms(name: str, value: TimeArg, now: float | None = None) -> int | None:
    """Unix ms of a time argument; `ValidationError` naming `name` if it is not one."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return round(((time.time() if now is None else now) - value.total_seconds()) * 1000)
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e11:
        return round(value * 1000)
    raise ValidationError(name, "must be a datetime, a timedelta or unix seconds", value)


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) and v for v in items):
        raise ValidationError(name, "must be a non-empty string or a list of them", value)
    if len(items) > FILTER_MAX:
        raise ValidationError(name, f"at most {FILTER_MAX} values", value)
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Query:
    """What to look for; empty fields match everything. Values of one field match any
    (`tags` with `tags_mode="all"` must all be present); different fields must all match."""

    pipelines: tuple[str, ...] = ()
    status: tuple[str, ...] = STATUSES
    event: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    tags_mode: Literal["any", "all"] = "all"
    user: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    created_since_ms: int | None = None
    created_until_ms: int | None = None

    @classmethod
    def make(
        cls,
        pipeline: str | list[str] | None = None,
        *,
        status: str | list[str] | None = None,
        event: int | list[int] | None = None,
        tags: str | list[str] | None = None,
        tags_mode: str = "all",
        user: str | list[str] | None = None,
        site: str | list[str] | None = None,
        group: str | list[str] | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        created_since: TimeArg = None,
        created_until: TimeArg = None,
    ) -> Query:
        """A validated query: `ValidationError` names the field and the rule."""
        pipelines = _strings("pipeline", pipeline)
        for name in pipelines:
            if not NAME_RE.fullmatch(name):
                raise ValidationError("pipeline", "must be a valid pipeline name", name)
        statuses = _strings("status", status) or STATUSES
        for s in statuses:
            if s not in STATUSES:
                raise ValidationError("status", f"must be one of {', '.join(STATUSES)}", s)
        events = [event] if isinstance(event, int) else (event or [])
        if (
            isinstance(event, bool)
            or not isinstance(events, list | tuple)
            or not all(
                isinstance(e, int) and not isinstance(e, bool) and abs(e) < 2**53 for e in events
            )
        ):
            raise ValidationError("event", "must be an integer or a list of integers", event)
        if len(events) > FILTER_MAX:
            raise ValidationError("event", f"at most {FILTER_MAX} values", event)
        if tags_mode not in ("any", "all"):
            raise ValidationError("tags_mode", "must be 'any' or 'all'", tags_mode)
        query = cls(
            pipelines=pipelines,
            status=tuple(s for s in STATUSES if s in statuses),
            event=tuple(dict.fromkeys(events)),
            tags=_strings("tags", tags),
            tags_mode=tags_mode,  # type: ignore[arg-type]
            user=_strings("user", user),
            site=_strings("site", site),
            group=_strings("group", group),
            since_ms=to_ms("since", since),
            until_ms=to_ms("until", until),
            created_since_ms=to_ms("created_since", created_since),
            created_until_ms=to_ms("created_until", created_until),
        )
        return query

    def groups(self, s: Settings, pipeline: str) -> tuple[list[list[str]], bool]:
        """The AND of ORs of sorted sets this query means on `pipeline`, and whether
        the first group's sets are disjoint (the status group, first when present). The
        status group is left out when every status is wanted and a field is named: the
        field indexes hold finished works only, so it would constrain nothing (and a
        one-value count stays O(log n))."""
        k = pipeline_keys(s.prefix, pipeline)
        out = [[getattr(k, status) for status in self.status]]

        def ix(field: str, values: tuple[Any, ...]) -> list[str]:
            return [index_key(s.prefix, pipeline, field, v) for v in values]

        if self.event:
            out.append(ix("event", self.event))
        if self.tags and self.tags_mode == "any":
            out.append(ix("tag", self.tags))
        elif self.tags:
            out += [[key] for key in ix("tag", self.tags)]
        for field in ("user", "site", "group"):
            values = getattr(self, field)
            if values:
                out.append(ix(field, values))
        if len(out) > 1 and self.status == STATUSES:
            return out[1:], False
        return out, True


def find_call(
    s: Settings,
    pipeline: str,
    q: Query,
    *,
    mode: Literal["find", "count"] = "find",
    cursor: Cursor | None = None,
    limit: int = 100,
    budget: int | None = None,
) -> Call:
    """One `find` call on `pipeline`, newest first after `cursor`, examining at most
    `budget` entries (default `FIND_BUDGET`)."""
    groups, disjoint = q.groups(s, pipeline)
    newest = q.until_ms
    cursor_id = ""
    if cursor is not None and (newest is None or cursor.stop_ms <= newest):
        newest, cursor_id = cursor.stop_ms, cursor.id
    args: list[Any] = [
        pipeline_keys(s.prefix, pipeline).work, mode,
        "+inf" if newest is None else newest,
        "-inf" if q.since_ms is None else q.since_ms,
        cursor_id, limit, budget or FIND_BUDGET,
        "" if q.created_since_ms is None else q.created_since_ms,
        "" if q.created_until_ms is None else q.created_until_ms,
        "1" if disjoint else "0", *(len(g) for g in groups),
    ]  # fmt: skip
    return Call("find", [key for g in groups for key in g], args, retry_safe=True)


def decode_find(reply: list[Any]) -> tuple[list[tuple[str, dict[str, bytes]]], Cursor | None, int]:
    """`(records, cursor, count)` from a `find` reply; `cursor` is None when the pipeline
    has nothing more to give, `count` is the count-mode total (else the records found)."""
    more = int(reply[0])
    cursor = Cursor(int(reply[1]), reply[2].decode()) if more and reply[1] else None
    rest = reply[3:]
    if len(rest) == 1 and isinstance(rest[0], int):
        return [], cursor, rest[0]
    records = []
    for i in range(0, len(rest), 2):
        flat = rest[i + 1]
        records.append((rest[i].decode(), {
            flat[j].decode(): flat[j + 1] for j in range(0, len(flat), 2)
        }))  # fmt: skip
    return records, cursor, len(records)


def index_call(s: Settings, pipeline: str, entries: list[tuple[str, str]]) -> Call:
    """Index the works of completion-stream `entries` ((entry id, work id) pairs) and
    acknowledge the entries."""
    k = pipeline_keys(s.prefix, pipeline)
    args: list[Any] = [k.work, k.ix, GROUP]
    for entry_id, work_id in entries:
        args += [entry_id, work_id]
    return Call("index", [k.done, k.success, k.failure, k.cancelled, k.stats], args, True)


def expire_call(s: Settings, pipeline: str, limit: int) -> Call:
    """Drop up to `limit` results the pipeline's retention policy no longer keeps."""
    k = pipeline_keys(s.prefix, pipeline)
    keys = [k.success, k.failure, k.cancelled, k.stats, k.retention]
    return Call("expire", keys, [k.work, k.ix, limit], retry_safe=True)
