"""Every encoding of a Work, in one place: JSON payloads and the Redis record.

A work record is a Redis hash. Fields the Lua scripts change are separate (`status`,
`attempt`, `start`/`stop` in ms, `token`, `deadline`), fields they read to route, filter
and index are separate copies (`priority`, `timeout`, `retries`, `site`, `user`, `parent`,
`tags`, `event`, `group`, `archive`, `creation` in ms), and the user's data is msgspec
JSON written once: `body` (the fields that do not change while the work runs),
`results`, `products`, `plots`, `error`. No pickle, no eval:
every record read back is decoded as typed JSON and validated.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from workflow.errors import CorruptWork, ValidationError
from workflow.work import Failure, Work, validate_failure

__all__ = [
    "check_json",
    "data_fields",
    "decode_hash",
    "decode_json",
    "decode_record",
    "encode_failure",
    "encode_json",
    "from_builtins",
    "record_fields",
    "trusted_json",
    "update_fields",
]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_work_decoder = msgspec.json.Decoder(Work)
_failure_decoder = msgspec.json.Decoder(Failure)

LIFECYCLE = ("results", "products", "plots", "error", "status", "attempt", "start", "stop")
"""Work fields stored outside `body`: the scripts or the finishing worker change them."""
_DATA = ("results", "products", "plots")
CLEARABLE = (
    "user", "parent", "tags", "event", "group", "results", "products", "plots", "error",
)  # fmt: skip
"""Record fields that are absent when the Work's value is None."""
_AT = re.compile(r" - at `\$\.?([^`\[.]*)")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def encode_json(work: Work) -> bytes:
    """The full payload as JSON; `ValidationError` names a field that cannot be stored."""
    for name, value in msgspec.structs.asdict(work).items():
        check_json(name, value)
    return _encoder.encode(work)


def trusted_json(work: Work) -> bytes:
    """The payload as JSON, unchecked: for a Work read from its record (or made by the
    library), whose values are storable already."""
    return _encoder.encode(work)


def decode_json(data: bytes | str) -> Work:
    """A Work from a JSON payload (unknown keys ignored); `ValidationError` if invalid."""
    try:
        return _work_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _validation_error(exc) from None
    except UnicodeError as exc:
        raise ValidationError("work", f"must be valid UTF-8 JSON ({exc.reason})") from None


def from_builtins(data: Any) -> Work:
    """A Work from a payload dict (unknown keys ignored); `ValidationError` if invalid."""
    if not isinstance(data, dict):
        raise ValidationError("work", "must be a mapping of field names to values", data)
    try:
        return msgspec.convert(data, Work)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    except UnicodeError as exc:  # e.g. a lone surrogate in a string, met by msgspec
        raise ValidationError("work", f"must hold valid Unicode text ({exc.reason})") from None


def encode_failure(failure: Failure) -> bytes:
    """A failure record as JSON; `ValidationError` names a field it could not be read
    back with."""
    if not isinstance(failure, Failure):
        raise ValidationError("failure", "must be a Failure record", failure)
    validate_failure(failure)
    return _encoder.encode(failure)


def record_fields(work: Work) -> list[Any]:
    """Flat field/value pairs of a new record, less `status`, `attempt` and `priority`
    (the deposit script sets those)."""
    return _static_fields(work) + _data_fields(work, with_error=True)


def update_fields(work: Work) -> tuple[str, list[Any]]:
    """What `work.update()` stores: `(fields to delete, field/value pairs)`. Everything
    the user may change; a field set to None is deleted (space-separated names)."""
    pairs = [*_static_fields(work), "priority", work.priority, *_data_fields(work, True)]
    present = set(pairs[0::2])
    return " ".join(f for f in CLEARABLE if f not in present), pairs


def data_fields(work: Work) -> tuple[str, list[Any]]:
    """What a worker stores on completion: `results`, `products`, `plots` (deleted when
    None); the rest of the record is as withdraw left it."""
    dels = " ".join(name for name in _DATA if getattr(work, name) is None)
    return dels, _data_fields(work, with_error=False)


