"""Helpers shared by the test modules: a pipeline's keys and records, Redis time, where a
work sits, the done stream, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.cluster import RedisCluster

from workflow import Client
from workflow.keys import PipelineKeys, pipeline_keys, work_key

T = TypeVar("T")

STATES = ("queued", "delayed", "running", "success", "failure", "cancelled")
"""The names of a pipeline's sorted sets, in the order `where_ordered` lists them."""


def keys(client: Client, pipeline: str) -> PipelineKeys:
    """The Redis keys of `pipeline` under the client's prefix."""
    return pipeline_keys(client.settings.prefix, pipeline)


def record(client: Client, work_id: str, pipeline: str) -> dict[bytes, bytes]:
    """The raw hash of work `work_id` in `pipeline`."""
    return client.redis.hgetall(work_key(client.settings.prefix, pipeline, work_id))


def now_ms(client: Client) -> int:
    """The Redis server's clock in milliseconds."""
    sec, usec = client.redis.time()
    return sec * 1000 + usec // 1000


def where(client: Client, work_id: str, pipeline: str) -> set[str]:
    """The names of the sorted sets holding `work_id`."""
    k = keys(client, pipeline)
    return {n for n in STATES if client.redis.zscore(getattr(k, n), work_id) is not None}


def where_ordered(client: Client, work_id: str, pipeline: str) -> list[str]:
    """The names of the sorted sets holding `work_id`, as a list in `STATES` order."""
    k = keys(client, pipeline)
    return [n for n in STATES if client.redis.zscore(getattr(k, n), work_id) is not None]


def entries(client: Client, pipeline: str) -> list[dict[bytes, bytes]]:
    """The fields of every entry of the pipeline's done stream, oldest first."""
    return [fields for _, fields in client.redis.xrange(keys(client, pipeline).done)]


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float = 5.0,
    poll_s: float = 0.01,
    what: str | None = None,
) -> T:
    """Poll `predicate` every `poll_s` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if what is None:
                raise AssertionError(f"condition not met within {timeout_s} s")
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def client_list(client: Client) -> list[dict[str, Any]]:
    """CLIENT LIST of the server, or of every node of a cluster."""
    r = client.redis
    if isinstance(r, RedisCluster):
        per_node = r.client_list(target_nodes=RedisCluster.ALL_NODES)
        return [c for clients in per_node.values() for c in clients]
    return r.client_list()


def command_calls(client: Client, command: str) -> int:
    """How many times the server (every node of a cluster) has run `command`."""
    r = client.redis
    nodes = r.get_primaries() if isinstance(r, RedisCluster) else [None]
    total = 0
    for node in nodes:
        stats = r.info("commandstats", **({"target_nodes": node} if node else {}))
        total += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return total
