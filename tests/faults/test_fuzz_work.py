"""Bad input, fuzzed: `Work(**kwargs)`, `Work.from_dict`, `Work.from_json` and the record
decoders raise nothing but `WorkflowError` subclasses, and whatever they accept can be
stored and read back (an accepted Work never becomes a corrupt record)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workflow import Failure, Work
from workflow.codec import decode_hash, decode_json, decode_record, record_fields
from workflow.errors import CorruptWork, ValidationError, WorkflowError

FIELDS = [f.name for f in msgspec.structs.fields(Work)]
RECORD_FIELDS = ["body", "status", "attempt", "start", "stop", "results", "products", "plots",
                 "error", "priority", "timeout", "retries", "site", "user", "parent", "tags",
                 "event", "token", "deadline"]  # fmt: skip
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.one_of(st.from_regex(r"\A[A-Za-z0-9_.\-]{1,12}\Z"), st.text(max_size=20))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(), st.text(max_size=20), st.sampled_from(["\ud800", "a\x00b", "{p}", "a:b", ""]),
    st.binary(max_size=10), names,
)  # fmt: skip
failures = st.builds(
    Failure, kind=st.one_of(st.text(max_size=10), scalars), message=st.one_of(st.text(), scalars),
    traceback=st.one_of(st.none(), st.text(), scalars), attempt=st.one_of(st.integers(), scalars),
    time=st.one_of(st.none(), st.floats(), scalars),
)  # fmt: skip
values = st.recursive(
    st.one_of(scalars, failures),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=10,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip
texts = st.lists(st.text(max_size=8), max_size=3)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "pipeline": names, "id": names, "path": st.text(max_size=10), "site": st.text(max_size=10),
    "user": st.one_of(st.none(), st.text(max_size=10)), "function": st.sampled_from(
        [None, "m.f", "a.b.c", "os.path", "1.x", "f", "m.f()", "__import__('os').x"]),
    "parameters": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "config": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "results": json_values, "event": st.lists(st.integers(), max_size=3),
    "tags": texts, "group": texts, "products": texts, "plots": texts, "command": texts,
    "precursors": st.lists(st.dictionaries(st.text(max_size=4), st.text(max_size=4)), max_size=2),
    "timeout": st.integers(-5, 300_000), "retries": st.integers(-2, 12),
    "priority": st.integers(-1, 7), "attempt": st.integers(-2, 5), "archive": st.booleans(),
    "creation": st.floats(), "start": st.floats(), "stop": st.floats(),
    "status": st.sampled_from(["created", "queued", "running", "success", "failure",
                               "cancelled", "waiting", "zombie", ""]),
    "error": st.one_of(st.none(), failures),
}  # fmt: skip
assert set(PLAUSIBLE) == set(FIELDS)
kwargs = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=8),  # anything at all
    st.builds(  # mostly plausible, a few fields anything
        lambda a, b: {**a, **b},
        st.fixed_dictionaries({}, optional=PLAUSIBLE),
        st.dictionaries(st.sampled_from(FIELDS), values, max_size=2),
    ),
    st.fixed_dictionaries({}, optional=PLAUSIBLE),
)


def _stored_and_read_back(work: Work) -> None:
    """What deposit would store, then read: `record_fields` + the script's own fields."""
    try:
        data = work.to_json()
        pairs = record_fields(work)
    except ValidationError:
        return  # refused before anything is written: fine
    again = Work.from_json(data)
    assert msgspec.json.decode(again.to_json()) == msgspec.json.decode(data)  # 0 == 0.0
    record = {str(k): v if isinstance(v, bytes) else str(v).encode()
              for k, v in zip(pairs[0::2], pairs[1::2], strict=True)}  # fmt: skip
    record |= {"status": work.status.encode(), "attempt": str(work.attempt).encode(),
               "priority": str(work.priority).encode()}  # fmt: skip
    if work.id is None:
        return  # deposit assigns one; the body then carries it
    back = decode_record(work.id, record)
    assert back.pipeline == work.pipeline and back.parameters == again.parameters


