"""Redis clients built on purpose, not with redis-py's defaults.

redis-py's defaults (a 5 s socket timeout and automatic retries that re-send commands)
would turn a long blocking wait into a `TimeoutError` and could re-send a withdraw whose
reply was lost. So: RESP2 (hiredis parses it), no automatic retries (the client retries
only what is safe to repeat), a bounded socket timeout for commands, and for the
blocking wake-up connections the longest wait they are used for plus that bound (a reply
that has not come by then never will: the connection died without a reset), TCP
keepalive on both (TCP only: unix sockets have none).

Redis Cluster is detected, not configured: `connect(url)` asks the node the URL names
(`INFO cluster`) and, on a cluster node, returns a `RedisCluster` with the same settings
(still no automatic re-sends after a connection error; MOVED/ASK redirections are
followed, as they re-send nothing that ran). Every script touches one slot, so it runs on
the node owning its pipeline. A BLPOP on several pipelines' wake lists would be
cross-slot: `WakeWaiter` blocks on each slot in parallel instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from workflow.errors import ValidationError

__all__ = [
    "COMMAND_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "AnyRedis",
    "WakeWaiter",
    "blocking_client",
    "command_client",
    "connect",
]

log = logging.getLogger("workflow")

CONNECT_TIMEOUT_S = 2.0
"""Connecting fails fast: a dead server is reported within this long."""
COMMAND_TIMEOUT_S = 10.0
"""Longest wait for the reply to one command or script (scripts are bounded, ~ms)."""
HEALTH_CHECK_S = 30
"""An idle pooled connection is PINGed before reuse after this many seconds."""
UNBLOCK_POLL_S = 0.01
"""How often a cancelled parallel wait re-sends CLIENT UNBLOCK until every wait is over."""

AnyRedis = redis.Redis | RedisCluster
"""A standalone or a cluster client: both offer the commands `workflow` uses."""


def _options(url: str, socket_timeout: float | None, name: str) -> dict[str, Any]:
    tcp = {} if url.startswith("unix:") else {"socket_keepalive": True}
    return {
        "protocol": 2,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": socket_timeout,
        "decode_responses": False,
        "client_name": name,
        **tcp,
    }


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValidationError("url", "must be a redis://, rediss:// or unix:// URL")


@contextlib.contextmanager
def _parsing_url() -> Any:
    """redis-py's URL parser raises ValueError/TypeError: a `ValidationError` on `url`
    (which is not echoed: it may hold a password)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise ValidationError("url", f"is not a valid Redis URL ({exc})") from None


def _client(url: str, socket_timeout: float | None, name: str) -> redis.Redis:
    _check_url(url)
    with _parsing_url():
        return redis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=HEALTH_CHECK_S,
            **_options(url, socket_timeout, name),
        )


def command_client(url: str) -> redis.Redis:
    """For scripts and reads on a standalone server: bounded socket timeout, no retries."""
    return _client(url, COMMAND_TIMEOUT_S, "workflow")


def blocking_client(url: str, longest_wait_s: float) -> redis.Redis:
    """For blocking wake-up waits (BLPOP) of at most `longest_wait_s`: the socket timeout
    is that plus `COMMAND_TIMEOUT_S`, so a connection that died silently (no reset: a
    firewall forgot it, a failover moved the address) cannot hold an idle worker forever."""
    return _client(url, longest_wait_s + COMMAND_TIMEOUT_S, "workflow-wait")


def cluster_client(url: str) -> RedisCluster:
    """For scripts and reads on a cluster; `url` names any node (the others are found)."""
    _check_url(url)
    with _parsing_url():
        return RedisCluster.from_url(
            url, retry=Retry(NoBackoff(), 0), **_options(url, COMMAND_TIMEOUT_S, "workflow")
        )


def connect(url: str) -> AnyRedis:
    """The command client for `url`: a `RedisCluster` if the server is a cluster node.

    One round trip (`INFO cluster`); a redis-py `ConnectionError` if unreachable. A user
    not allowed INFO is taken to be on a standalone server (see the README's ACL line)."""
    plain = command_client(url)
    if url.startswith("unix:"):  # RedisCluster speaks TCP only
        return plain
    try:
        enabled = plain.info("cluster").get("cluster_enabled")
    except redis.exceptions.NoPermissionError:
        log.warning("INFO is not permitted to this Redis user: assuming a standalone server")
        return plain
    except Exception:
        plain.close()
        raise
    if not enabled:
        return plain
    plain.close()
    return cluster_client(url)


