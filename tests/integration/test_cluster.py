"""Redis Cluster: detected from a plain node URL, pipelines spread over the shards, every
script on its pipeline's node (NOSCRIPT reloads there), purge scans every shard, and a
withdraw on pipelines of several shards wakes within milliseconds and leaves nothing
blocked. (The whole integration and worker suite also runs on a cluster: scripts/test.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis.cluster import RedisCluster

from workflow import Client, Settings, Work
from workflow.keys import namespace_pattern, pipeline_keys

from ..cluster import LocalCluster
from ..conftest import CLUSTER
from ..helpers import client_list, wait_until

PREFIX = "wfcluster"


@pytest.fixture
def cc(local_cluster: LocalCluster) -> Iterator[Client]:
    """A client on the local cluster, through the URL of its last node, flushed."""
    with Client(Settings(url=local_cluster.nodes[-1].url, prefix=PREFIX)) as c:
        c.redis.flushall()
        yield c


def keys_by_node(c: Client) -> dict[str, list[bytes]]:
    """This deployment's keys, by the master holding them."""
    r = c.redis
    assert isinstance(r, RedisCluster)
    out = {}
    for node in r.get_primaries():
        conn = r.get_redis_connection(node)
        out[node.name] = list(conn.scan_iter(match=namespace_pattern(PREFIX), count=1000))
    return out


def on_distinct_nodes(c: Client, n: int) -> list[str]:
    """`n` pipeline names whose keys live on `n` different masters."""
    r = c.redis
    assert isinstance(r, RedisCluster)
    chosen: dict[str, str] = {}
    i = 0
    while len(chosen) < n:
        name = f"shard-{i}"
        node = r.get_node_from_key(pipeline_keys(PREFIX, name).queued).name
        chosen.setdefault(node, name)
        i += 1
    return list(chosen.values())


def test_the_session_server_is_what_the_run_asked_for(client: Client) -> None:
    assert client.cluster is CLUSTER


def test_any_node_url_gives_a_cluster_client(local_cluster: LocalCluster) -> None:
    for node in local_cluster.nodes:
        with Client(Settings(url=node.url, prefix=PREFIX)) as c:
            assert c.cluster and isinstance(c.redis, RedisCluster)
            assert len(c.redis.get_primaries()) == 3


def test_pipelines_spread_across_shards(cc: Client) -> None:
    names = [f"spread-{i}" for i in range(30)]
    cc.deposit([Work(pipeline=p, parameters={"i": i}) for i, p in enumerate(names)])
    by_node = keys_by_node(cc)
    holding = [node for node, found in by_node.items() if found]
    assert len(holding) == 3, {n: len(k) for n, k in by_node.items()}
    for name in names:  # every key of one pipeline on one master (one slot)
        tag = f"{{{name}}}".encode()
        assert sum(any(tag in k for k in found) for found in by_node.values()) == 1
    works = cc.withdraw(names, count=30)
    assert sorted(w.pipeline for w in works) == sorted(names)
    for w in works:
        cc.complete(w, "success")
    assert sorted(cc.pipelines()) == sorted(names)
    assert all(cc.counts(p)["success"] == 1 for p in names)


def test_scripts_are_reloaded_on_the_node_that_lost_them(cc: Client) -> None:
    [p, q] = on_distinct_nodes(cc, 2)
    cc.deposit([Work(pipeline=p), Work(pipeline=q)])
    r = cc.redis
    assert isinstance(r, RedisCluster)
    node = r.get_redis_connection(r.get_node_from_key(pipeline_keys(PREFIX, q).queued))
    node.script_flush()  # q's node forgets every script; p's keeps them
    assert not any(node.script_exists(*(s.sha for s in cc._scripts.values())))
    assert [w.pipeline for w in cc.withdraw([p, q], count=2)] == [p, q]
    assert node.script_exists(cc._scripts["withdraw"].sha) == [True]


def test_purge_and_delete_pipeline_scan_every_shard(cc: Client) -> None:
    names = on_distinct_nodes(cc, 3)
    cc.deposit([Work(pipeline=p) for p in names for _ in range(5)])
    deleted = cc.delete_pipeline(names[0])
    assert deleted > 0 and names[0] not in cc.pipelines()
    assert cc.counts(names[1])["queued"] == 5
    assert cc.purge() > 0
    assert not any(keys_by_node(cc).values())


def test_a_withdraw_on_several_shards_wakes_at_once_and_leaves_nothing_blocked(
    cc: Client, local_cluster: LocalCluster
) -> None:
    names = on_distinct_nodes(cc, 3)
    with (
        Client(Settings(url=local_cluster.url, prefix=PREFIX, idle_wait_s=30)) as waiter,
        ThreadPoolExecutor(1) as pool,
    ):
        for target in names:  # each shard in turn wakes the same waiter
            future = pool.submit(waiter.withdraw, names, timeout_s=20)
            wait_until(lambda: len(blocked(cc)) == 3, what="one BLPOP per shard")
            started = time.monotonic()
            cc.deposit([Work(pipeline=target)])
            [work] = future.result(timeout=10)
            assert work.pipeline == target
            assert time.monotonic() - started < 0.5
            wait_until(lambda: not blocked(cc), what="the other BLPOPs to be cancelled")
            cc.complete(work, "success")
        # No wake token was eaten by a cancelled wait: each deposit left its lists as
        # they were (the woken waiter consumed one token, then withdrew).
        assert all(cc.redis.llen(pipeline_keys(PREFIX, p).wake) == 0 for p in names)


def test_a_timed_out_wait_on_several_shards_returns_on_time(cc: Client) -> None:
    names = on_distinct_nodes(cc, 3)
    started = time.monotonic()
    assert cc.withdraw(names, timeout_s=0.3) == []
    assert 0.25 < time.monotonic() - started < 1.5
    assert not blocked(cc)


def blocked(c: Client) -> list[dict]:
    """Connections blocked in a BLPOP now (not merely last used for one)."""
    return [x for x in client_list(c) if x.get("name") == "workflow-wait" and "b" in x["flags"]]
