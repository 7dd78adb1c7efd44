"""Races between the worker's threads, made deterministic: a `Worker` runs in a thread of
the test process on a client whose Redis round trip is stalled at the worst moment (as a
slow network or a busy server would), and the test checks the outcome still holds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from workflow import Client, Settings, Work
from workflow.work import Failure

from .conftest import IN_FN, events, wait_for, wait_status


class StalledRenew(Client):
    """The first renew that includes a first attempt waits for `gate` before it is sent."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gate, self.stalled = threading.Event(), threading.Event()

    def renew(self, works: list[Work]) -> list:
        if not self.stalled.is_set() and any(w.attempt == 1 for w in works):
            self.stalled.set()
            self.gate.wait(10)
        return super().renew(works)


class SlowFailure(Client):
    """Each failure completion takes 0.5 s to reach Redis."""

    def complete(
        self, work: Work, outcome: str, *, failure: Failure | None = None, terminal: bool = False
    ) -> str:
        if outcome == "failure":
            time.sleep(0.5)
        return super().complete(work, outcome, failure=failure, terminal=terminal)  # type: ignore[arg-type]


def test_a_late_renew_of_a_finished_attempt_does_not_stop_the_next_one(
    client: Client, settings: Settings, thread_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    stalling = StalledRenew(settings.replace(lease_ms=1500))  # backoff 0: retried at once
    thread_worker(["race"], worker_client=stalling)
    try:
        work = Work(
            pipeline="race",
            function=IN_FN + "flaky",
            retries=1,
            parameters={"path": str(journal), "fail_for": 1.0, "succeed_for": 1.0},
        )
        client.deposit([work])
        # A heartbeat takes the first attempt's lease and stalls; meanwhile the first
        # attempt fails and the retry starts; then the stale renew goes out.
        wait_for(stalling.stalled.is_set, 5, "a heartbeat during the first attempt")
        wait_for(lambda: len(events(journal, "start")) == 2, 5, "the second attempt")
        stalling.gate.set()
        stored = wait_status(client, work, "success", "failure", timeout=10)
        assert (stored.status, stored.attempt) == ("success", 2), stored.error
    finally:
        stalling.gate.set()


def test_burst_does_not_exit_while_its_failure_is_being_recorded(
    client: Client, settings: Settings, thread_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    work = Work(
        pipeline="race",
        function=IN_FN + "journal_raise",
        retries=1,
        parameters={"path": str(journal)},
    )
    client.deposit([work])
    slow = SlowFailure(settings.replace(lease_ms=1500))  # backoff 0: retried at once
    tw = thread_worker(["race"], worker_client=slow, burst=True)
    assert tw.join(15) == 0
    stored = client.get(work.id, pipeline="race")  # type: ignore[arg-type]
    assert (stored.status, stored.attempt) == ("failure", 2)
    assert len(events(journal, "start")) == 2
