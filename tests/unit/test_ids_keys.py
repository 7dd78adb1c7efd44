"""Work ids (time-sortable, unique) and Redis key names (pinned, one hash tag per pipeline)."""

from __future__ import annotations

import string
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from workflow import ids, keys
from workflow.keys import PipelineKeys, pipeline_keys, pipelines_key, work_key
from workflow.work import NAME_RE

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NAME_CHARS = string.ascii_letters + string.digits + "-_."
names = st.text(NAME_CHARS, min_size=1, max_size=128)
prefixes = st.text(NAME_CHARS, min_size=1, max_size=20)  # what Settings accepts


def hash_tag(key: str) -> str | None:
    """The part of `key` Redis Cluster hashes (the cluster spec's rule)."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def id_ms(work_id: str) -> int:
    """The millisecond timestamp in the first 10 characters of a ULID."""
    value = 0
    for c in work_id[:10]:
        value = value * 32 + CROCKFORD.index(c)
    return value


# -- ids ------------------------------------------------------------------------------------


def test_id_shape() -> None:
    work_id = ids.new_id()
    assert len(work_id) == 26
    assert set(work_id) <= set(CROCKFORD)
    assert NAME_RE.fullmatch(work_id), "an id is part of a key name"


def test_ids_are_unique() -> None:
    made = [ids.new_id() for _ in range(100_000)]
    assert len(set(made)) == len(made)
    assert all(len(i) == 26 for i in made)


def test_ids_carry_their_creation_time() -> None:
    import time

    before = time.time_ns() // 1_000_000
    work_id = ids.new_id()
    assert before <= id_ms(work_id) <= time.time_ns() // 1_000_000


@given(st.lists(st.integers(0, 2**48 - 1), min_size=2, max_size=20, unique=True))
def test_ids_sort_by_creation_time(times_ms: list[int]) -> None:
    made = []
    for ms in times_ms:  # each as if made by a fresh process (no earlier id to follow)
        with mock.patch.object(ids.time, "time_ns", return_value=ms * 1_000_000 + 999_999), \
                mock.patch.object(ids, "_last", 0):  # fmt: skip
            made.append((ms, ids.new_id()))
    assert [ms for ms, _ in sorted(made, key=lambda p: p[1])] == sorted(times_ms)
    assert all(id_ms(i) == ms for ms, i in made)


def test_ids_of_one_millisecond_sort_in_the_order_made() -> None:
    with mock.patch.object(ids.time, "time_ns", return_value=1_700_000_000_000_000_000), \
            mock.patch.object(ids, "_last", 0):  # fmt: skip
        made = [ids.new_id() for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000
    assert {id_ms(i) for i in made} == {1_700_000_000_000}


def test_ids_made_later_sort_later() -> None:
    import time

    made = []
    for _ in range(5):
        made.append(ids.new_id())
        time.sleep(0.002)
    assert made == sorted(made)
    assert len(set(made)) == len(made)


# -- keys -----------------------------------------------------------------------------------


def test_pipeline_keys_are_pinned() -> None:
    k = pipeline_keys("workflow", "p")
    assert k == PipelineKeys(
        queued="workflow:{p}:queued",
        running="workflow:{p}:running",
        delayed="workflow:{p}:delayed",
        success="workflow:{p}:success",
        failure="workflow:{p}:failure",
        cancelled="workflow:{p}:cancelled",
        seq="workflow:{p}:seq",
        stats="workflow:{p}:stats",
        done="workflow:{p}:done",
        wake="workflow:{p}:wake",
        paused="workflow:{p}:paused",
        retention="workflow:{p}:retention",
        tp="workflow:{p}:tp:",
        work="workflow:{p}:work:",
        ix="workflow:{p}:ix:",
    )
    assert k._fields == (
        "queued", "running", "delayed", "success", "failure", "cancelled",
        "seq", "stats", "done", "wake", "paused", "retention", "tp", "work", "ix",
    )  # fmt: skip
    assert keys.index_key("workflow", "p", "event", 42) == "workflow:{p}:ix:event:42"
    assert keys.index_key("workflow", "p", "tag", "a b") == k.ix + "tag:a b"
    with pytest.raises(ValueError):
        keys.index_key("workflow", "p", "status", "success")
    assert keys.throughput_key("workflow", "p", 29000000) == "workflow:{p}:tp:29000000"
    assert keys.pipeline_pattern("workflow", "p") == "workflow:{p}:*"
    assert work_key("workflow", "p", "01ABC") == "workflow:{p}:work:01ABC"
    assert k.work + "01ABC" == work_key("workflow", "p", "01ABC")
    assert pipelines_key("workflow") == "workflow:pipelines"
    assert keys.DEFAULT_PREFIX == "workflow"


def test_pinned_with_another_prefix() -> None:
    k = pipeline_keys("wftest", "sample-pipeline")
    assert k.queued == "wftest:{sample-pipeline}:queued"
    assert work_key("wftest", "sample-pipeline", "x") == "wftest:{sample-pipeline}:work:x"
    assert pipelines_key("wftest") == "wftest:pipelines"


@given(prefixes, names, names)
def test_every_key_of_a_pipeline_shares_its_hash_tag(prefix: str, pipeline: str, wid: str) -> None:
    k = pipeline_keys(prefix, pipeline)
    every = [*k, work_key(prefix, pipeline, wid)]
    assert len(set(every)) == len(every)
    for key in every:
        assert hash_tag(key) == pipeline, key
        assert key.startswith(f"{prefix}:")
    assert len({key_slot(key.encode()) for key in every}) == 1
    assert key_slot(k.queued.encode()) == key_slot(pipeline.encode())


@given(prefixes, prefixes, names, names)
def test_keys_differ_across_prefixes_and_pipelines(a: str, b: str, p: str, q: str) -> None:
    ka, kb = set(pipeline_keys(a, p)), set(pipeline_keys(b, q))
    if (a, p) == (b, q):
        assert ka == kb
    else:
        assert not ka & kb
        assert work_key(a, p, "w") != work_key(b, q, "w")
    assert (pipelines_key(a) == pipelines_key(b)) == (a == b)
    assert pipelines_key(a) not in ka


def test_global_key_is_outside_every_pipeline() -> None:
    assert hash_tag(pipelines_key("workflow")) is None
