"""A snapshot of the whole system for `workflow status`: pure data, two round trips.

Everything comes from what the scripts maintain — set cardinalities, the per-minute
throughput hashes, the heads of the sets, the worker registry — never from scanning
keys, so the cost does not grow with the number of works: per pipeline about 40 O(1) or
O(log n) commands, pipelined, plus the records of the few works shown.
"""

from __future__ import annotations

import msgspec

from workflow import core
from workflow.client import Client
from workflow.keys import pipeline_keys, throughput_key, work_key
from workflow.operations import COUNT_SETS
from workflow.registry import WorkerInfo, list_workers
from workflow.work import Failure

__all__ = ["PipelineStatus", "Snapshot", "snapshot"]

MINUTES = 15
"""Minutes of throughput history in a snapshot."""
SHOWN = 10
"""Running works and recent failures listed per pipeline."""


class RunningWork(msgspec.Struct, kw_only=True):
    """A running work: who runs it and how long it has left."""

    id: str
    attempt: int
    worker: str | None
    lease_left_s: float
    timeout_left_s: float | None


class RecentFailure(msgspec.Struct, kw_only=True):
    """A finished failure: when, after how many attempts, and its error line."""

    id: str
    stop: float
    attempt: int
    kind: str
    message: str


class PipelineStatus(msgspec.Struct, kw_only=True):
    """One pipeline: counts by state and priority, throughput, age, running, failures."""

    name: str
    paused: bool
    counts: dict[str, int]
    queued_by_priority: dict[int, int]
    oldest_queued_s: float | None
    throughput: list[dict[str, int]]  # oldest minute first; keys: minute, success, ...
    running: list[RunningWork]
    failures: list[RecentFailure]
    stats: dict[str, int]


class Snapshot(msgspec.Struct, kw_only=True):
    """Everything `workflow status` shows, at one moment (Redis time)."""

    time: float
    prefix: str
    pipelines: list[PipelineStatus]
    workers: list[WorkerInfo]


def snapshot(
    client: Client, pipelines: list[str] | None = None, *, minutes: int = MINUTES,
    shown: int = SHOWN,
) -> Snapshot:  # fmt: skip
    """The status of `pipelines` (default: all) and of the live workers."""
    names = [core.check_pipeline(p) for p in pipelines] if pipelines else client.pipelines()
    prefix = client.settings.prefix
    secs, micros = client._io(client.redis.time, True)
    now = secs + micros / 1e6
    minute = int(now // 60)
    pipe = client.redis.pipeline(transaction=False)
    for name in names:
        k = pipeline_keys(prefix, name)
        pipe.exists(k.paused)
        for state in COUNT_SETS:
            pipe.zcard(getattr(k, state))
        for p in range(5, 0, -1):
            lo, hi = core.priority_range(p)
            pipe.zcount(k.queued, lo, f"({hi}")
            pipe.zrangebyscore(k.queued, lo, f"({hi}", start=0, num=1)
        for m in range(minute - minutes + 1, minute + 1):
            pipe.hgetall(throughput_key(prefix, name, m))
        pipe.zrange(k.running, 0, shown - 1, withscores=True)
        pipe.zrevrange(k.failure, 0, shown - 1, withscores=True)
        pipe.hgetall(k.stats)
    replies = iter(client._io(pipe.execute, True))
    raw = []
    for name in names:
        paused = bool(next(replies))
        counts = {state: int(next(replies)) for state in COUNT_SETS}
        by_priority, heads = {}, []
        for p in range(5, 0, -1):
            by_priority[p] = int(next(replies))
            heads += [h.decode() for h in next(replies)]
        tp = []
        for m in range(minute - minutes + 1, minute + 1):
            tp.append({"minute": m, **{k.decode(): int(v) for k, v in next(replies).items()}})
        running = [(i.decode(), score) for i, score in next(replies)]
        failures = [(i.decode(), score) for i, score in next(replies)]
        stats = {k.decode(): int(v) for k, v in next(replies).items()}
        raw.append((name, paused, counts, by_priority, heads, tp, running, failures, stats))

    # Second round trip: the few records shown (heads' ages, running, failures).
    pipe = client.redis.pipeline(transaction=False)
    for name, _, _, _, heads, _, running, failures, _ in raw:
        for work_id in heads:
            pipe.hget(work_key(prefix, name, work_id), "queued_at")
        for work_id, _ in running:
            pipe.hmget(work_key(prefix, name, work_id), "attempt", "deadline")
        for work_id, _ in failures:
            pipe.hmget(work_key(prefix, name, work_id), "attempt", "error")
    details = iter(client._io(pipe.execute, True))
    workers = list_workers(client)
    owner = {work_id: w.name for w in workers for work_id in w.current}
    out = []
    for name, paused, counts, by_priority, heads, tp, running, failures, stats in raw:
        ages = [now - int(q) / 1000 for q in (next(details) for _ in heads) if q]
        shown_running = []
        for work_id, lease_ms in running:
            attempt, deadline = next(details)
            shown_running.append(RunningWork(
                id=work_id, attempt=int(attempt or 0), worker=owner.get(work_id),
                lease_left_s=round(lease_ms / 1000 - now, 3),
                timeout_left_s=round(int(deadline) / 1000 - now, 3) if deadline else None,
            ))  # fmt: skip
        shown_failures = []
        for work_id, stop_ms in failures:
            attempt, error = next(details)
            err = _error(error)
            shown_failures.append(RecentFailure(
                id=work_id, stop=stop_ms / 1000, attempt=int(attempt or 0),
                kind=err.kind, message=err.message[:200],
            ))  # fmt: skip
        out.append(PipelineStatus(
            name=name, paused=paused, counts=counts, queued_by_priority=by_priority,
            oldest_queued_s=round(max(ages), 3) if ages else None, throughput=tp,
            running=shown_running, failures=shown_failures, stats=stats,
        ))  # fmt: skip
    return Snapshot(time=now, prefix=prefix, pipelines=out, workers=workers)


def _error(raw: bytes | None) -> Failure:
    if not raw:
        return Failure(kind="?", message="")
    try:
        return msgspec.json.decode(raw, type=Failure)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Failure(kind="corrupt", message="unreadable error record")


def rates(status: PipelineStatus, last: int = 5) -> dict[str, float]:
    """Finishes per minute by status over the `last` full minutes (the current minute is
    partial and left out)."""
    window = status.throughput[-last - 1 : -1] or status.throughput
    out: dict[str, float] = {}
    for row in window:
        for key, value in row.items():
            if key != "minute":
                out[key] = out.get(key, 0) + value / len(window)
    return out


__all__ += ["RecentFailure", "RunningWork", "rates"]
