"""Redis clients built on purpose, not with redis-py's defaults.

redis-py's defaults (a 5 s socket timeout and automatic retries that re-send commands)
would turn a long blocking wait into a `TimeoutError` and could re-send a withdraw whose
reply was lost. So: RESP2 (hiredis parses it), no automatic retries (the client retries
only what is safe to repeat), a bounded socket timeout for commands, none for the
blocking wake-up connection (its command carries its own timeout), TCP keepalive on both
(TCP only: unix sockets have none).
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["COMMAND_TIMEOUT_S", "CONNECT_TIMEOUT_S", "blocking_client", "command_client"]

CONNECT_TIMEOUT_S = 2.0
"""Connecting fails fast: a dead server is reported within this long."""
COMMAND_TIMEOUT_S = 10.0
"""Longest wait for the reply to one command or script (scripts are bounded, ~ms)."""
HEALTH_CHECK_S = 30
"""An idle pooled connection is PINGed before reuse after this many seconds."""


def _client(url: str, socket_timeout: float | None, name: str) -> redis.Redis:
    tcp = {} if url.startswith("unix:") else {"socket_keepalive": True}
    return redis.Redis.from_url(
        url,
        protocol=2,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=HEALTH_CHECK_S,
        decode_responses=False,
        client_name=name,
        **tcp,
    )


def command_client(url: str) -> redis.Redis:
    """For scripts and reads: bounded socket timeout, no automatic retries."""
    return _client(url, COMMAND_TIMEOUT_S, "workflow")


def blocking_client(url: str) -> redis.Redis:
    """For blocking wake-up waits (BLPOP): no socket timeout, the command bounds itself."""
    return _client(url, None, "workflow-wait")
