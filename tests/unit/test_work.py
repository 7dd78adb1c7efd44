"""The `Work` record: validation at every boundary, and every encoding round-trips.

No Redis here: records are built the way Redis hands them back (field names `str`,
values `bytes`) with the lifecycle fields the scripts write (`status`, `attempt`,
`priority`, `start`/`stop` in ms, `token`, `deadline`).
"""

from __future__ import annotations

import math
import string
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow import Failure, ValidationError, Work, codec
from workflow.work import RETRIES_MAX, STATUSES, TIMEOUT_MAX_S

REFERENCE_KEYS = [
    "pipeline", "parameters", "results", "path", "event", "tags", "group", "timeout",
    "retries", "priority", "products", "plots", "site", "user", "archive", "precursors",
    "config", "id", "creation", "start", "stop", "attempt", "status",
]  # fmt: skip
"""`work.payload` of the reference (`reference/workflow-overview.md`), in its order."""
WORKER_KEYS = ["function", "command", "error"]
"""What the worker needs on top of the reference keys."""
ALL_FIELDS = [*REFERENCE_KEYS, *WORKER_KEYS]

# -- strategies ---------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "-_."
names = st.text(NAME_CHARS, min_size=1, max_size=128)
texts = st.text(max_size=20)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)
str_lists = st.lists(texts, max_size=4)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
ms_times = st.integers(min_value=0, max_value=4_000_000_000_000)
identifiers = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + "_"),
    st.text(string.ascii_letters + string.digits + "_", max_size=8),
)
dotted = st.lists(identifiers, min_size=2, max_size=4).map(".".join)
failures = st.builds(
    Failure,
    kind=st.sampled_from(["exception", "timeout", "lease", "crash", "corrupt", "cancelled"]),
    message=texts,
    traceback=st.none() | texts,
    attempt=st.integers(min_value=0, max_value=11),
    time=st.none() | times,
)


@st.composite
def works(draw: st.DrawFn, *, with_id: bool = False, ms_clock: bool = False) -> Work:
    """Any valid Work. `ms_clock`: start/stop on whole milliseconds, as the scripts store
    them; `with_id`: deposited (records are keyed by id)."""
    runner = draw(st.sampled_from(["none", "function", "command"]))
    clock = st.none() | (ms_times.map(lambda ms: ms / 1000) if ms_clock else times)
    return Work(
        pipeline=draw(names),
        parameters=draw(st.none() | json_objects),
        results=draw(json_values),
        path=draw(texts),
        event=draw(st.none() | st.lists(st.integers(-(2**53) + 1, 2**53 - 1), max_size=4)),
        tags=draw(st.none() | str_lists),
        group=draw(st.none() | str_lists),
        timeout=draw(st.integers(1, TIMEOUT_MAX_S)),
        retries=draw(st.integers(0, RETRIES_MAX)),
        priority=draw(st.integers(1, 5)),
        products=draw(st.none() | str_lists),
        plots=draw(st.none() | str_lists),
        site=draw(st.text(min_size=1, max_size=10)),
        user=draw(st.none() | texts),
        archive=draw(st.booleans()),
        precursors=draw(st.none() | st.lists(st.dictionaries(names, names, max_size=2))),
        config=draw(st.none() | json_objects),
        id=draw(names if with_id else st.none() | names),
        creation=draw(times),
        start=draw(clock),
        stop=draw(clock),
        attempt=draw(st.integers(0, 50)),
        status=draw(st.sampled_from(STATUSES)),
        function=draw(dotted) if runner == "function" else None,
        command=draw(st.lists(texts, min_size=1, max_size=3)) if runner == "command" else None,
        error=draw(st.none() | failures),
    )


def as_redis(value: Any) -> bytes:
    """A field value the way redis-py returns it (RESP2, decode_responses=False)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return str(value).encode()
    raise AssertionError(f"record_fields produced an unexpected value type: {value!r}")


def stored_record(work: Work, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The hash deposit + the lifecycle scripts would leave for `work`."""
    flat = codec.record_fields(work)
    assert len(flat) % 2 == 0
    record = {flat[i]: as_redis(flat[i + 1]) for i in range(0, len(flat), 2)}
    assert all(isinstance(k, str) for k in record)
    assert not {"status", "attempt", "priority"} & set(record), "the deposit script sets these"
    record["status"] = work.status.encode()
    record["attempt"] = str(work.attempt).encode()
    record["priority"] = str(work.priority).encode()
    for name in ("start", "stop"):
        value = getattr(work, name)
        if value is not None:
            record[name] = str(round(value * 1000)).encode()
    record.update(extra or {})
    return record


