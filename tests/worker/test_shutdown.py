"""SIGTERM and SIGINT: stop withdrawing, let running works finish within the grace period,
hand back what does not finish (the attempt not counted), exit 0. A second signal hands
back at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from workflow import Client, Work

from ..helpers import command_calls
from .conftest import FN, alive, cpu_seconds, events, status_of, wait_for, wait_status

P = "shutdown"


def journal_work(journal: Path, seconds: float, label: str = "") -> Work:
    return Work(
        pipeline=P,
        function=FN + "journal",
        parameters={"path": str(journal), "seconds": seconds, "label": label},
    )


def assert_handed_back(client: Client, work: Work) -> None:
    stored = client.get(work.id, pipeline=P)  # type: ignore[arg-type]
    assert (stored.status, stored.attempt) == ("queued", 0)  # the attempt is not counted
    assert stored.error is None and stored.results is None
    assert client.counts(P)["queued"] >= 1 and client.counts(P)["running"] == 0


def test_sigterm_lets_the_running_work_finish_and_hands_back_the_rest(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P)
    works = [journal_work(journal, 1.0, str(i)) for i in range(3)]
    client.deposit(works)
    wait_for(lambda: events(journal, "start"), 5, "the first work to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    first, *rest = works
    stored = client.get(first.id, pipeline=P)  # type: ignore[arg-type]
    assert stored.status == "success" and stored.results is not None
    assert [e["label"] for e in events(journal, "done")] == ["0"]
    for work in rest:
        assert_handed_back(client, work)
    assert len(events(journal, "start")) == 1
    assert "stopping" in worker.log() and "Traceback" not in worker.log()


def test_sigint_is_a_graceful_stop_too(client: Client, start_worker, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P)
    work = journal_work(journal, 0.5)
    client.deposit([work])
    wait_for(lambda: events(journal, "start"), 5, "the work to start")
    worker.signal(signal.SIGINT)
    assert worker.wait(10) == 0
    assert status_of(client, work) == "success"


def test_short_grace_hands_back_a_long_work(client: Client, start_worker, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P, FN + "journal", "--grace", "0.5")
    work = journal_work(journal, 30)
    client.deposit([work])
    (run,) = wait_for(lambda: events(journal, "start"), 5, "the work to start")
    t0 = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - t0 < 3.0
    assert_handed_back(client, work)
    assert not alive(run["pid"]) and events(journal, "done") == []
    assert client.stats(P).get("released") == 1


def test_second_sigterm_hands_back_at_once(client: Client, start_worker, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P, FN + "journal")  # the default grace: 30 s
    work = journal_work(journal, 30)
    client.deposit([work])
    (run,) = wait_for(lambda: events(journal, "start"), 5, "the work to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.proc.poll() is None and alive(run["pid"])  # the grace period runs
    t0 = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - t0 < 2.0
    assert_handed_back(client, work)
    assert not alive(run["pid"])


def test_handed_back_work_runs_again_on_the_next_worker(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P, FN + "journal", "--grace", "0")
    work = journal_work(journal, 0.5)
    client.deposit([work])
    wait_for(lambda: events(journal, "start"), 5, "the work to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    start_worker(P, FN + "journal", "--burst", ready=False).wait(15)
    stored = wait_status(client, work, "success", "failure")
    assert (stored.status, stored.attempt) == ("success", 1)
    assert len(events(journal, "start")) == 2 and len(events(journal, "done")) == 1


def _beats(client: Client) -> int:
    """How many heartbeats Redis has served: only the heartbeat trims the workers set."""
    return command_calls(client, "zremrangebyscore")


def test_heartbeat_keeps_its_pace_during_the_grace_period(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P, FN + "journal")  # lease 1.5 s: a heartbeat every 0.5 s
    work = journal_work(journal, 3.0)
    client.deposit([work])
    wait_for(lambda: events(journal, "start"), 5, "the work to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.2)
    before, cpu_before = _beats(client), cpu_seconds(worker.pid)
    time.sleep(1.0)
    beats, cpu = _beats(client) - before, cpu_seconds(worker.pid) - cpu_before
    assert worker.proc.poll() is None  # still in its grace period
    assert beats <= 4, f"{beats} heartbeats in 1 s (expected 2); worker CPU {cpu:.2f} s"
