"""Works that go wrong in every way a worker must survive, in one flowing pipeline served
by a real `workflow run`: a stuck function (timeout), a child that ignores SIGTERM (must
be SIGKILLed), a result above the `max_result_bytes` cap, corrupt records planted in
Redis (garbage body, garbage JSON in a data field, a routing copy that disagrees) and a
queued id with no record. Each ends in a defined state with its error recorded, while
the good works around them flow on.

Narrower tests of each path: tests/worker/test_outcomes.py (timeout, crash, bad return),
tests/worker/test_timeouts.py (SIGTERM ignored, subprocesses), and
tests/integration/test_bad_input.py (each corruption at the client's withdraw)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import msgspec
import pytest

from workflow import Client, Settings, Work
from workflow.errors import ValidationError
from workflow.execution import execute
from workflow.keys import work_key
from workflow.worker import Worker

from ..helpers import entries, keys, wait_until, where_ordered
from .conftest import FN, Fleet, keep_done_stream

P = "faults-bad"
CAP = 100_000
GOOD = 60

BAD = {  # id -> how the work is made bad
    "stuck": {"function": FN + "stuck", "timeout": 1},
    "deaf": {"function": FN + "deaf", "timeout": 1},
    "huge": {"function": FN + "huge", "parameters": {"size": 2 * CAP}, "retries": 3},
    "bad-body": {"plant": {"body": b"\x00garbage{"}},
    "bad-results": {"plant": {"results": b'{"unclosed": '}},
    "bad-copy": {"plant": {"priority": b"5"}},  # the body says 4: the copy disagrees
    "odd-field": {"plant": {b"\xff\xfe": b"\x00"}},  # an unknown field, not even UTF-8
}
TOLERATED = {"odd-field"}
"""Unknown fields are ignored (newer writers may add some): these run and succeed."""
EXPECTED = {  # id -> (error kind, words in its message)
    "stuck": ("timeout", "timeout of 1 s"),
    "deaf": ("timeout", "timeout of 1 s"),
    "huge": ("too-large", f"max_result_bytes is {CAP}"),
    "bad-body": ("corrupt", "corrupt"),
    "bad-results": ("corrupt", "corrupt"),
    "bad-copy": ("corrupt", "priority"),
}


def test_bad_works_end_in_defined_states_and_the_rest_flows(
    client: Client, fleet_factory: Callable[[Client], Fleet]
) -> None:
    k = keys(client, P)
    good = [Work(pipeline=P, id=f"g{i:03d}", function=FN + "add", parameters={"a": i, "b": 1})
            for i in range(GOOD)]  # fmt: skip
    bad = []
    for work_id, spec in BAD.items():
        fields = {"function": FN + "add", "parameters": {"a": 1, "b": 2}} if "plant" in spec else {}
        fields |= {"retries": 0, **{f: v for f, v in spec.items() if f != "plant"}}
        bad.append(Work(pipeline=P, id=work_id, priority=4, **fields))  # before the good ones
    keep_done_stream(client, P)
    client.deposit(bad + good)
    for work_id, spec in BAD.items():
        for field, value in spec.get("plant", {}).items():  # type: ignore[union-attr]
            client.redis.hset(work_key(client.settings.prefix, P, work_id), field, value)
    client.redis.zadd(k.queued, {"ghost": 0})  # first in line, and no record
    fleet = fleet_factory(client)
    worker = fleet.start(0, P, "-", "-c", "2", env={"WORKFLOW_MAX_RESULT_BYTES": str(CAP)})
    worker.wait_ready()

    def finished() -> bool:
        c = client.counts(P)
        return c["success"] + c["failure"] == GOOD + len(BAD)

    wait_until(finished, 30, 0.05, what="every work to finish")
    assert client.counts(P) == {"queued": 0, "delayed": 0, "running": 0,
                                "success": GOOD + len(TOLERATED),
                                "failure": len(BAD) - len(TOLERATED), "cancelled": 0}  # fmt: skip
    for work in good + [w for w in bad if w.id in TOLERATED]:
        assert where_ordered(client, work.id, P) == ["success"]  # type: ignore[arg-type]
    # The ghost id is dropped from the queue; nothing else is left of it.
    assert where_ordered(client, "ghost", P) == []
    assert not client.redis.exists(work_key(client.settings.prefix, P, "ghost"))
    for work_id, (kind, words) in EXPECTED.items():
        assert where_ordered(client, work_id, P) == ["failure"], work_id
        stored = client.redis.hmget(work_key(client.settings.prefix, P, work_id), "status", "error")
        assert stored[0] == b"failure", work_id
        error = msgspec.json.decode(stored[1])
        assert error["kind"] == kind and words in error["message"], (work_id, error)
    huge = client.get("huge", pipeline=P)
    assert huge.attempt == 1 and huge.results is None  # no retry, nothing stored
    # The deaf child was SIGKILLed 5 s after its SIGTERM; the good works did not wait.
    deaf = client.get("deaf", pipeline=P)
    assert deaf.stop - deaf.start >= 5.5  # type: ignore[operator]
    assert max(client.get_many(P, [w.id for w in good]), key=lambda w: w.stop).stop < deaf.stop  # type: ignore
    assert client.get("odd-field", pipeline=P).results == {"sum": 3}
    # The done stream: one entry per finished work, the bad ones as failures.
    done = {f[b"id"].decode(): f[b"status"].decode() for f in entries(client, P)}
    assert done == ({w.id: "success" for w in good} | dict.fromkeys(EXPECTED, "failure")
                    | dict.fromkeys(TOLERATED, "success"))  # fmt: skip
    # The worker is still alive and still takes works.
    assert worker.proc.poll() is None
    after = Work(pipeline=P, function=FN + "add", parameters={"a": 2, "b": 2})
    client.deposit([after])
    wait_until(lambda: client.get(after.id).status == "success", 10, 0.02)  # type: ignore[arg-type]
    assert "Traceback" not in worker.log()


def test_the_result_cap_holds_in_process_too(make_client: Callable[..., Client]) -> None:
    c = make_client(lease_ms=1500, max_result_bytes=1000)
    small = Work(pipeline=P, function=FN + "huge", parameters={"size": 10})
    big = Work(pipeline=P, function=FN + "huge", parameters={"size": 2000}, retries=2)
    c.deposit([big, small])
    worker = Worker(c, [P], in_process=True, sleep_s=0.1, burst=True)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    assert c.get(small.id).status == "success"  # type: ignore[arg-type]
    stored = c.get(big.id)  # type: ignore[arg-type]
    assert (stored.status, stored.attempt, stored.error.kind) == ("failure", 1, "too-large")  # type: ignore[union-attr]


def test_the_cap_counts_results_products_and_plots() -> None:
    work = Work(pipeline=P, function=FN + "huge", parameters={"size": 100})
    assert execute(work, max_result_bytes=200).ok
    outcome = execute(work, max_result_bytes=100)
    assert not outcome.ok and outcome.failure.kind == "too-large"  # type: ignore[union-attr]
    assert outcome.results is None
    assert execute(work).ok  # no cap given: none applied


def test_max_result_bytes_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_result_bytes == 16 * 1024 * 1024
    monkeypatch.setenv("WORKFLOW_MAX_RESULT_BYTES", "4096")
    assert Settings.from_env().max_result_bytes == 4096
    monkeypatch.setenv("WORKFLOW_MAX_RESULT_BYTES", "lots")
    with pytest.raises(ValidationError, match="WORKFLOW_MAX_RESULT_BYTES: must be an integer"):
        Settings.from_env()
    with pytest.raises(ValidationError, match="max_result_bytes: must be an integer >= 1"):
        Settings(max_result_bytes=0)
