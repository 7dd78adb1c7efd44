"""One settings object: where Redis is, the key prefix, and the timing knobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from workflow.errors import ValidationError
from workflow.keys import DEFAULT_PREFIX
from workflow.work import NAME_RE

__all__ = ["Settings"]

LEASE_MS = 30_000
"""Liveness lease: a worker that stops renewing loses its work after this long."""
GRACE_MS = 30_000
"""Timeout backstop: the scripts end an attempt at start + timeout + this grace."""
BACKOFF_BASE_MS = 1_000
"""First retry waits about this long; each further retry doubles it (with jitter)."""
BACKOFF_MAX_MS = 300_000
"""Longest wait before a retry."""
SCAN_LIMIT = 1_000
"""Most queued works one withdraw examines: the bound on the cost of withdraw filters."""
RECOVER_LIMIT = 100
"""Most expired leases reclaimed and delayed works promoted by one withdraw."""
STREAM_MAXLEN = 1_000_000
"""Approximate cap on each pipeline's completion stream (the results indexer's input)."""
WAKE_CAP = 64
"""Most wake-up tokens kept per pipeline for blocked withdrawers."""
IDLE_WAIT_S = 5.0
"""Longest single blocking wait for a wake-up before withdraw looks again."""
MAX_RESULT_BYTES = 16 * 1024 * 1024
"""Largest output (JSON of results + products + plots) a worker stores for one work."""


@dataclass(frozen=True)
class Settings:
    """How a client talks to Redis. `url=None` means the embedded local server."""

    url: str | None = None
    prefix: str = DEFAULT_PREFIX
    lease_ms: int = LEASE_MS
    grace_ms: int = GRACE_MS
    backoff_base_ms: int = BACKOFF_BASE_MS
    backoff_max_ms: int = BACKOFF_MAX_MS
    scan_limit: int = SCAN_LIMIT
    recover_limit: int = RECOVER_LIMIT
    stream_maxlen: int = STREAM_MAXLEN
    wake_cap: int = WAKE_CAP
    idle_wait_s: float = IDLE_WAIT_S
    max_result_bytes: int = MAX_RESULT_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not NAME_RE.fullmatch(self.prefix):
            raise ValidationError(
                "prefix", "must be 1-128 characters of letters, digits, '-', '_' or '.'",
                self.prefix,
            )  # fmt: skip
        for name in ("lease_ms", "scan_limit", "recover_limit", "stream_maxlen", "wake_cap",
                     "max_result_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(name, "must be an integer >= 1", value)
        for name in ("grace_ms", "backoff_base_ms", "backoff_max_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(name, "must be an integer >= 0", value)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """From `WORKFLOW_REDIS_URL`, `WORKFLOW_PREFIX`, `WORKFLOW_LEASE_MS` and
        `WORKFLOW_MAX_RESULT_BYTES`."""
        env: dict[str, Any] = {"url": os.environ.get("WORKFLOW_REDIS_URL") or None}
        if os.environ.get("WORKFLOW_PREFIX"):
            env["prefix"] = os.environ["WORKFLOW_PREFIX"]
        for name, var in (("lease_ms", "WORKFLOW_LEASE_MS"),
                          ("max_result_bytes", "WORKFLOW_MAX_RESULT_BYTES")):  # fmt: skip
            if os.environ.get(var):
                try:
                    env[name] = int(os.environ[var])
                except ValueError:
                    raise ValidationError(var, "must be an integer", os.environ[var]) from None
        return cls(**{**env, **overrides})

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Settings:
        """For one Redis URL (`redis://`, `rediss://`, `unix://`)."""
        return cls(url=url, **overrides)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed."""
        return replace(self, **changes)
