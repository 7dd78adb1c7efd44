"""Batched completions and prefetch: short works are leased ahead and recorded in
batches, long works are never held back from other workers, nothing runs twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workflow import Client, Work

from .conftest import WorkerProcess, events, wait_for

P = "batch-pipe"


def test_long_works_are_not_leased_ahead(
    client: Client, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    journal = tmp_path / "j.jsonl"
    client.deposit([Work(pipeline=P, parameters={"path": str(journal), "seconds": 0.3})
                    for _ in range(5)])  # fmt: skip
    start_worker(P, "userfns.journal")
    wait_for(lambda: client.counts(P)["running"], 15, "the first work to start")
    peak = 0
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        peak = max(peak, client.counts(P)["running"])
        time.sleep(0.01)
    assert peak == 1  # one running, none leased ahead of its slot
    second = start_worker(P, "userfns.journal")  # so the other worker gets its share
    wait_for(lambda: client.counts(P)["success"] == 5, 15, "every work to finish")
    assert len(events(journal, "start")) == 5
    assert second.proc.poll() is None


@pytest.mark.parametrize("mode", [["--in-process"], ["-c", "2"]], ids=["in-process", "isolated"])
def test_short_works_in_batches_run_exactly_once(
    client: Client, start_worker: Callable[..., WorkerProcess], mode: list[str]
) -> None:
    n = 3000
    client.deposit([Work(pipeline=P, parameters={"a": i, "b": 0}) for i in range(n)])
    workers = [start_worker(P, "userfns.add", "--burst", *mode) for _ in range(2)]
    for w in workers:
        assert w.wait(120) == 0, w.log()
    stats = client.stats(P)
    assert (stats["success"], stats["withdrawn"]) == (n, n)  # none leased twice
    assert "released" not in stats and "expired" not in stats
    sample = client.get(client.ids(P, "success", limit=1)[0], pipeline=P)
    assert sample.results == {"sum": sample.parameters["a"]}  # type: ignore[index]
    assert sum(w.log().count(" success after ") for w in workers) == n


@pytest.mark.parametrize("mode", [["--in-process"], []], ids=["in-process", "isolated"])
def test_works_leased_ahead_of_a_long_one_are_handed_back(
    client: Client, start_worker: Callable[..., WorkerProcess], tmp_path: Path, mode: list[str]
) -> None:
    """Short works teach the worker to lease ahead; then one runs for 4 s. The short works
    it holds behind that one go back to the queue (within about a second), and a second
    worker finishes them all while the long one still runs."""
    journal = tmp_path / "j.jsonl"
    quick = [Work(pipeline=P, parameters={"a": i, "b": 0}, function="userfns.add")
             for i in range(300)]  # fmt: skip
    long = Work(pipeline=P, function="userfns.journal",
                parameters={"path": str(journal), "seconds": 4.0, "label": "long"})  # fmt: skip
    client.deposit([*quick[:200], long, *quick[200:]])
    first = start_worker(P, *mode)
    wait_for(lambda: events(journal, "start"), 15, "the long work to start")
    started = time.monotonic()
    start_worker(P, *mode)
    wait_for(lambda: client.counts(P)["success"] == len(quick), 10, "every short work")
    assert time.monotonic() - started < 3.5  # not after the long one
    assert not events(journal, "done")  # the long one is still running
    assert first.proc.poll() is None
    wait_for(lambda: client.counts(P)["success"] == len(quick) + 1, 10, "the long work")
    assert "released" in client.stats(P) or client.stats(P)["withdrawn"] == len(quick) + 1