# -- the reference ------------------------------------------------------------------------


def test_reference_example() -> None:
    work = Work(pipeline="sample-pipeline", parameters={"a": 1, "b": 2})
    payload = work.payload
    assert payload["pipeline"] == "sample-pipeline"
    assert payload["parameters"] == {"a": 1, "b": 2}
    assert isinstance(payload["creation"], float)
    expected_defaults = {
        "results": None, "path": ".", "event": None, "tags": None, "group": None,
        "timeout": 3600, "retries": 2, "priority": 3, "products": None, "plots": None,
        "site": "local", "user": None, "archive": True, "precursors": None, "config": None,
        "id": None, "start": None, "stop": None, "status": "created",
        "function": None, "command": None, "error": None,
    }  # fmt: skip
    assert {k: payload[k] for k in expected_defaults} == expected_defaults
    assert payload["attempt"] == 0  # attempts count withdraws: none yet


def test_payload_has_exactly_the_reference_keys_plus_worker_keys() -> None:
    payload = Work(pipeline="p").payload
    assert list(payload) == ALL_FIELDS


def test_payload_is_plain_data() -> None:
    work = Work(pipeline="p", error=Failure(kind="exception", message="boom"), tags=["a"])
    payload = work.payload
    assert payload["error"]["message"] == "boom"
    assert msgspec.convert(payload["error"], Failure) == work.error
    assert msgspec.json.decode(msgspec.json.encode(payload)) == payload


def test_tag_alias_sets_tags() -> None:
    work = Work(pipeline="p")
    work.tag = ["some-tag", "some-other-tag"]
    assert work.tags == ["some-tag", "some-other-tag"]
    assert work.tag == work.tags
    assert work.payload["tags"] == ["some-tag", "some-other-tag"]
    assert "tag" not in work.payload


def test_recommended_fields_of_the_reference() -> None:
    work = Work(pipeline="sample-pipeline")
    work.event = [12345, 67890]
    work.user = "some-user"
    work.tag = ["some-tag", "some-other-tag"]
    work.group = ["some-working-group", "some-other-working-group"]
    work.site = "chime"
    work.results = {"some-parameter": "some-value"}
    work.plots = ["some-plot.png"]
    work.products = ["some-product.fits"]
    work.status = "success"
    work.validate()
    assert Work.from_json(work.to_json()) == work


def test_creation_is_set_at_construction() -> None:
    import time

    before = time.time()
    work = Work(pipeline="p")
    assert before <= work.creation <= time.time()  # type: ignore[operator]
    assert Work(pipeline="p", creation=12.5).creation == 12.5


def test_json_schema_mentions_every_field() -> None:
    schema = Work.json_schema()
    assert isinstance(schema, dict)
    msgspec.json.encode(schema)  # plain JSON data
    properties = schema["$defs"]["Work"]["properties"]
    assert set(properties) == set(ALL_FIELDS)
    assert schema["$defs"]["Work"]["required"] == ["pipeline"]


def test_json_schema_states_the_rules() -> None:
    properties = Work.json_schema()["$defs"]["Work"]["properties"]
    assert (properties["priority"].get("minimum"), properties["priority"].get("maximum")) == (1, 5)
    assert properties["timeout"].get("maximum") == TIMEOUT_MAX_S
    assert properties["retries"].get("maximum") == RETRIES_MAX
    assert "pattern" in properties["pipeline"]
    assert set(properties["status"].get("enum", ())) == set(STATUSES)


