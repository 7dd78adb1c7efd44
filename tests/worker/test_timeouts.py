"""Hard timeouts: a child that ignores SIGTERM is SIGKILLed `kill_after_s` later, and the
work's own subprocesses are stopped with it (the child leads its process group)."""

from __future__ import annotations

import time
from pathlib import Path

from workflow import Client, Work

from .conftest import FN, IN_FN, alive, cpu_seconds, events, wait_for, wait_status


def test_a_child_ignoring_sigterm_is_sigkilled(
    client: Client, thread_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    tw = thread_worker(["stubborn"], kill_after_s=0.5)
    work = Work(
        pipeline="stubborn",
        function=IN_FN + "stubborn",
        timeout=1,
        retries=0,
        parameters={"path": str(journal)},
    )
    client.deposit([work])
    (run,) = wait_for(lambda: events(journal, "start"), 10, "the work to start")
    stored = wait_status(client, work, "failure", timeout=10)
    assert stored.error is not None and stored.error.kind == "timeout"
    assert 1.4 <= stored.stop - stored.start < 3.0  # type: ignore[operator]  # 1 s + 0.5 s
    assert not alive(run["pid"]) and events(journal, "done") == []
    # The worker carries on with a new child.
    after = Work(pipeline="stubborn", function=IN_FN + "add", parameters={"a": 1, "b": 1})
    client.deposit([after])
    assert wait_status(client, after, "success", "failure", timeout=10).status == "success"
    tw.worker.stop()
    assert tw.join() == 0


def test_a_timeout_also_stops_the_works_subprocesses(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    start_worker("spawn", FN + "spawn")
    work = Work(pipeline="spawn", timeout=1, retries=0, parameters={"path": str(journal)})
    client.deposit([work])
    (run,) = wait_for(lambda: events(journal, "start"), 5, "the work to start")
    stored = wait_status(client, work, "failure", timeout=10)
    assert stored.error is not None and stored.error.kind == "timeout"
    assert not alive(run["pid"])
    wait_for(lambda: not alive(run["grandchild"]), 2, "the work's `sleep` to be stopped")


def test_the_supervisor_does_not_spin_while_waiting_to_sigkill(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    worker = start_worker("stubborn", FN + "stubborn")  # the default kill-after: 5 s
    work = Work(pipeline="stubborn", timeout=1, retries=0, parameters={"path": str(journal)})
    client.deposit([work])
    (run,) = wait_for(lambda: events(journal, "start"), 5, "the work to start")
    time.sleep(max(0.0, run["t"] + 1.2 - time.time()))  # past the timeout: SIGTERM ignored
    assert client.get(work.id, pipeline="stubborn").status == "running"  # type: ignore[arg-type]
    before = cpu_seconds(worker.pid)
    time.sleep(0.6)  # SIGKILL is due 5 s after the SIGTERM: the supervisor has nothing to do
    used = cpu_seconds(worker.pid) - before
    assert used < 0.15, f"the idle supervisor used {used:.2f} s of CPU in 0.6 s"