def _static_fields(work: Work) -> list[Any]:
    body = msgspec.structs.asdict(work)
    for name in LIFECYCLE:
        del body[name]
    body = {k: v for k, v in body.items() if v is not None}  # decoding restores the defaults
    fields: list[Any] = [
        "body", _encode("body", body),
        "timeout", work.timeout,
        "retries", work.retries,
        "site", work.site,
    ]  # fmt: skip
    if work.user is not None:
        fields += ["user", work.user]
    if work.parent is not None:
        fields += ["parent", work.parent]
    if work.tags is not None:
        fields += ["tags", _encoder.encode(work.tags)]
    if work.event is not None:
        fields += ["event", _encoder.encode(work.event)]
    if work.group is not None:
        fields += ["group", _encoder.encode(work.group)]
    fields += ["archive", 1 if work.archive else 0]
    if work.creation is not None:
        fields += ["creation", round(work.creation * 1000)]
    return fields


def _data_fields(work: Work, with_error: bool) -> list[Any]:
    fields: list[Any] = []
    for name in _DATA:
        value = getattr(work, name)
        if value is not None:
            fields += [name, _encode(name, value)]
    if with_error and work.error is not None:
        fields += ["error", _encoder.encode(work.error)]
    return fields


def decode_hash(work_id: str, raw: dict[bytes, bytes]) -> Work:
    """A Work from HGETALL's reply (field names as bytes); see `decode_record`. A field
    name that is not UTF-8 is an unknown field: ignored."""
    return decode_record(work_id, {k.decode(errors="replace"): v for k, v in raw.items()})


def decode_record(work_id: str, record: dict[str, bytes]) -> Work:
    """A Work from its Redis hash (field names decoded to str). `CorruptWork` if the
    record is not a valid Work; the queue is not touched."""
    try:
        data = _decoder.decode(record["body"])
        if not isinstance(data, dict):
            raise CorruptWork(work_id, "body is not a JSON object")
        data["status"] = record["status"].decode()
        data["attempt"] = int(record.get("attempt", b"0"))
        for name in ("start", "stop"):
            raw = record.get(name)
            data[name] = int(raw) / 1000 if raw else None
        for name in _DATA:
            raw = record.get(name)
            data[name] = _decoder.decode(raw) if raw else None
        raw_error = record.get("error")
        data["error"] = _failure_decoder.decode(raw_error) if raw_error else None
        work = msgspec.convert(data, Work)
    except CorruptWork:
        raise
    except KeyError as exc:
        raise CorruptWork(work_id, f"missing field {exc.args[0]!r}") from None
    except (msgspec.MsgspecError, ValueError, UnicodeDecodeError, TypeError) as exc:
        raise CorruptWork(work_id, str(exc)) from None
    if work.id != work_id:
        raise CorruptWork(work_id, f"stored id {work.id!r} does not match its key")
    if record.get("priority", b"%d" % work.priority) != b"%d" % work.priority:
        raise CorruptWork(work_id, f"routing priority {record['priority']!r} is not the work's")
    return work


def _encode(field: str, value: Any) -> bytes:
    """JSON of one field's value (or of a dict of fields: errors name the inner field).
    Non-finite floats are refused: JSON has no NaN, and msgspec would store null. Fast
    path: output without `null` cannot hold one, so only then is the value walked."""
    try:
        data = _encoder.encode(value)
    except (TypeError, ValueError, OverflowError):
        data = b"null"  # the checks below name the field and the rule
    if b"null" not in data:
        return data
    if isinstance(value, dict) and field in ("body", "payload"):
        for name, inner in value.items():
            if isinstance(inner, dict | list | tuple | float):  # (str, int, bool: fine)
                check_json(name, inner)
    else:
        check_json(field, value)
    return _encoder.encode(value)


def check_json(field: str, value: Any) -> None:
    """`ValidationError` naming `field` unless `value` is storable JSON (finite numbers)."""
    try:
        _encoder.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(field, f"must be JSON-serialisable ({exc})") from None
    if not _finite(value):
        raise ValidationError(field, "must not contain NaN or infinite numbers (JSON has none)")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def _validation_error(exc: Exception) -> ValidationError:
    """Our ValidationError from __post_init__, or msgspec's error reworded to name the field."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ValidationError):
        return cause
    text = str(exc)
    missing = _MISSING.search(text)
    if missing:
        return ValidationError(missing.group(1), "is required")
    match = _AT.search(text)
    field = (match.group(1) or "work") if match else "work"
    rule = _AT.split(text)[0] if match else text
    return ValidationError(field, rule)