# -- valid works round-trip -----------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(works())
def test_json_round_trip(work: Work) -> None:
    data = work.to_json()
    assert isinstance(data, bytes)
    assert Work.from_json(data) == work
    assert Work.from_json(data.decode()) == work


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(works())
def test_payload_round_trip(work: Work) -> None:
    payload = work.payload
    assert list(payload) == ALL_FIELDS
    assert Work.from_dict(payload) == work
    assert Work.from_dict(msgspec.json.decode(work.to_json())) == work


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    works(with_id=True, ms_clock=True),
    st.dictionaries(st.sampled_from(["token", "deadline", "last", "rejected"]), st.binary()),
)
def test_record_round_trip(work: Work, extra: dict[str, bytes]) -> None:
    assert codec.decode_record(work.id, stored_record(work, extra)) == work  # type: ignore[arg-type]


@given(works(with_id=True, ms_clock=True))
def test_update_fields_round_trip(work: Work) -> None:
    """What `work.update()` stores decodes back to the same work."""
    dels, flat = codec.update_fields(work)
    assert set(dels.split()) <= set(codec.CLEARABLE)
    assert not set(dels.split()) & set(flat[0::2]), "a field is either stored or deleted"
    record = {flat[i]: as_redis(flat[i + 1]) for i in range(0, len(flat), 2)}
    lifecycle = ("status", "attempt", "start", "stop")
    record.update({k: v for k, v in stored_record(work).items() if k in lifecycle})
    assert record["priority"] == str(work.priority).encode()
    assert codec.decode_record(work.id, record) == work  # type: ignore[arg-type]


def test_record_keeps_routing_copies() -> None:
    """The scripts route and filter on separate copies of some fields."""
    work = Work(pipeline="p", id="w1", user="u", tags=["a", "b"], event=[7], site="chime",
                timeout=60, retries=4, config={"parent": "w0"})  # fmt: skip
    record = stored_record(work)
    assert record["user"] == b"u"
    assert msgspec.json.decode(record["tags"]) == ["a", "b"]
    assert msgspec.json.decode(record["event"]) == [7]
    assert (record["site"], record["timeout"], record["retries"]) == (b"chime", b"60", b"4")
    assert record["parent"] == b"w0"
    assert work.parent == "w0"


def test_record_of_another_id_is_corrupt() -> None:
    from workflow import CorruptWork

    work = Work(pipeline="p", id="w1")
    with pytest.raises(CorruptWork, match="does not match"):
        codec.decode_record("w2", stored_record(work))


def test_unknown_fields_from_newer_writers_are_tolerated() -> None:
    payload = {**Work(pipeline="p").payload, "from_the_future": {"x": 1}}
    assert Work.from_dict(payload).pipeline == "p"
    assert Work.from_json(msgspec.json.encode(payload)).pipeline == "p"


# -- invalid values name the field and state the rule ----------------------------------------

