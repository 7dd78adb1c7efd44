"""Every Redis key name `workflow` uses is built here, and only here.

All keys of one pipeline share the hash tag `{pipeline}`, so every Lua script touches a
single Redis Cluster slot:

    {prefix}:{{p}}:queued      ZSET  id -> (5 - priority) * 2**42 + sequence (lowest first)
    {prefix}:{{p}}:running     ZSET  id -> lease expiry, ms (Redis clock)
    {prefix}:{{p}}:delayed     ZSET  id -> due time, ms (retry backoff, scheduled start)
    {prefix}:{{p}}:success     ZSET  id -> stop time, ms
    {prefix}:{{p}}:failure     ZSET  id -> stop time, ms
    {prefix}:{{p}}:cancelled   ZSET  id -> stop time, ms
    {prefix}:{{p}}:seq         STRING  FIFO sequence counter
    {prefix}:{{p}}:stats       HASH  lifetime counters (deposited, withdrawn, success, ...)
    {prefix}:{{p}}:done        STREAM  one entry per finished work (results indexer input)
    {prefix}:{{p}}:wake        LIST  wake-up tokens for blocked withdrawers
    {prefix}:{{p}}:paused      STRING  exists while the pipeline is paused
    {prefix}:{{p}}:tp:<minute> HASH  finishes (and deposits) in that minute, by status; 2 h TTL
    {prefix}:{{p}}:work:<id>   HASH  one work record
    {prefix}:{{p}}:retention   HASH  the results retention policy (max_age_s, max_count)
    {prefix}:{{p}}:ix:<field>:<value>  ZSET  results index: id -> stop time, ms, of finished
                               works with that value (field: event, tag, user, site, group)

and global keys, written outside the per-pipeline scripts:

    {prefix}:pipelines         SET   every pipeline ever deposited to
    {prefix}:workers           ZSET  worker name -> last heartbeat, ms
    {prefix}:worker:<name>     STRING  the worker's heartbeat record (JSON, with a TTL)
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DEFAULT_PREFIX",
    "INDEX_FIELDS",
    "PipelineKeys",
    "index_key",
    "namespace_pattern",
    "pipeline_keys",
    "pipeline_pattern",
    "pipelines_key",
    "throughput_key",
    "work_key",
    "worker_key",
    "workers_key",
]

DEFAULT_PREFIX = "workflow"
"""Namespace of every key; two deployments on one server use two prefixes."""
INDEX_FIELDS = ("event", "tag", "user", "site", "group")
"""Fields of the results index; `index.lua` derives the same names from the `ix` prefix."""


class PipelineKeys(NamedTuple):
    """The keys of one pipeline; `work`, `tp` and `ix` are prefixes (records, minute
    counters, results indexes)."""

    queued: str
    running: str
    delayed: str
    success: str
    failure: str
    cancelled: str
    seq: str
    stats: str
    done: str
    wake: str
    paused: str
    retention: str
    tp: str
    work: str
    ix: str


def pipeline_keys(prefix: str, pipeline: str) -> PipelineKeys:
    """The keys of `pipeline` under `prefix` (names are validated by the caller)."""
    base = f"{prefix}:{{{pipeline}}}:"
    return PipelineKeys(
        queued=base + "queued",
        running=base + "running",
        delayed=base + "delayed",
        success=base + "success",
        failure=base + "failure",
        cancelled=base + "cancelled",
        seq=base + "seq",
        stats=base + "stats",
        done=base + "done",
        wake=base + "wake",
        paused=base + "paused",
        retention=base + "retention",
        tp=base + "tp:",
        work=base + "work:",
        ix=base + "ix:",
    )


def index_key(prefix: str, pipeline: str, field: str, value: str | int) -> str:
    """The results index of one field value (events are written as decimal integers)."""
    if field not in INDEX_FIELDS:
        raise ValueError(f"no results index for {field!r}")
    return f"{prefix}:{{{pipeline}}}:ix:{field}:{value}"


def throughput_key(prefix: str, pipeline: str, minute: int) -> str:
    """The per-minute counters of `pipeline` (minute = unix time // 60)."""
    return f"{prefix}:{{{pipeline}}}:tp:{minute}"


def pipeline_pattern(prefix: str, pipeline: str) -> str:
    """SCAN pattern matching every key of one pipeline."""
    return f"{prefix}:{{{pipeline}}}:*"


def work_key(prefix: str, pipeline: str, work_id: str) -> str:
    """The hash holding one work record."""
    return f"{prefix}:{{{pipeline}}}:work:{work_id}"


def pipelines_key(prefix: str) -> str:
    """The global set of pipeline names."""
    return f"{prefix}:pipelines"


def namespace_pattern(prefix: str) -> str:
    """SCAN pattern matching every key of a deployment."""
    return f"{prefix}:*"


def workers_key(prefix: str) -> str:
    """ZSET of live worker names scored by their last heartbeat (ms)."""
    return f"{prefix}:workers"


def worker_key(prefix: str, name: str) -> str:
    """One worker's heartbeat record (JSON, expires when the worker stops beating)."""
    return f"{prefix}:worker:{name}"
