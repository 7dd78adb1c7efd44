"""The worker registry: each worker's heartbeat record, and the list of live ones.

A worker publishes its record every heartbeat with a TTL, and its name in a sorted set
scored by the beat; a dead worker's record expires and its name is pruned, so the status
view shows live workers only.
"""

from __future__ import annotations

import logging

import msgspec

from workflow.client import Client
from workflow.keys import worker_key, workers_key

__all__ = ["WorkerInfo", "list_workers", "publish", "withdraw"]

log = logging.getLogger("workflow.registry")


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A worker's heartbeat record, as `workflow status` shows it."""

    name: str
    host: str
    pid: int
    pipelines: list[str]
    function: str | None
    concurrency: int
    started: float
    beat: float
    processed: int = 0
    failed: int = 0
    current: list[str] = []


def publish(client: Client, info: WorkerInfo, ttl_s: float) -> None:
    """Write `info` (expiring after `ttl_s`) and prune names silent for 3 * `ttl_s`."""
    prefix = client.settings.prefix
    pipe = client.redis.pipeline(transaction=False)
    pipe.set(worker_key(prefix, info.name), msgspec.json.encode(info), px=int(ttl_s * 1000))
    pipe.zadd(workers_key(prefix), {info.name: int(info.beat * 1000)})
    pipe.zremrangebyscore(workers_key(prefix), "-inf", int((info.beat - 3 * ttl_s) * 1000))
    client._io(pipe.execute, True)


def withdraw(client: Client, name: str) -> None:
    """Remove a stopping worker's record and name."""
    prefix = client.settings.prefix
    client._io(lambda: client.redis.zrem(workers_key(prefix), name), True)
    client._io(lambda: client.redis.delete(worker_key(prefix, name)), True)


def list_workers(client: Client) -> list[WorkerInfo]:
    """The workers whose heartbeat has not expired, by name."""
    prefix = client.settings.prefix
    names = [
        n.decode()
        for n in client._io(lambda: client.redis.zrange(workers_key(prefix), 0, -1), True)
    ]
    if not names:
        return []
    pipe = client.redis.pipeline(transaction=False)  # GETs, not MGET: one slot per key
    for n in names:
        pipe.get(worker_key(prefix, n))
    records = client._io(pipe.execute, True)
    out = []
    for name, record in zip(names, records, strict=True):
        if record:
            try:
                out.append(_worker_decoder.decode(record))
            except msgspec.MsgspecError:
                log.warning("unreadable worker record %r: skipped", name)
    return out


_worker_decoder = msgspec.json.Decoder(WorkerInfo)
