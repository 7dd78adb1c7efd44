"""A throwaway local Redis Cluster for the tests: 3 masters on free loopback ports.

Each node is a `PrivateServer` started with `--cluster-enabled yes`; `redis-cli --cluster
create` assigns the 16,384 slots, and the cluster is ready once every node reports
`cluster_state:ok`. No replicas: the tests need shards, not failover.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

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


class LocalCluster:
    """`masters` cluster nodes, children of this process; `url` names the first one."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = Path(directory)
        self.nodes = [
            PrivateServer(self.directory / f"node{i}", extra_args=self._cluster_args(i))
            for i in range(masters)
        ]

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
        for node in self.nodes:
            node.start()
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
