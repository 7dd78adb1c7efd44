"""The results indexer: moves finished works from each pipeline's completion stream into
the results index.

Every finish appends an entry to the pipeline's `done` stream in the same script. Indexers
read it through one consumer group (`query.GROUP`), so each entry goes to one of them; the
`index` script indexes a batch and acknowledges it in one atomic step, so an indexer
killed mid-batch leaves its entries pending, and another indexer claims them once they
have been idle `claim_idle_ms` (at-least-once delivery, idempotent indexing: nothing is
lost or duplicated). Acknowledged entries are trimmed from the stream. The same loop
enforces each pipeline's retention policy.

Indexers run inside every worker (a thread that never touches the withdraw path) and as
`workflow results index`; any number may run at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis

from workflow import query
from workflow.errors import WorkflowError
from workflow.keys import pipeline_keys

if TYPE_CHECKING:
    from workflow.client import Client

__all__ = ["Indexer"]

log = logging.getLogger("workflow.indexer")

BATCH = 500
"""Most stream entries indexed by one script call."""
CLAIM_IDLE_MS = 60_000
"""An entry pending this long belongs to an indexer presumed dead: another claims it."""
IDLE_S = 0.2
"""Pause between rounds when nothing was indexed: the lag of results behind finishes."""
HOUSEKEEPING_S = 5.0
"""How often each pipeline's stream is trimmed, dead consumers are claimed and
retention is enforced."""
PIPELINES_REFRESH_S = 5.0
"""How often an indexer of all pipelines looks for new ones."""
EXPIRE_BATCH = 500
"""Most results dropped by one retention call (each call stays short)."""


class Indexer:
    """Indexes the finished works of `pipelines` (None: every pipeline, found as they
    appear). `consumer` names this indexer in the consumer group."""

    def __init__(
        self,
        client: Client,
        pipelines: Sequence[str] | None = None,
        *,
        consumer: str,
        batch: int = BATCH,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        housekeeping_s: float = HOUSEKEEPING_S,
    ) -> None:
        self.client = client
        self.consumer = consumer
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.housekeeping_s = housekeeping_s
        self._fixed = list(pipelines) if pipelines is not None else None
        self._pipelines: list[str] = list(self._fixed or [])
        self._listed_at = 0.0
        self._grouped: set[str] = set()
        self._housekept: dict[str, float] = {}
        self.indexed = 0
        self.dropped = 0

    # -- one round ----------------------------------------------------------------------

    def run_once(self) -> int:
        """One round over every pipeline: index what is waiting (claimed entries of dead
        indexers included, when housekeeping is due), trim, enforce retention. Returns the
        number of entries handled."""
        handled = 0
        for pipeline in self.pipelines():
            due = time.monotonic() - self._housekept.get(pipeline, 0.0) >= self.housekeeping_s
            if due:
                handled += self._claim(pipeline)
            handled += self._read(pipeline)
            if due:
                behind = self._housekeeping(pipeline)
                # Retention still behind: housekeeping again next round, not in 5 s.
                self._housekept[pipeline] = 0.0 if behind else time.monotonic()
        return handled

    def drain(self) -> int:
        """Index everything waiting now, claiming every pending entry regardless of its
        idle time (for tools and tests: safe, since indexing is idempotent)."""
        total = 0
        for pipeline in self.pipelines():
            total += self._claim(pipeline, min_idle_ms=0)
            while (n := self._read(pipeline)) > 0:
                total += n
            self._housekeeping(pipeline)
        return total

    def run(self, stop: threading.Event, idle_s: float = IDLE_S) -> None:
        """Index until `stop` is set. Redis errors are logged and retried with back-off:
        the indexer never stops its worker; anything else is logged with its traceback and
        retried the same way, so the thread never dies and silently stops indexing."""
        backoff = idle_s
        while not stop.is_set():
            try:
                handled = self.run_once()
                backoff = idle_s
            except (WorkflowError, redis.RedisError) as exc:
                log.warning("results indexer: %s (retrying in %.1f s)", exc, backoff)
                handled = 0
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("results indexer failed (retrying in %.1f s)", backoff)
                handled = 0
                backoff = min(backoff * 2, 5.0)
            if not handled:
                stop.wait(backoff)

    def pipelines(self) -> list[str]:
        """The pipelines this indexer serves."""
        if self._fixed is None and time.monotonic() - self._listed_at >= PIPELINES_REFRESH_S:
            self._pipelines = self.client.pipelines()
            self._listed_at = time.monotonic()
        return self._pipelines

    # -- steps --------------------------------------------------------------------------

    def _done(self, pipeline: str) -> str:
        return pipeline_keys(self.client.settings.prefix, pipeline).done

    def _ensure_group(self, pipeline: str) -> None:
        if pipeline in self._grouped:
            return
        try:
            self.client._io(
                lambda: self.client.redis.xgroup_create(
                    self._done(pipeline), query.GROUP, id="0", mkstream=True
                ),
                True,
            )
        except WorkflowError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped.add(pipeline)

    def _read(self, pipeline: str) -> int:
        """Read and index one batch of new entries."""
        self._ensure_group(pipeline)
        stream = self._done(pipeline)
        reply = self.client._io(
            lambda: self.client.redis.xreadgroup(
                query.GROUP, self.consumer, {stream: ">"}, count=self.batch
            ),
            False,
        )
        entries = reply[0][1] if reply else []
        return self._index(pipeline, entries)

    def _claim(self, pipeline: str, min_idle_ms: int | None = None) -> int:
        """Take over entries left pending by indexers that stopped, and index them."""
        self._ensure_group(pipeline)
        stream, start, total = self._done(pipeline), "0-0", 0
        idle = self.claim_idle_ms if min_idle_ms is None else min_idle_ms
        while True:
            reply = self.client._io(
                lambda s=start: self.client.redis.xautoclaim(  # type: ignore[misc]
                    stream, query.GROUP, self.consumer, idle, start_id=s, count=self.batch
                ),
                True,
            )
            start, entries = reply[0], reply[1]
            total += self._index(pipeline, entries)
            if start in (b"0-0", "0-0"):
                return total

    def _index(self, pipeline: str, entries: list[Any]) -> int:
        pairs = []
        for entry_id, fields in entries:
            if fields is None:  # trimmed before it was read: nothing left to index
                continue
            work_id = fields.get(b"id", b"")
            pairs.append((_text(entry_id), _text(work_id)))
        if pairs:
            done = self.client._run(query.index_call(self.client.settings, pipeline, pairs))
            self.indexed += int(done[0])
        return len(entries)

    def _housekeeping(self, pipeline: str) -> bool:
        """Trim the stream and enforce retention; True if retention has more to drop."""
        self._trim(pipeline)
        return self._expire(pipeline)

    def _trim(self, pipeline: str) -> None:
        """Drop stream entries every consumer group has acknowledged."""
        r, stream = self.client.redis, self._done(pipeline)
        groups = self.client._io(lambda: r.xinfo_groups(stream), True)
        if not groups:
            return
        floor: str | None = None
        for g in groups:
            name = g["name"]
            mark = _text(g["last-delivered-id"])
            if int(g["pending"]):
                pending = self.client._io(lambda n=name: r.xpending(stream, n), True)  # type: ignore[misc]
                if pending["min"] is not None:  # (None: acknowledged since XINFO GROUPS)
                    mark = _text(pending["min"])
            if floor is None or _entry_key(mark) < _entry_key(floor):
                floor = mark
        if floor and floor != "0-0":
            self.client._io(lambda: r.xtrim(stream, minid=floor, approximate=False), True)

    def _expire(self, pipeline: str) -> bool:
        """Enforce the retention policy (a bounded number of calls per round); True if
        the policy still wants more dropped."""
        for _ in range(20):
            dropped, more = self.client._run(
                query.expire_call(self.client.settings, pipeline, EXPIRE_BATCH)
            )
            self.dropped += int(dropped)
            if not int(more):
                return False
        return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
