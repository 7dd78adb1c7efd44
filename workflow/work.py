"""The `Work` record: one task, everything about it, validated at every boundary."""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from workflow.errors import ValidationError

if TYPE_CHECKING:
    from workflow.client import Client

__all__ = ["STATUSES", "TERMINAL", "Failure", "Status", "Work"]

Status = Literal["created", "waiting", "queued", "running", "success", "failure", "cancelled"]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
TERMINAL: frozenset[str] = frozenset({"success", "failure", "cancelled"})

NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
"""Pipeline names and work ids: they become part of Redis keys, so no `{`, `}`, `:`, spaces."""
TIMEOUT_MAX_S = 72 * 3600
"""Longest allowed `timeout`: 72 hours."""
RETRIES_MAX = 10
"""Most retries a work may ask for after its first attempt."""
EXACT = 2**53
"""Event ids must stay below this magnitude: the scripts compare them as doubles."""

# Constrained types: msgspec checks them when decoding and states them in the JSON Schema;
# `validate()` checks the same rules on construction (msgspec does not check `__init__`).
Name = Annotated[str, msgspec.Meta(pattern=f"^{NAME_RE.pattern}$", min_length=1, max_length=128)]
Priority = Annotated[int, msgspec.Meta(ge=1, le=5, description="5 is withdrawn first")]
Timeout = Annotated[int, msgspec.Meta(ge=1, le=TIMEOUT_MAX_S, description="seconds")]
Retries = Annotated[int, msgspec.Meta(ge=0, le=RETRIES_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Failure(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why the last attempt failed: `kind` is `exception`, `timeout`, `lease`, `crash`,
    `corrupt`, `cancelled`, `bad-return`, `exit`, `config` or `too-large`; `message` is
    one line; `traceback` the full text if any."""

    kind: str = "exception"
    message: str = ""
    traceback: str | None = None
    attempt: int = 0
    time: float | None = None


class Work(msgspec.Struct, kw_only=True, dict=True):
    """One unit of work. `pipeline` is required; the library fills the lifecycle fields.

    Attribute assignment is not checked (msgspec Structs do not validate on set);
    `validate()` runs at every boundary: construction, deposit, update and decode.
    """

    pipeline: Name
    parameters: dict[str, Any] | None = None
    results: Any = None
    path: str = "."
    event: list[int] | None = None
    tags: list[str] | None = None
    group: list[str] | None = None
    timeout: Timeout = 3600
    retries: Retries = 2
    priority: Priority = 3
    products: list[str] | None = None
    plots: list[str] | None = None
    site: str = "local"
    user: str | None = None
    archive: bool = True
    precursors: list[dict[str, str]] | None = None
    config: dict[str, Any] | None = None
    id: Name | None = None
    creation: float | None = None
    start: float | None = None
    stop: float | None = None
    attempt: Count = 0
    status: Status = "created"
    function: str | None = None
    command: list[str] | None = None
    error: Failure | None = None

    def __post_init__(self) -> None:
        if self.creation is None:
            self.creation = time.time()
        self.validate()

    # -- data ---------------------------------------------------------------------------

    @property
    def payload(self) -> dict[str, Any]:
        """Every field as plain Python data: exactly what is stored in Redis."""
        return msgspec.to_builtins(self)

    @property
    def tag(self) -> list[str] | None:
        """Alias of `tags` (the reference documents `work.tag = [...]`)."""
        return self.tags

    @tag.setter
    def tag(self, value: list[str] | None) -> None:
        self.tags = value

    @property
    def parent(self) -> str | None:
        """The parent id used by withdraw's `parent=` filter: `config["parent"]`."""
        value = (self.config or {}).get("parent")
        return value if isinstance(value, str) else None

    def validate(self) -> None:
        """Check every field; raise `ValidationError` naming the first bad one."""
        _validate(self)

    def to_json(self) -> bytes:
        """The payload as JSON bytes."""
        from workflow import codec

        return codec.encode_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Work:
        """Build a Work from a payload dict (unknown keys are ignored)."""
        from workflow import codec

        return codec.from_builtins(data)

    @classmethod
    def from_json(cls, data: bytes | str) -> Work:
        """Build a Work from a JSON payload (unknown keys are ignored)."""
        from workflow import codec

        return codec.decode_json(data)

    @staticmethod
    def json_schema() -> dict[str, Any]:
        """The JSON Schema of a Work payload."""
        return msgspec.json.schema(Work)

    # -- the library API (thin calls into the client) ------------------------------------

    def deposit(self, *, return_ids: bool = False, client: Client | None = None) -> bool | str:
        """Queue this work. Sets `id` (if unset) and `status`; returns True if it was
        queued now, False if a work with its id already existed (nothing changes then),
        or the id with `return_ids=True`."""
        created = _client(client).deposit([self])[0]
        return self.id if return_ids else created  # type: ignore[return-value]

    @classmethod
    def withdraw(
        cls,
        pipeline: str | list[str],
        *,
        event: int | list[int] | None = None,
        site: str | None = None,
        priority: int | None = None,
        user: str | None = None,
        tags: list[str] | None = None,
        parent: str | None = None,
        timeout_s: float = 0,
        client: Client | None = None,
    ) -> Work | None:
        """Take the next work (highest priority, then oldest) and hold its lease.
        Returns None when nothing matches; waits up to `timeout_s` for one to arrive."""
        works = _client(client).withdraw(
            pipeline,
            count=1,
            event=event,
            site=site,
            priority=priority,
            user=user,
            tags=tags,
            parent=parent,
            timeout_s=timeout_s,
        )
        return works[0] if works else None

    def update(self, *, client: Client | None = None) -> None:
        """Save this work. With `status` success/failure on a withdrawn work, finishes it
        (failure retries while attempts remain); while running, saves progress. Fenced by
        the lease: raises `LeaseLost` if another attempt owns the work now."""
        _client(client).update(self)

    def delete(self, *, client: Client | None = None) -> bool:
        """Delete this work wherever it is. True if it existed."""
        return _client(client).delete(self)

    def cancel(self, *, client: Client | None = None) -> None:
        """Stop this work: queued work never runs; a running work's worker is told to stop."""
        _client(client).cancel(self)

    @classmethod
    def get(
        cls, work_id: str, *, pipeline: str | None = None, client: Client | None = None
    ) -> Work:
        """Read a work by id (searching every known pipeline if none is given)."""
        return _client(client).get(work_id, pipeline=pipeline)

    def renew(self, *, client: Client | None = None) -> None:
        """Extend this work's lease (workers do this from a heartbeat thread). Raises
        `LeaseLost` if it is no longer held (another attempt, cancelled, deleted, too late)."""
        [result] = _client(client).renew([self])
        if result != "ok":
            from workflow.errors import LeaseLost

            raise LeaseLost(str(self.id), f"renew answered {result!r}")


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from workflow.client import default_client

    return default_client()


# -- validation ---------------------------------------------------------------------------


def _validate(w: Work) -> None:
    if not isinstance(w.pipeline, str) or not NAME_RE.fullmatch(w.pipeline):
        raise ValidationError(
            "pipeline",
            "must be 1-128 characters of letters, digits, '-', '_' or '.'",
            w.pipeline,
        )
    _optional_dict("parameters", w.parameters)
    _optional_dict("config", w.config)
    if not isinstance(w.path, str):
        raise ValidationError("path", "must be a string", w.path)
    _int_list("event", w.event)
    _str_list("tags", w.tags)
    _str_list("group", w.group)
    _str_list("products", w.products)
    _str_list("plots", w.plots)
    _int_range("timeout", w.timeout, 1, TIMEOUT_MAX_S, "seconds")
    _int_range("retries", w.retries, 0, RETRIES_MAX, "retries after the first attempt")
    _int_range("priority", w.priority, 1, 5, "(5 is withdrawn first)")
    if not isinstance(w.site, str) or not w.site:
        raise ValidationError("site", "must be a non-empty string", w.site)
    if w.user is not None and not isinstance(w.user, str):
        raise ValidationError("user", "must be a string or None", w.user)
    if not isinstance(w.archive, bool):
        raise ValidationError("archive", "must be true or false", w.archive)
    if w.precursors is not None and not (
        isinstance(w.precursors, list)
        and all(
            isinstance(p, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in p.items())
            for p in w.precursors
        )
    ):
        raise ValidationError(
            "precursors", "must be a list of {pipeline: id} string mappings", w.precursors
        )
    if w.id is not None and (not isinstance(w.id, str) or not NAME_RE.fullmatch(w.id)):
        raise ValidationError(
            "id", "must be 1-128 characters of letters, digits, '-', '_' or '.'", w.id
        )
    for name in ("creation", "start", "stop"):
        value = getattr(w, name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValidationError(name, "must be a unix time in seconds (a number >= 0)", value)
    if isinstance(w.attempt, bool) or not isinstance(w.attempt, int) or w.attempt < 0:
        raise ValidationError("attempt", "must be an integer >= 0", w.attempt)
    if w.status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(STATUSES)}", w.status)
    if w.function is not None and (
        not isinstance(w.function, str)
        or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", w.function)
    ):
        raise ValidationError("function", "must be a dotted path 'module.function'", w.function)
    if w.command is not None:
        _str_list("command", w.command)
        if not w.command:
            raise ValidationError("command", "must be a non-empty argv list", w.command)
    if w.function is not None and w.command is not None:
        raise ValidationError("function", "give either function or command, not both")
    if w.error is not None:
        if not isinstance(w.error, Failure):
            raise ValidationError("error", "must be a Failure record", w.error)
        validate_failure(w.error)


def validate_failure(f: Failure, field: str = "error") -> None:
    """Check a failure record's fields (what its JSON decoder demands, so a stored record
    always reads back); `ValidationError` names the first bad one."""
    if not isinstance(f.kind, str):
        raise ValidationError(f"{field}.kind", "must be a string", f.kind)
    if not isinstance(f.message, str):
        raise ValidationError(f"{field}.message", "must be a string", f.message)
    if f.traceback is not None and not isinstance(f.traceback, str):
        raise ValidationError(f"{field}.traceback", "must be a string or None", f.traceback)
    if isinstance(f.attempt, bool) or not isinstance(f.attempt, int) or not 0 <= f.attempt < EXACT:
        raise ValidationError(f"{field}.attempt", "must be an integer from 0 to 2**53", f.attempt)
    if f.time is not None and (
        isinstance(f.time, bool)
        or not isinstance(f.time, int | float)
        or not math.isfinite(f.time)
        or f.time < 0
    ):
        raise ValidationError(f"{field}.time", "must be a unix time in seconds or None", f.time)


def _int_range(field: str, value: Any, lo: int, hi: int, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(field, f"must be an integer from {lo} to {hi} {unit}", value)


def _optional_dict(field: str, value: Any) -> None:
    if value is not None and not (
        isinstance(value, dict) and all(isinstance(k, str) for k in value)
    ):
        raise ValidationError(field, "must be a dict with string keys, or None", value)


def _str_list(field: str, value: Any) -> None:
    if value is not None and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise ValidationError(field, "must be a list of strings, or None", value)


def _int_list(field: str, value: Any) -> None:
    if value is not None and not (
        isinstance(value, list)
        and all(
            isinstance(v, int) and not isinstance(v, bool) and -EXACT < v < EXACT for v in value
        )
    ):
        raise ValidationError(
            field, "must be a list of integers of magnitude below 2**53, or None", value
        )