@FUZZ
@given(kwargs=kwargs, pipeline=st.one_of(names, st.just("p"), values))
def test_constructor_raises_only_workflow_errors(kwargs: dict[str, Any], pipeline: Any) -> None:
    kwargs.setdefault("pipeline", pipeline)
    try:
        work = Work(**kwargs)
    except WorkflowError as exc:
        assert isinstance(exc, ValidationError) and exc.field and exc.rule
        return
    _stored_and_read_back(work)


@FUZZ
@given(data=st.one_of(values, kwargs, st.builds(lambda k: {"pipeline": "p", **k}, kwargs)))
@example(data={"parameters": "\ud800"})  # raised UnicodeEncodeError (found by this test)
def test_from_dict_raises_only_workflow_errors(data: Any) -> None:
    try:
        work = Work.from_dict(data)
    except WorkflowError as exc:
        assert isinstance(exc, ValidationError) and exc.field and exc.rule
        return
    _stored_and_read_back(work)


def _json(value: Any) -> bytes:
    try:
        return msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError):
        return b"{"


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=200), st.text(max_size=200),
    st.builds(_json, values), st.builds(_json, kwargs),
    st.builds(lambda k: _json({"pipeline": "p", **k}), kwargs),
    st.sampled_from([b'{"pipeline":"p","results":1e400}', b'{"pipeline":"p","attempt":1e3}',
                     b'{"pipeline":"p","event":[9007199254740993]}', b'{"pipeline":"p"}\x00',
                     b'{"pipeline":"p","error":{"kind":1}}', b'{"pipeline":"p","id":"a:b"}',
                     b'{"pipeline":"p","function":"m.f","command":["x"]}', b"\xef\xbb\xbf{}",
                     '{"pipeline":"\ud800"}', b'{"pipeline":"p","pipeline":"q:"}']),
))  # fmt: skip
def test_from_json_raises_only_workflow_errors(data: bytes | str) -> None:
    try:
        work = Work.from_json(data)
    except WorkflowError as exc:
        assert isinstance(exc, ValidationError) and exc.field and exc.rule
        return
    assert decode_json(work.to_json()) == work
    _stored_and_read_back(work)


GOOD = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in zip(
    *(lambda p: (p[0::2], p[1::2]))(record_fields(Work(pipeline="p", id="w", tags=["a"],
                                                       parameters={"x": 1}, results={"r": 2}))),
    strict=True,
)} | {"status": b"queued", "attempt": b"0", "priority": b"3"}  # fmt: skip
raw_values = st.one_of(
    st.binary(max_size=40), st.builds(_json, values), st.sampled_from([b"", b"nan", b"-1",
    b"1e309", b"null", b"[]", b"{}", b"\xff", b"running", b"9" * 30]),
)  # fmt: skip


@FUZZ
@given(
    changes=st.dictionaries(st.one_of(st.sampled_from(RECORD_FIELDS), st.text(max_size=8)),
                            st.one_of(st.none(), raw_values), max_size=5),
    work_id=st.sampled_from(["w", "other", ""]),
    odd_names=st.dictionaries(st.binary(min_size=1, max_size=6), raw_values, max_size=2),
)
@example(changes={}, work_id="w", odd_names={b"\xff\xfe": b"x"})  # raised UnicodeDecodeError
def test_record_decoding_raises_only_corrupt_work(
    changes: dict[str, bytes | None], work_id: str, odd_names: dict[bytes, bytes]
) -> None:
    record = dict(GOOD)
    for field, value in changes.items():
        if value is None:
            record.pop(field, None)
        else:
            record[field] = value
    raw = {k.encode(): v for k, v in record.items()}
    raw |= {k: v for k, v in odd_names.items() if k.decode(errors="replace") not in record}
    for decode, arg in ((decode_record, record), (decode_hash, raw)):
        try:
            work = decode(work_id, arg)  # type: ignore[operator]
        except CorruptWork as exc:
            assert exc.work_id == work_id and exc.reason
            continue
        work.validate()  # what was accepted is a valid Work
        assert work.id == work_id
        for name in ("start", "stop", "creation"):
            value = getattr(work, name)
            assert value is None or math.isfinite(value)