INVALID: list[tuple[str, Any, str]] = [
    # field, value, a fragment of the rule the message must state
    ("pipeline", "", "1-128 characters"),
    ("pipeline", "a" * 129, "1-128 characters"),
    ("pipeline", "a{b", "1-128 characters"),
    ("pipeline", "a}b", "1-128 characters"),
    ("pipeline", "{p}", "1-128 characters"),
    ("pipeline", "a:b", "1-128 characters"),
    ("pipeline", "a b", "1-128 characters"),
    ("pipeline", "a\nb", "1-128 characters"),
    ("pipeline", "é", "1-128 characters"),
    ("pipeline", 3, "1-128 characters"),
    ("pipeline", None, "1-128 characters"),
    ("parameters", [1, 2], "dict with string keys"),
    ("parameters", {1: 2}, "dict with string keys"),
    ("parameters", "a=1", "dict with string keys"),
    ("config", ["x"], "dict with string keys"),
    ("path", 3, "string"),
    ("path", None, "string"),
    ("event", 12345, "list of integers"),
    ("event", [True], "list of integers"),
    ("event", [1.0], "list of integers"),
    ("event", ["1"], "list of integers"),
    ("event", [2**53], "below 2**53"),
    ("tags", "x", "list of strings"),
    ("tags", [1], "list of strings"),
    ("group", "g", "list of strings"),
    ("products", [None], "list of strings"),
    ("plots", "a.png", "list of strings"),
    ("timeout", 0, "from 1 to 259200"),
    ("timeout", -1, "from 1 to 259200"),
    ("timeout", TIMEOUT_MAX_S + 1, "from 1 to 259200"),
    ("timeout", True, "from 1 to 259200"),
    ("timeout", 60.0, "from 1 to 259200"),
    ("timeout", "60", "from 1 to 259200"),
    ("retries", 11, "from 0 to 10"),
    ("retries", -1, "from 0 to 10"),
    ("retries", False, "from 0 to 10"),
    ("retries", 1.0, "from 0 to 10"),
    ("priority", 0, "from 1 to 5"),
    ("priority", 6, "from 1 to 5"),
    ("priority", True, "from 1 to 5"),
    ("priority", 3.0, "from 1 to 5"),
    ("priority", "3", "from 1 to 5"),
    ("priority", None, "from 1 to 5"),
    ("site", "", "non-empty string"),
    ("site", None, "non-empty string"),
    ("site", 1, "non-empty string"),
    ("user", 3, "string or None"),
    ("archive", 1, "true or false"),
    ("archive", "yes", "true or false"),
    ("archive", None, "true or false"),
    ("precursors", {"p": "id"}, "list of {pipeline: id}"),
    ("precursors", [{"p": 1}], "list of {pipeline: id}"),
    ("precursors", ["p"], "list of {pipeline: id}"),
    ("id", "", "1-128 characters"),
    ("id", "a:b", "1-128 characters"),
    ("id", "a{b}", "1-128 characters"),
    ("id", "a b", "1-128 characters"),
    ("id", "x" * 129, "1-128 characters"),
    ("id", 5, "1-128 characters"),
    ("creation", -1.0, "unix time"),
    ("creation", math.nan, "unix time"),
    ("creation", math.inf, "unix time"),
    ("creation", "now", "unix time"),
    ("start", True, "unix time"),
    ("stop", -0.5, "unix time"),
    ("attempt", -1, "integer >= 0"),
    ("attempt", True, "integer >= 0"),
    ("attempt", 1.0, "integer >= 0"),
    ("status", "done", "must be one of"),
    ("status", "", "must be one of"),
    ("status", None, "must be one of"),
    ("status", "SUCCESS", "must be one of"),
    ("function", "main", "dotted path"),
    ("function", "a..b", "dotted path"),
    ("function", "1a.b", "dotted path"),
    ("function", ["a.b"], "dotted path"),
    ("command", [], "non-empty argv list"),
    ("command", "ls -l", "list of strings"),
    ("command", ["ls", 1], "list of strings"),
    ("error", {"kind": "exception"}, "Failure record"),
    ("error", "boom", "Failure record"),
]


def _check(exc: ValidationError, field: str, rule: str) -> None:
    assert exc.field == field, str(exc)
    assert rule in exc.rule, str(exc)
    assert str(exc).startswith(f"{field}: ")
    assert exc.rule in str(exc)
    assert isinstance(exc, ValueError)  # a ValidationError is also a ValueError


@pytest.mark.parametrize(("field", "value", "rule"), INVALID, ids=lambda v: repr(v)[:20])
def test_invalid_value_at_construction(field: str, value: Any, rule: str) -> None:
    kwargs: dict[str, Any] = {"pipeline": "p", field: value}
    with pytest.raises(ValidationError) as info:
        Work(**kwargs)
    _check(info.value, field, rule)


@pytest.mark.parametrize(("field", "value", "rule"), INVALID, ids=lambda v: repr(v)[:20])
def test_invalid_value_set_later_is_caught_by_validate(field: str, value: Any, rule: str) -> None:
    work = Work(pipeline="p")
    setattr(work, field, value)
    with pytest.raises(ValidationError) as info:
        work.validate()
    _check(info.value, field, rule)


def _jsonable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f, v, _ in INVALID if _jsonable(v) and not isinstance(v, dict | tuple)]
    + [("parameters", [1]), ("error", "boom")],
    ids=lambda v: repr(v)[:20],
)
def test_invalid_value_in_payload_names_the_field(field: str, value: Any) -> None:
    """Read back (from_dict / from_json): the error names the same field."""
    payload = {**Work(pipeline="p").payload, field: value}
    for decode, data in ((Work.from_dict, payload), (Work.from_json, msgspec.json.encode(payload))):
        with pytest.raises(ValidationError) as info:
            decode(data)
        assert info.value.field == field, str(info.value)
        assert info.value.rule


