"""A work cancelled while it runs: the heartbeat learns it on its next renew, the child
is stopped, and no completion is written: the work stays `cancelled`."""

from __future__ import annotations

from pathlib import Path

from workflow import Client, Work

from .conftest import FN, alive, events, wait_for, wait_status

P = "cancel"


def test_cancel_while_running_stops_the_child_and_writes_nothing(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    worker = start_worker(P, FN + "journal")  # a heartbeat every 0.5 s
    work = Work(pipeline=P, parameters={"path": str(journal), "seconds": 30, "label": "long"})
    client.deposit([work])
    (run,) = wait_for(lambda: events(journal, "start"), 5, "the work to start")
    assert client.cancel(work.id) == "running"  # type: ignore[arg-type]
    wait_for(lambda: not alive(run["pid"]), 3, "the child running the work to be stopped")
    # The worker goes on with the next work, in a new child ...
    following = Work(pipeline=P, parameters={"path": str(journal), "label": "next"})
    client.deposit([following])
    wait_status(client, following, "success")
    # ... and never wrote an outcome for the cancelled one.
    stored = client.get(work.id, pipeline=P)  # type: ignore[arg-type]
    assert stored.status == "cancelled" and stored.results is None
    assert stored.error is not None and stored.error.kind == "cancelled"
    assert [e["label"] for e in events(journal, "done")] == ["next"]
    assert "rejected" not in client.stats(P)  # no completion was even attempted
    assert "not completed" in worker.log()
    assert client.counts(P) == {
        "queued": 0,
        "delayed": 0,
        "running": 0,
        "success": 1,
        "failure": 0,
        "cancelled": 1,
    }
