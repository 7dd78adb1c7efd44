"""The operator's side of `Client`: cancel, retry, delete, pause, inspect and count works
and pipelines. A mixin: `Client` provides the Redis plumbing it calls (`redis`, `settings`,
`cluster`, `_run`, `_io`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from workflow import codec, core
from workflow.connection import AnyRedis
from workflow.errors import CorruptWork, InvalidTransition, ValidationError, WorkNotFound
from workflow.keys import (
    namespace_pattern,
    pipeline_keys,
    pipeline_pattern,
    pipelines_key,
    work_key,
)
from workflow.settings import Settings
from workflow.work import Failure, Work

__all__ = ["COUNT_SETS", "Operations"]

T = TypeVar("T")

COUNT_SETS = ("queued", "delayed", "running", "success", "failure", "cancelled")
"""The sets `counts()` reports, by name."""


class Operations:
    """Operator methods of `Client` (see there)."""

    settings: Settings

    @property
    def redis(self) -> AnyRedis:  # provided by Client
        raise NotImplementedError

    @property
    def cluster(self) -> bool:  # provided by Client
        raise NotImplementedError

    def _run(self, call: core.Call) -> Any:  # provided by Client
        raise NotImplementedError

    def _io(self, fn: Callable[[], T], retry_safe: bool) -> T:  # provided by Client
        raise NotImplementedError

    def cancel(self, work: Work | str, *, pipeline: str | None = None, reason: str = "") -> str:
        """Cancel a work that has not finished; returns the status it had."""
        work_id, pipeline = self._locate(work, pipeline)
        failure = Failure(
            kind="cancelled", message=reason or "cancelled by a user", time=time.time()
        )
        call = core.cancel_call(self.settings, pipeline, work_id, failure)
        try:
            before = core.decode_status(self._run(call), work_id, "cancel")
        except InvalidTransition:
            raise InvalidTransition(
                work_id, self.get(work_id, pipeline=pipeline).status, "cancel"
            ) from None
        if isinstance(work, Work):
            work.status, work.error = "cancelled", failure
        return before

    def delete(self, work: Work | str, *, pipeline: str | None = None) -> bool:
        """Delete a work wherever it is. False if it did not exist."""
        try:
            work_id, pipeline = self._locate(work, pipeline)
            core.decode_status(
                self._run(core.delete_call(self.settings, pipeline, work_id)), work_id, "delete"
            )
        except WorkNotFound:
            return False
        return True

    def retry(self, work: Work | str, *, pipeline: str | None = None) -> str:
        """Put a failed or cancelled work back in the queue as a new run (attempt 0, its
        last error kept). Returns the status it had; `InvalidTransition` otherwise."""
        work_id, pipeline = self._locate(work, pipeline)
        reply = self._run(core.retry_call(self.settings, pipeline, work_id))
        if reply == core.ErrorCode.BAD_STATUS:
            raise InvalidTransition(work_id, self.get(work_id, pipeline=pipeline).status, "retry")
        before = core.decode_status(reply, work_id, "retry")
        if isinstance(work, Work):
            work.status, work.attempt = "queued", 0
        return before

    def pause(self, pipeline: str) -> None:
        """Stop handing out works of `pipeline` (deposits, renewals, completions and lease
        recovery go on). Idempotent."""
        key = pipeline_keys(self.settings.prefix, core.check_pipeline(pipeline)).paused
        self._io(lambda: self.redis.set(key, b"1"), True)

    def resume(self, pipeline: str) -> None:
        """Hand out works of `pipeline` again, and wake its idle workers."""
        k = pipeline_keys(self.settings.prefix, core.check_pipeline(pipeline))
        pipe = self.redis.pipeline(transaction=True)  # one slot: both keys carry {pipeline}
        pipe.delete(k.paused)
        pipe.lpush(k.wake, *[b"1"] * self.settings.wake_cap)  # wake every idle worker
        pipe.ltrim(k.wake, 0, self.settings.wake_cap - 1)
        self._io(pipe.execute, True)

    def paused(self, pipeline: str) -> bool:
        """True while `pipeline` is paused."""
        key = pipeline_keys(self.settings.prefix, core.check_pipeline(pipeline)).paused
        return bool(self._io(lambda: self.redis.exists(key), True))

    def ids(self, pipeline: str, state: str, *, limit: int = 100, offset: int = 0) -> list[str]:
        """Ids of `pipeline` in one state (a name from `COUNT_SETS`): queued in withdraw
        order, running by lease expiry, delayed by due time, finished newest first."""
        if state not in COUNT_SETS:
            raise ValidationError("state", f"must be one of {', '.join(COUNT_SETS)}", state)
        for name, value in (("limit", limit), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(name, "must be an integer >= 0", value)
        key = getattr(pipeline_keys(self.settings.prefix, core.check_pipeline(pipeline)), state)
        newest_first = state in ("success", "failure", "cancelled")
        read = self.redis.zrevrange if newest_first else self.redis.zrange
        if limit == 0:
            return []
        raw = self._io(lambda: read(key, offset, offset + limit - 1), True)
        return [m.decode() for m in raw]

    def get_many(self, pipeline: str, ids: list[str]) -> list[Work | CorruptWork | None]:
        """Works of one pipeline by id in one round trip: a Work, a `CorruptWork` error for
        a record that cannot be decoded, or None for an id that does not exist."""
        core.check_pipeline(pipeline)
        pipe = self.redis.pipeline(transaction=False)
        for work_id in ids:
            pipe.hgetall(work_key(self.settings.prefix, pipeline, work_id))
        out: list[Work | CorruptWork | None] = []
        for work_id, record in zip(ids, self._io(pipe.execute, True), strict=True):
            try:
                out.append(codec.decode_hash(work_id, record) if record else None)
            except CorruptWork as exc:
                out.append(exc)
        return out

    def delete_pipeline(self, pipeline: str) -> int:
        """Delete a pipeline and every work in it, whatever their state. Returns the number
        of keys deleted. Workers still holding its works find them gone."""
        deleted = self._unlink(
            pipeline_pattern(self.settings.prefix, core.check_pipeline(pipeline))
        )
        self._io(lambda: self.redis.srem(pipelines_key(self.settings.prefix), pipeline), True)
        self._registered.discard(pipeline)
        return deleted

    def requeue_expired(self, pipeline: str) -> tuple[int, int]:
        """Run the recovery sweep now: `(expired leases reclaimed, delayed works promoted)`."""
        core.check_pipeline(pipeline)
        reclaimed, promoted = self._run(
            core.requeue_expired_call(self.settings, pipeline, random.random())
        )
        return int(reclaimed), int(promoted)

    # -- reads --------------------------------------------------------------------------

    def get(self, work_id: str, *, pipeline: str | None = None) -> Work:
        """A work by id; without `pipeline`, every known pipeline is searched first (one
        more round trip). `WorkNotFound` if absent, `CorruptWork` if its record is invalid."""
        if not isinstance(work_id, str) or not work_id:
            raise ValidationError("id", "must be a non-empty string", work_id)
        [found] = self.get_many(pipeline or self._find(work_id), [work_id])
        if found is None:
            raise WorkNotFound(work_id, pipeline)
        if isinstance(found, CorruptWork):
            raise found
        return found

    def pipelines(self) -> list[str]:
        """Every pipeline ever deposited to, sorted."""
        members = self._io(lambda: self.redis.smembers(pipelines_key(self.settings.prefix)), True)
        return sorted(m.decode() for m in members)

    def counts(self, pipeline: str) -> dict[str, int]:
        """Works of `pipeline` by state: queued, delayed, running, success, failure, cancelled."""
        k = pipeline_keys(self.settings.prefix, core.check_pipeline(pipeline))
        pipe = self.redis.pipeline(transaction=False)
        for name in COUNT_SETS:
            pipe.zcard(getattr(k, name))
        return dict(zip(COUNT_SETS, self._io(pipe.execute, True), strict=True))

    def stats(self, pipeline: str) -> dict[str, int]:
        """Lifetime counters of `pipeline` (deposited, withdrawn, success, retried, ...)."""
        k = pipeline_keys(self.settings.prefix, core.check_pipeline(pipeline))
        raw = self._io(lambda: self.redis.hgetall(k.stats), True)
        return {key.decode(): int(value) for key, value in raw.items()}

    def purge(self) -> int:
        """Delete every key of this deployment (its prefix): all pipelines, works and
        worker records. Returns the number of keys deleted. For tests and demos."""
        deleted = self._unlink(namespace_pattern(self.settings.prefix))
        self._registered.clear()
        return deleted

    def _unlink(self, pattern: str) -> int:
        """Delete the keys matching a SCAN pattern, in batches; how many there were."""
        found = self._io(lambda: list(self.redis.scan_iter(match=pattern, count=1000)), True)
        for i in range(0, len(found), 1000):
            self._io(lambda batch=found[i : i + 1000]: self.redis.unlink(*batch), True)
        return len(found)

    def _locate(self, work: Work | str, pipeline: str | None) -> tuple[str, str]:
        if isinstance(work, Work):
            if work.id is None:
                raise ValidationError("id", "the work has not been deposited (no id)")
            return work.id, work.pipeline
        if pipeline is None:
            return work, self._find(work)
        return work, core.check_pipeline(pipeline)

    def _find(self, work_id: str) -> str:
        """The pipeline holding `work_id` (one round trip; the record is not decoded, so
        a corrupt work can still be cancelled or deleted by id)."""
        if not isinstance(work_id, str) or not work_id:
            raise ValidationError("id", "must be a non-empty string", work_id)
        names = self.pipelines()
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.exists(work_key(self.settings.prefix, name, work_id))
        for name, found in zip(names, self._io(pipe.execute, True), strict=True):
            if found:
                return name
        raise WorkNotFound(work_id)
