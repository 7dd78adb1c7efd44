"""The sans-I/O core: build `(script, keys, args)` for each transition and decode replies.

Nothing here talks to Redis, so the sync client (and an async one) are a few lines per
method and the logic lives once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from workflow import codec
from workflow.errors import ErrorCode, ValidationError, raise_for_code
from workflow.keys import PipelineKeys, pipeline_keys, work_key
from workflow.settings import Settings
from workflow.work import NAME_RE, Failure, Work

__all__ = [
    "CLASS",
    "Call",
    "Filters",
    "RenewResult",
    "cancel_call",
    "check_pipeline",
    "complete_batch_call",
    "complete_call",
    "decode_renew",
    "decode_status",
    "decode_withdraw",
    "delete_call",
    "deposit_call",
    "priority_range",
    "renew_call",
    "requeue_expired_call",
    "retry_call",
    "update_call",
    "withdraw_call",
]

Outcome = Literal["success", "failure", "release"]
RenewResult = Literal["ok", "missing", "lost", "cancelled"]
_RENEW: dict[int, RenewResult] = {
    1: "ok",
    ErrorCode.NOT_FOUND: "missing",
    ErrorCode.LEASE_LOST: "lost",
    ErrorCode.CANCELLED: "cancelled",
}
_json = msgspec.json.Encoder()
FILTER_MAX = 100
"""Most events and tags one withdraw filter may list (bounds the script's work)."""


@dataclass(frozen=True, slots=True)
class Call:
    """One script invocation. `retry_safe`: re-sending it after a lost reply is harmless."""

    script: str
    keys: list[str]
    args: list[Any]
    retry_safe: bool


@dataclass(frozen=True, slots=True)
class Filters:
    """Withdraw filters of the original API. Cost: one withdraw examines at most
    `Settings.scan_limit` queued works when any filter other than `priority` is set
    (`priority` alone is an exact score range, O(log n))."""

    event: tuple[int, ...] = ()
    site: str = ""
    user: str = ""
    tags: tuple[str, ...] = ()
    tags_mode: Literal["any", "all"] = "any"
    priority: int = 0
    parent: str = ""

    @classmethod
    def make(
        cls,
        *,
        event: int | list[int] | None = None,
        site: str | None = None,
        user: str | None = None,
        tags: list[str] | None = None,
        tags_mode: str = "any",
        priority: int | None = None,
        parent: str | None = None,
    ) -> Filters:
        """Validated filters; None means "any"."""
        events = [event] if isinstance(event, int) and not isinstance(event, bool) else event
        if events is not None and not (
            isinstance(events, list | tuple)
            and all(isinstance(e, int) and not isinstance(e, bool) for e in events)
        ):
            raise ValidationError("event", "filter must be an integer or a list of integers", event)
        if isinstance(tags, str) or (
            tags is not None
            and not (isinstance(tags, list | tuple) and all(isinstance(t, str) for t in tags))
        ):
            raise ValidationError("tags", "filter must be a list of strings", tags)
        if len(events or ()) > FILTER_MAX or len(tags or ()) > FILTER_MAX:
            raise ValidationError("filters", f"at most {FILTER_MAX} events and {FILTER_MAX} tags")
        if tags_mode not in ("any", "all"):
            raise ValidationError("tags_mode", "must be 'any' or 'all'", tags_mode)
        if priority is not None and (
            isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 5
        ):
            raise ValidationError("priority", "filter must be an integer from 1 to 5", priority)
        for name, value in (("site", site), ("user", user), ("parent", parent)):
            if value is not None and not isinstance(value, str):
                raise ValidationError(name, "filter must be a string", value)
        return cls(
            event=tuple(events or ()),
            site=site or "",
            user=user or "",
            tags=tuple(tags or ()),
            tags_mode=tags_mode,  # type: ignore[arg-type]
            priority=priority or 0,
            parent=parent or "",
        )


CLASS = 2**42
"""Queue scores are `(5 - priority) * CLASS + sequence` (see `lua/include/lifecycle.lua`)."""


def priority_range(priority: int) -> tuple[int, int]:
    """The `[low, high)` queue-score range of one priority class."""
    return (5 - priority) * CLASS, (6 - priority) * CLASS


def check_pipeline(pipeline: Any) -> str:
    """The pipeline name, or `ValidationError`: it becomes part of key names."""
    if not isinstance(pipeline, str) or not NAME_RE.fullmatch(pipeline):
        raise ValidationError(
            "pipeline", "must be 1-128 characters of letters, digits, '-', '_' or '.'", pipeline
        )
    return pipeline


def _keys(s: Settings, pipeline: str) -> PipelineKeys:
    return pipeline_keys(s.prefix, pipeline)


def deposit_call(s: Settings, pipeline: str, works: list[Work], delay_ms: int = 0) -> Call:
    """Deposit works of one pipeline; every work already has its id."""
    k = _keys(s, pipeline)
    args: list[Any] = [k.work, delay_ms, s.wake_cap, k.tp]
    for w in works:
        fields = codec.record_fields(w)
        args += [w.id, w.priority, len(fields) // 2, *fields]
    return Call("deposit", [k.queued, k.delayed, k.seq, k.stats, k.wake], args, retry_safe=True)


def withdraw_call(
    s: Settings, pipeline: str, count: int, f: Filters, token_base: str, jitter: float,
    start_now: int | None = None,
) -> Call:
    """Lease up to `count` works of one pipeline; all but the first `start_now` (default:
    all start now) are leased ahead (see withdraw.lua)."""
    k = _keys(s, pipeline)
    args = [
        k.work, count, s.lease_ms, s.grace_ms, token_base, s.scan_limit, s.recover_limit,
        s.backoff_base_ms, s.backoff_max_ms, jitter, s.stream_maxlen,
        f.priority, f.site, f.user, f.parent,
        _json.encode(list(f.tags)) if f.tags else "", f.tags_mode,
        _json.encode(list(f.event)) if f.event else "", s.wake_cap, k.tp,
        count if start_now is None else start_now,
    ]  # fmt: skip
    keys = [k.queued, k.running, k.delayed, k.failure, k.seq, k.stats, k.done, k.wake, k.paused]
    return Call("withdraw", keys, args, retry_safe=False)


def decode_withdraw(reply: list[Any]) -> tuple[list[tuple[str, dict[str, bytes]]], int]:
    """`([(id, record), ...], wait_ms)` from the withdraw script's reply. Names that are
    not UTF-8 (planted behind the library's back) cannot raise here: decoding the record
    judges it (an unknown field is ignored, a bad id makes it corrupt)."""
    wait_ms = int(reply[0])
    records = []
    for i in range(1, len(reply), 2):
        flat = reply[i + 1]
        record = {flat[j].decode(errors="replace"): flat[j + 1] for j in range(0, len(flat), 2)}
        records.append((reply[i].decode(errors="replace"), record))
    return records, wait_ms


def renew_call(s: Settings, pipeline: str, leases: list[tuple[str, str]]) -> Call:
    """Renew `(id, token)` leases of one pipeline."""
    k = _keys(s, pipeline)
    args: list[Any] = [k.work, s.lease_ms, s.grace_ms]
    for work_id, token in leases:
        args += [work_id, token]
    return Call("renew", [k.running], args, retry_safe=True)


def decode_renew(reply: list[int]) -> list[RenewResult]:
    """Per lease: ok, missing (deleted), lost (another attempt owns it), cancelled."""
    return [_RENEW[int(code)] for code in reply]


def complete_call(
    s: Settings,
    pipeline: str,
    work_id: str,
    token: str,
    outcome: Outcome,
    jitter: float,
    *,
    terminal: bool = False,
    changes: tuple[str, list[Any]] = ("", []),
) -> Call:
    """Finish the attempt of work `work_id` held with `token`, storing `changes` (fields
    to delete, field/value pairs) first. Its reply is a list of one status."""
    return complete_batch_call(s, pipeline, [(work_id, token, outcome, terminal, jitter, changes)])


Finishing = tuple[str, str, Outcome, bool, float, tuple[str, list[Any]]]
"""One attempt to finish: id, token, outcome, terminal, jitter, (fields to delete, pairs)."""


def complete_batch_call(s: Settings, pipeline: str, items: list[Finishing]) -> Call:
    """Finish several attempts of one pipeline in one script call (each fenced by its own
    token); the reply lists each one's new status or error code, in order."""
    k = _keys(s, pipeline)
    args: list[Any] = [
        k.work, s.backoff_base_ms, s.backoff_max_ms, s.stream_maxlen, s.wake_cap, k.tp,
    ]  # fmt: skip
    for work_id, token, outcome, terminal, jitter, (dels, pairs) in items:
        args += [work_id, token, outcome, "1" if terminal else "0", jitter, dels,
                 len(pairs) // 2, *pairs]  # fmt: skip
    keys = [
        k.queued, k.running, k.delayed, k.success, k.failure, k.seq, k.stats, k.done, k.wake,
    ]  # fmt: skip
    return Call("complete", keys, args, retry_safe=True)


def completion_fields(
    work: Work, outcome: Outcome, failure: Failure | None, *, data_only: bool = False
) -> tuple[str, list[Any]]:
    """What a finishing attempt stores: every field the user may change (`data_only`:
    only `results`, `products`, `plots`, as a worker does), plus the failure."""
    dels, pairs = codec.data_fields(work) if data_only else codec.update_fields(work)
    if outcome == "failure":
        dels = " ".join(f for f in dels.split() if f != "error")
        pairs += ["error", codec.encode_failure(failure or Failure(message="failed"))]
    return dels, pairs


def update_call(s: Settings, work: Work, token: str, status: str) -> Call:
    """Store the user-changeable fields of `work` without changing its state."""
    k = _keys(s, work.pipeline)
    wkey = work_key(s.prefix, work.pipeline, work.id)  # type: ignore[arg-type]
    dels, pairs = codec.update_fields(work)
    args = [work.id, token, status, s.stream_maxlen, dels, *pairs]
    return Call("update", [wkey, k.queued, k.done], args, retry_safe=True)


def cancel_call(s: Settings, pipeline: str, work_id: str, failure: Failure) -> Call:
    """Cancel one work."""
    k = _keys(s, pipeline)
    keys = [
        work_key(s.prefix, pipeline, work_id),
        k.queued, k.running, k.delayed, k.cancelled, k.stats, k.done,
    ]  # fmt: skip
    args = [work_id, codec.encode_failure(failure), s.stream_maxlen, k.tp]
    return Call("cancel", keys, args, retry_safe=True)


def retry_call(s: Settings, pipeline: str, work_id: str) -> Call:
    """Put a failed or cancelled work back in the queue."""
    k = _keys(s, pipeline)
    keys = [
        work_key(s.prefix, pipeline, work_id),
        k.queued, k.failure, k.cancelled, k.seq, k.stats, k.wake,
    ]  # fmt: skip
    # Not re-sent after a lost reply: had it applied and the work failed again meanwhile,
    # a re-send would start another run.
    return Call("retry", keys, [work_id, s.wake_cap, k.ix], retry_safe=False)


def delete_call(s: Settings, pipeline: str, work_id: str) -> Call:
    """Delete one work."""
    k = _keys(s, pipeline)
    keys = [
        work_key(s.prefix, pipeline, work_id),
        k.queued, k.running, k.delayed, k.success, k.failure, k.cancelled, k.stats,
    ]  # fmt: skip
    return Call("delete", keys, [work_id, k.ix], retry_safe=True)


def requeue_expired_call(s: Settings, pipeline: str, jitter: float) -> Call:
    """The recovery sweep of one pipeline."""
    k = _keys(s, pipeline)
    keys = [k.queued, k.running, k.delayed, k.failure, k.seq, k.stats, k.done, k.wake]
    args = [
        k.work, s.recover_limit, s.backoff_base_ms, s.backoff_max_ms, jitter, s.stream_maxlen,
        s.wake_cap, k.tp,
    ]  # fmt: skip
    return Call("requeue_expired", keys, args, retry_safe=True)


def decode_status(reply: Any, work_id: str, operation: str) -> str:
    """A status string from a script, or the exception its negative code stands for."""
    if isinstance(reply, int):
        raise_for_code(reply, work_id, operation=operation)
    return reply.decode() if isinstance(reply, bytes) else str(reply)


__all__ += ["ErrorCode", "completion_fields"]