def test_function_and_command_together() -> None:
    with pytest.raises(ValidationError) as info:
        Work(pipeline="p", function="mod.func", command=["echo", "hi"])
    assert info.value.field in ("function", "command")
    assert "not both" in info.value.rule
    Work(pipeline="p", function="mod.func")
    Work(pipeline="p", command=["echo", "hi"])


@settings(max_examples=200)
@given(
    field=st.sampled_from(["timeout", "retries", "priority"]),
    value=st.integers() | st.booleans() | st.floats() | st.text(max_size=3) | st.none(),
)
def test_int_fields_reject_everything_out_of_range(field: str, value: Any) -> None:
    lo, hi = {"timeout": (1, TIMEOUT_MAX_S), "retries": (0, RETRIES_MAX), "priority": (1, 5)}[field]
    is_valid = type(value) is int and lo <= value <= hi
    if is_valid:
        Work(pipeline="p", **{field: value})
        return
    with pytest.raises(ValidationError) as info:
        Work(pipeline="p", **{field: value})
    _check(info.value, field, f"from {lo} to {hi}")


@settings(max_examples=300)
@given(st.text(max_size=140))
def test_pipeline_names(name: str) -> None:
    ok = 1 <= len(name) <= 128 and all(c in NAME_CHARS for c in name)
    if ok:
        assert Work(pipeline=name).pipeline == name
        return
    with pytest.raises(ValidationError) as info:
        Work(pipeline=name)
    _check(info.value, "pipeline", "1-128 characters")


def test_pipeline_name_length_limits() -> None:
    assert Work(pipeline="a" * 128).pipeline == "a" * 128
    assert Work(pipeline="a").pipeline == "a"
    assert Work(pipeline="Az09-_.").pipeline == "Az09-_."


def test_pipeline_is_required() -> None:
    with pytest.raises(TypeError, match="pipeline"):
        Work()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Work.from_dict({})
    with pytest.raises(ValidationError):
        Work.from_json(b"{}")


def test_missing_pipeline_names_the_field() -> None:
    for decode, data in ((Work.from_dict, {"priority": 3}), (Work.from_json, b"{}")):
        with pytest.raises(ValidationError) as info:
            decode(data)
        assert info.value.field == "pipeline"
        assert "required" in info.value.rule


# -- deposit-time encoding ------------------------------------------------------------------


class NotJSON:
    pass


@pytest.mark.parametrize("value", [NotJSON(), 1j, object()], ids=repr)
def test_non_json_parameters_are_rejected_at_deposit(value: Any) -> None:
    work = Work(pipeline="p", parameters={"a": value})  # constructor: a dict with str keys
    with pytest.raises(ValidationError) as info:
        codec.record_fields(work)
    assert "JSON-serialisable" in info.value.rule
    with pytest.raises(ValidationError):
        work.to_json()


@pytest.mark.parametrize("field", ["results", "products", "plots"])
def test_non_json_data_fields_name_the_field(field: str) -> None:
    work = Work(pipeline="p")
    setattr(work, field, {"a": NotJSON()} if field == "results" else [NotJSON()])
    with pytest.raises(ValidationError) as info:
        codec.record_fields(work)
    assert info.value.field == field
    assert "JSON-serialisable" in info.value.rule


@pytest.mark.parametrize("field", ["parameters", "config"])
def test_non_json_parameters_name_the_field(field: str) -> None:
    work = Work(pipeline="p", **{field: {"a": NotJSON()}})
    with pytest.raises(ValidationError) as info:
        codec.record_fields(work)
    assert info.value.field == field
    assert "JSON-serialisable" in info.value.rule


@pytest.mark.parametrize("field", ["parameters", "config"])
def test_to_json_names_the_non_json_field(field: str) -> None:
    work = Work(pipeline="p", **{field: {"a": NotJSON()}})
    with pytest.raises(ValidationError) as info:
        work.to_json()
    assert info.value.field == field


NON_FINITE = [{"a": math.nan}, {"a": [1.0, -math.inf]}]


