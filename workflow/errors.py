"""Every error `workflow` raises, under one root.

    WorkflowError
    ├── ValidationError        bad input: names the field and the rule it broke
    ├── WorkNotFound           no work with that id (in that pipeline)
    ├── LeaseLost              the caller no longer holds the work's lease (fencing)
    ├── InvalidTransition      the work's status does not allow the operation
    ├── CorruptWork            a stored record cannot be decoded
    ├── ConnectionError        Redis cannot be reached (redis-py's error is `__cause__`)
    ├── ServerError            the embedded/private Redis server cannot be started or found
    └── ScriptError            a Lua script failed in an unexpected way (a bug: please report)

Lua scripts signal expected failures with negative integer codes; `ErrorCode` lists
them and `raise_for_code()` is the one place they become exceptions.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NoReturn

__all__ = [
    "ConnectionError",
    "CorruptWork",
    "ErrorCode",
    "InvalidTransition",
    "LeaseLost",
    "ScriptError",
    "ServerError",
    "ValidationError",
    "WorkNotFound",
    "WorkflowError",
    "raise_for_code",
]


class WorkflowError(Exception):
    """Root of every error raised by `workflow`."""


class ValidationError(WorkflowError, ValueError):
    """A value broke a rule. `field` names it, `rule` says what was expected."""

    def __init__(self, field: str, rule: str, value: Any = ...) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        got = "" if value is ... else f"; got {_short(value)}"
        super().__init__(f"{field}: {rule}{got}")


class WorkNotFound(WorkflowError, KeyError):
    """No work with this id exists (it may have been deleted)."""

    def __init__(self, work_id: str, pipeline: str | None = None, detail: str = "") -> None:
        self.work_id = work_id
        self.pipeline = pipeline
        where = f" in pipeline {pipeline!r}" if pipeline else ""
        super().__init__(detail or f"no work with id {work_id!r}{where}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class LeaseLost(WorkflowError):
    """The lease presented is not the work's current one: another attempt owns it,
    or it was cancelled, expired, or already finished. The change was not applied."""

    def __init__(self, work_id: str, detail: str = "") -> None:
        self.work_id = work_id
        super().__init__(
            f"lease lost for work {work_id!r}: {detail or 'it is no longer held by this worker'}"
        )


class InvalidTransition(WorkflowError):
    """The work's current status does not allow the requested operation."""

    def __init__(self, work_id: str, status: str, operation: str) -> None:
        self.work_id = work_id
        self.status = status
        self.operation = operation
        super().__init__(f"cannot {operation} work {work_id!r}: its status is {status!r}")


class CorruptWork(WorkflowError):
    """A record read from Redis is not a valid Work."""

    def __init__(self, work_id: str, reason: str) -> None:
        self.work_id = work_id
        self.reason = reason
        super().__init__(f"work {work_id!r} is corrupt in Redis: {reason}")


class ConnectionError(WorkflowError):
    """Redis could not be reached; the redis-py error is chained as `__cause__`."""


class ServerError(WorkflowError):
    """A Redis server binary could not be found, started or stopped."""


class ScriptError(WorkflowError):
    """A Lua script raised an error it should not have. This is a bug."""


class ErrorCode(IntEnum):
    """Negative codes returned by the Lua scripts (see each script's `Errors:` header)."""

    NOT_FOUND = -1
    LEASE_LOST = -2
    BAD_STATUS = -3
    CANCELLED = -4


def raise_for_code(code: int, work_id: str, *, status: str = "", operation: str = "") -> NoReturn:
    """Turn a script's negative return code into the matching exception."""
    if code == ErrorCode.NOT_FOUND:
        raise WorkNotFound(work_id)
    if code == ErrorCode.LEASE_LOST:
        raise LeaseLost(work_id, f"its status is {status!r}" if status else "")
    if code == ErrorCode.BAD_STATUS:
        raise InvalidTransition(work_id, status, operation)
    raise ScriptError(f"unknown script return code {code} for work {work_id!r}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