def _node_url(url: str, host: str, port: int) -> str:
    """`url` with its host and port replaced: same scheme, credentials and TLS options."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Blocker:
    """One dedicated blocking connection to a cluster node, and its CLIENT ID."""

    def __init__(self, url: str, node: Any, socket_timeout: float) -> None:
        self.node = node
        self.redis = redis.Redis.from_url(
            _node_url(url, node.host, node.port),
            single_connection_client=True,
            retry=Retry(NoBackoff(), 0),
            **_options(url, socket_timeout, "workflow-wait"),
        )
        self.id = int(self.redis.client_id())

    def close(self) -> None:
        self.redis.close()


class WakeWaiter:
    """Waits on the wake lists of several pipelines of a Redis Cluster.

    One BLPOP can only name keys of one slot. So each slot gets its own BLPOP on a
    dedicated connection, run in parallel; the first token ends the wait and the other
    BLPOPs are cancelled at once with CLIENT UNBLOCK (they return as if timed out), so
    nothing is left blocked and no later token is eaten. A token popped by a second BLPOP
    in the same instant is pushed back for another waiter. One slot needs no thread.
    """

    def __init__(self, cluster: RedisCluster, url: str, longest_wait_s: float) -> None:
        self._cluster = cluster
        self._url = url
        self._socket_timeout = longest_wait_s + COMMAND_TIMEOUT_S  # as `blocking_client`
        self._lock = threading.Lock()
        self._free: dict[int, list[_Blocker]] = {}  # slot -> idle connections to its node
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._warned = False

    def wait(self, keys: list[str], timeout_s: float) -> bool:
        """Block until a token arrives on any of `keys` (True) or `timeout_s` passes."""
        by_slot: dict[int, list[str]] = {}
        for key in keys:
            by_slot.setdefault(self._cluster.keyslot(key), []).append(key)
        if len(by_slot) == 1:
            [(slot, slot_keys)] = by_slot.items()
            return self._blpop(slot, slot_keys, timeout_s, None) is not None
        cancel = threading.Event()
        started: dict[Future[Any], tuple[int, list[_Blocker]]] = {}
        executor = self._pool()
        for slot, slot_keys in by_slot.items():
            holder: list[_Blocker] = []  # the connection the thread blocks on, once it has one
            fut = executor.submit(self._blpop, slot, slot_keys, timeout_s, cancel, holder)
            started[fut] = (slot, holder)
        try:
            wait(started, timeout=timeout_s + CONNECT_TIMEOUT_S, return_when=FIRST_COMPLETED)
        finally:
            self._cancel(cancel, started)
        popped = [f.result() for f in started if f.exception() is None and f.result()]
        errors = [f.exception() for f in started if f.exception() is not None]
        for key, token in popped[1:]:  # one wake is all we need: give the others back
            with contextlib.suppress(redis.RedisError):
                self._cluster.lpush(key, token)
        if errors and not popped:
            raise errors[0]  # type: ignore[misc]
        return bool(popped)

    def _cancel(self, cancel: threading.Event, started: dict[Future[Any], Any]) -> None:
        """Stop every BLPOP still blocked, and wait until all have returned."""
        cancel.set()
        pending = {f for f in started if not f.done()}
        while pending:
            for f in pending:
                _, holder = started[f]
                if holder:
                    self._unblock(holder[0])
            _, pending = wait(pending, timeout=UNBLOCK_POLL_S)

    def _unblock(self, blocker: _Blocker) -> None:
        try:
            self._cluster.get_redis_connection(blocker.node).client_unblock(blocker.id)
        except redis.exceptions.NoPermissionError as exc:
            if not self._warned:  # the waits still end, but only at their timeout
                log.warning("cannot cancel a wake-up wait (%s): grant +client|unblock", exc)
                self._warned = True
        except redis.RedisError:
            pass  # the node is gone: its wait ends with its connection

    def _blpop(
        self,
        slot: int,
        keys: list[str],
        timeout_s: float,
        cancel: threading.Event | None,
        holder: list[_Blocker] | None = None,
    ) -> tuple[bytes, bytes] | None:
        blocker = self._take(slot, keys[0])
        if holder is not None:
            holder.append(blocker)
        try:
            if cancel is not None and cancel.is_set():
                reply = None
            else:
                reply = blocker.redis.blpop(keys, timeout=round(timeout_s, 3))
        except redis.ResponseError as exc:  # MOVED: the slot moved; ask the cluster again
            blocker.close()
            if str(exc).startswith(("MOVED", "ASK")):
                self._cluster.nodes_manager.initialize()
                return None
            raise
        except BaseException:
            blocker.close()
            raise
        self._give(slot, blocker)
        return reply

    def _take(self, slot: int, key: str) -> _Blocker:
        with self._lock:
            free = self._free.get(slot)
            if free:
                return free.pop()
        return _Blocker(self._url, self._cluster.get_node_from_key(key), self._socket_timeout)

    def _give(self, slot: int, blocker: _Blocker) -> None:
        with self._lock:
            if not self._closed:
                self._free.setdefault(slot, []).append(blocker)
                return
        blocker.close()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(256, thread_name_prefix="workflow-wake")
            return self._executor

    def close(self) -> None:
        """Close every connection (waits in progress end with their connection)."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, {}
            executor, self._executor = self._executor, None
        for blockers in free.values():
            for b in blockers:
                b.close()
        if executor is not None:
            executor.shutdown(wait=False)
