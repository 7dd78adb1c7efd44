"""A throwaway local Redis Cluster for the tests: 3 masters on free loopback ports.

Each node is a `PrivateServer` started with `--cluster-enabled yes`; `redis-cli --cluster
create` assigns the 16,384 slots, and the cluster is ready once every node reports
`cluster_state:ok`. No replicas: the tests need shards, not failover.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from workflow.errors import ServerError
from workflow.server import PrivateServer, find_binary

READY_TIMEOUT_S = 20.0
"""How long the nodes get to agree on the slot map after `--cluster create`."""


def find_cli() -> str | None:
    """`redis-cli` (or `valkey-cli`) next to the server binary or on PATH; None if absent."""
    server = Path(find_binary())
    for name in ("redis-cli", "valkey-cli"):
        beside = server.with_name(name)
        if beside.exists():
            return str(beside)
        if found := shutil.which(name):
            return found
    return None


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10,000) is free too: a node's port
    must be 55,535 or less, which an ephemeral port often is not."""
    for _ in range(100):
        port = random.randint(20_000, 55_535)
        if all(_bindable(p) for p in (port, port + 10_000)):
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LocalCluster:
    """`masters` cluster nodes, children of this process; `url` names the first one."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = Path(directory)
        self.nodes = [self._node(i) for i in range(masters)]

    def _node(self, i: int) -> PrivateServer:
        return PrivateServer(self.directory / f"node{i}", port=cluster_port(),
                             extra_args=self._cluster_args(i))  # fmt: skip

    def _cluster_args(self, i: int) -> tuple[str, ...]:
        conf = self.directory / f"node{i}" / "nodes.conf"
        return ("--cluster-enabled", "yes", "--cluster-config-file", str(conf),
                "--cluster-node-timeout", "5000")  # fmt: skip

    @property
    def url(self) -> str:
        """A plain node URL, as a user would give it: the client finds the others."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def start(self) -> LocalCluster:
        cli = find_cli()
        if cli is None:
            raise RuntimeError("redis-cli is needed to create the test cluster")
        for i, node in enumerate(self.nodes):
            for attempt in range(3):  # a chosen port can be taken before the bind
                try:
                    node.start()
                    break
                except ServerError:
                    if attempt == 2:
                        raise
                    node = self.nodes[i] = self._node(i)
        addresses = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(self._ok(p) for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    @staticmethod
    def _ok(port: int) -> bool:
        with redis.Redis(port=port, socket_timeout=2) as r:
            info = r.execute_command("CLUSTER", "INFO").decode()
            slots = r.execute_command("CLUSTER", "SLOTS")
        return "cluster_state:ok" in info and sum(s[1] - s[0] + 1 for s in slots) == 16384

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
