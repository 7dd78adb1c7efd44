"""Shared by the fault tests: fleets of `workflow run` subprocesses that can be killed and
restarted, private Redis servers that can be restarted, killed or paused, the execution
log written by `faultfns.logged`, and the exactly-once checks of a finished run."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from workflow import Client, Results, Settings
from workflow.server import PrivateServer

from ..helpers import STATES, entries, keys, wait_until
from ..worker.conftest import WorkerProcess, worker_command, worker_env

ROOT = Path(__file__).resolve().parents[2]
FN = "tests.faults.faultfns."
"""Prefix of the user functions (importable from the repository root)."""


class Fleet:
    """`workflow run` workers on one deployment. Worker `i`'s incarnations are tagged
    `w{i}.{n}` (`$FAULT_WORKER`, written by `faultfns.logged` for every execution)."""

    def __init__(self, url: str, prefix: str, log_dir: Path, exec_log: Path) -> None:
        self.url, self.prefix, self.log_dir, self.exec_log = url, prefix, log_dir, exec_log
        self.procs: dict[int, WorkerProcess] = {}
        self.tags: dict[int, str] = {}
        self.killed: list[str] = []  # tags of the incarnations killed with SIGKILL
        self.retired: list[WorkerProcess] = []
        self._args: dict[int, tuple[tuple[str, ...], int, dict[str, str]]] = {}

    def start(
        self, i: int, *args: str, lease_ms: int = 2000, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """Start worker `i` (again, after a kill: the same arguments)."""
        self._args.setdefault(i, (args, lease_ms, env or {}))
        args, lease_ms, extra = self._args[i]
        n = sum(1 for t in [*self.killed, self.tags.get(i, "")] if t.startswith(f"w{i}."))
        tag = f"w{i}.{n}"
        cmd = worker_command(self.url, self.prefix, *args, lease_ms=lease_ms, sleep=0.2)
        env = worker_env({
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "FAULT_LOG": str(self.exec_log), "FAULT_WORKER": tag, **extra,
        })  # fmt: skip
        proc = WorkerProcess(cmd, self.log_dir / f"worker-{tag}.log", env)
        self.procs[i], self.tags[i] = proc, tag
        return proc

    def kill(self, i: int) -> str:
        """SIGKILL worker `i` (its children die with it); returns the killed tag."""
        proc = self.procs[i]
        proc.signal(signal.SIGKILL)
        proc.proc.wait(10)
        self.killed.append(self.tags[i])
        self.retired.append(self.procs.pop(i))
        return self.tags.pop(i)

    def alive(self) -> list[int]:
        """The workers still running."""
        return [i for i, p in self.procs.items() if p.proc.poll() is None]

    def logs(self) -> str:
        return "\n".join(p.log() for p in [*self.retired, *self.procs.values()])

    def close(self) -> None:
        for proc in [*self.procs.values(), *self.retired]:
            proc.close()


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[Callable[[Client], Fleet]]:
    """`make(client)`: a Fleet on the client's deployment; every worker is killed at teardown."""
    made: list[Fleet] = []

    def make(client: Client) -> Fleet:
        fleet = Fleet(client.settings.url, client.settings.prefix, tmp_path,  # type: ignore[arg-type]
                      tmp_path / "executions.log")  # fmt: skip
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[Callable[..., PrivateServer]]:
    """`make(appendfsync)`: a private server with AOF on, for this test only."""
    made: list[PrivateServer] = []

    def make(appendfsync: str = "everysec") -> PrivateServer:
        server = PrivateServer(tmp_path / f"redis-{len(made)}", appendonly=True,
                               appendfsync=appendfsync)  # fmt: skip
        made.append(server)
        return server.start()

    yield make
    for server in made:
        with contextlib.suppress(ProcessLookupError):
            if server.pid is not None:
                os.kill(server.pid, signal.SIGCONT)  # a paused server cannot shut down
        server.stop(timeout_s=5)


