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
    peak = 0
    deadline = time.monotonic() + 1.5
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