@pytest.mark.parametrize("parameters", NON_FINITE, ids=repr)
def test_non_finite_numbers_are_rejected_at_deposit(parameters: dict[str, Any]) -> None:
    """msgspec would store NaN/inf as null: a number would come back as None."""
    work = Work(pipeline="p", id="w1", parameters=parameters)
    with pytest.raises(ValidationError) as info:
        codec.record_fields(work)
    assert info.value.field == "parameters"
    assert "NaN" in info.value.rule


@pytest.mark.parametrize("parameters", NON_FINITE, ids=repr)
def test_to_json_refuses_non_finite_numbers(parameters: dict[str, Any]) -> None:
    work = Work(pipeline="p", parameters=parameters)
    with pytest.raises(ValidationError) as info:
        work.to_json()
    assert info.value.field == "parameters"


# -- garbage never raises anything but ValidationError ---------------------------------------


def _decodes_or_rejects(decode: Any, data: Any) -> None:
    try:
        work = decode(data)
    except ValidationError as exc:
        assert exc.field and exc.rule
        return
    assert isinstance(work, Work)
    work.validate()


@pytest.mark.parametrize(
    "data",
    [
        b"", b"not json", b"{", b"[]", b"[1, 2]", b"null", b"3", b'"work"', b"\xff\xfe",
        b'{"pipeline": 3}', b'{"pipeline": "p", "priority": "high"}',
        b'{"pipeline": "p", "priority": true}', b'{"pipeline": "p", "priority": 9}',
        b'{"pipeline": "p", "timeout": 1e400}', b'{"pipeline": "p", "creation": -1}',
        b'{"pipeline": "p", "error": "x"}', b'{"pipeline": "p", "error": {"kind": 1}}',
        b'{"pipeline": "p", "tags": "x"}', b'{"pipeline": "p", "event": ["1"]}',
        b'{"pipeline": "p", "parameters": [1]}', b'{"pipeline": "p", "status": "zombie"}',
        b'{"pipeline": "p", "user": "\\ud800"}', b"[" * 5000,
        b'{"pipeline": "p", "function": "a.b", "command": ["x"]}',
    ],
    ids=repr,
)  # fmt: skip
def test_from_json_garbage(data: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        Work.from_json(data)
    assert info.value.field and info.value.rule


@pytest.mark.parametrize("data", [None, 3, [], ["pipeline"], "p", b"{}"], ids=repr)
def test_from_dict_garbage(data: Any) -> None:
    with pytest.raises(ValidationError):
        Work.from_dict(data)


@settings(max_examples=500)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_from_json_fuzz_bytes(data: bytes) -> None:
    _decodes_or_rejects(Work.from_json, data)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_from_json_fuzz_str(data: str) -> None:
    _decodes_or_rejects(Work.from_json, data)


@pytest.mark.parametrize("data", ["\ud800", '{"pipeline": "p", "user": "\udcff"}'], ids=repr)
def test_from_json_str_with_lone_surrogate(data: str) -> None:
    with pytest.raises(ValidationError) as info:
        Work.from_json(data)
    assert info.value.field == "work"


any_value = st.recursive(
    json_scalars | st.just(math.nan) | st.binary(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts | st.integers(), inner,
                                                              max_size=3),
    max_leaves=6,
)  # fmt: skip
field_names = st.sampled_from([*ALL_FIELDS, "tag", "unknown"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(field_names, any_value, max_size=8), st.booleans())
def test_from_dict_fuzz(data: dict[str, Any], with_pipeline: bool) -> None:
    if with_pipeline:
        data = {"pipeline": "p", **data}
    _decodes_or_rejects(Work.from_dict, data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(field_names, json_values, max_size=8))
def test_from_json_fuzz_objects(data: dict[str, Any]) -> None:
    data = {"pipeline": "p", **data}
    _decodes_or_rejects(Work.from_json, msgspec.json.encode(data))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(works(), field_names, any_value)
def test_one_bad_field_in_a_valid_payload(work: Work, field: str, value: Any) -> None:
    payload = {**work.payload, field: value}
    _decodes_or_rejects(Work.from_dict, payload)
    try:
        data = msgspec.json.encode(payload)
    except (TypeError, ValueError):
        return
    _decodes_or_rejects(Work.from_json, data)