@pytest.fixture
def private_client() -> Iterator[Callable[[PrivateServer], Client]]:
    """`make(server)`: a client on a private server, closed at teardown."""
    made: list[Client] = []

    def make(server: PrivateServer) -> Client:
        c = Client(Settings(url=server.url, prefix="wffault", backoff_base_ms=0, backoff_max_ms=0))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# -- what happened --------------------------------------------------------------------------


def executions(path: Path) -> dict[str, list[tuple[int, str, float]]]:
    """Per work id, its executions as `(attempt, worker tag, time)`, in the order written."""
    runs: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            work_id, attempt, tag, t = line.split()
            runs[work_id].append((int(attempt), tag, float(t)))
    return runs


def ran_after(path: Path, t: float) -> set[str]:
    """The worker tags that started an execution after time `t`."""
    return {tag for runs in executions(path).values() for _, tag, when in runs if when > t}


AUDIT_GROUP = "fault-audit"


def keep_done_stream(client: Client, pipeline: str) -> None:
    """Keep every entry of the pipeline's done stream for `assert_all_succeeded_once`:
    the results indexers trim only what every consumer group has acknowledged, and this
    group reads nothing."""
    client.redis.xgroup_create(keys(client, pipeline).done, AUDIT_GROUP, id="0", mkstream=True)


def assert_all_succeeded_once(client: Client, pipeline: str, ids: set[str]) -> None:
    """Every work of `ids` ended `success` exactly once: one success entry each in the done
    stream (kept by `keep_done_stream`) and nothing else there; the lifetime success
    counter (one increment per finish) equals the number of works; all in the success set
    and no other; every record decodes with status success; the results index finds each
    once."""
    done = entries(client, pipeline)
    statuses = Counter(f[b"status"].decode() for f in done)
    assert statuses == {"success": len(ids)}, f"done stream: {statuses}"
    per_id = Counter(f[b"id"].decode() for f in done)
    duplicates = {i: n for i, n in per_id.items() if n > 1}
    assert not duplicates, f"finished more than once: {duplicates}"
    assert set(per_id) == ids, f"missing from the stream: {sorted(ids - set(per_id))[:10]}"
    k = keys(client, pipeline)
    assert client.counts(pipeline) == dict.fromkeys(STATES, 0) | {"success": len(ids)}
    assert {m.decode() for m in client.redis.zrange(k.success, 0, -1)} == ids
    works = [w for chunk in _chunks(sorted(ids)) for w in client.get_many(pipeline, chunk)]
    bad = [w for w in works if not (hasattr(w, "status") and w.status == "success")]  # type: ignore[union-attr]
    assert not bad, f"records not success: {bad[:5]}"
    stats = client.stats(pipeline)
    assert stats["success"] == len(ids) and "failure" not in stats, stats
    results = Results(client)
    wait_until(lambda: results.count(pipeline, status="success") == len(ids), 30, 0.1,
               what="the results index to hold every work")  # fmt: skip
    found = [w.id for w in results.iterate(pipeline)]
    assert len(found) == len(ids) and set(found) == ids


def _chunks(ids: list[str], size: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


# -- a network between the workers and Redis that can be cut ---------------------------------


class Proxy:
    """A TCP proxy on a free loopback port in front of a Redis server. `cut()` closes every
    connection (with a reset) and refuses new ones until `restore()`: Redis unreachable,
    as after a network failure, while the server itself runs on. `freeze()` makes every
    open connection silently dead (bytes are swallowed, no reset: a firewall that dropped
    its state, a failover behind a virtual IP) while new connections work."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._frozen: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            with contextlib.suppress(OSError):  # linger 0: close with RST, like a dead peer
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()

    def freeze(self) -> None:
        """From now on, open connections carry nothing either way (and never fail)."""
        with self._lock:
            self._frozen |= self._socks

    def close(self) -> None:
        self.cut()
        with self._lock:
            frozen, self._frozen = self._frozen, set()
        for s in frozen:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._socks |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src not in self._frozen:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy() -> Iterator[Callable[[int], Proxy]]:
    """`make(port)`: a cuttable proxy in front of the Redis server on `port`."""
    made: list[Proxy] = []

    def make(port: int) -> Proxy:
        made.append(Proxy(port))
        return made[-1]

    yield make
    for p in made:
        p.close()
