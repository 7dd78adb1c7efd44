"""`workflow run` options: --lives, --burst, several pipelines, filters, --concurrency,
FUNCTION vs each work's own function, --in-process, start-up failures, and how fast an
idle worker wakes up."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from workflow import Client, Work

from .conftest import FN, events, status_of, wait_for, wait_status


def journal_work(pipeline: str, journal: Path, seconds: float = 0.0, **fields: object) -> Work:
    return Work(
        pipeline=pipeline,
        function=FN + "journal",
        **fields,  # type: ignore[arg-type]
        parameters={"path": str(journal), "seconds": seconds},
    )


def test_lives_exits_0_after_n_works(client: Client, start_worker) -> None:
    works = [Work(pipeline="lives", parameters={"a": i, "b": 1}) for i in range(3)]
    client.deposit(works)
    worker = start_worker("lives", FN + "add", "--lives", "2", ready=False)
    assert worker.wait(15) == 0
    stored = [client.get(w.id, pipeline="lives") for w in works]  # type: ignore[arg-type]
    assert [(w.status, w.attempt) for w in stored] == [("success", 1)] * 2 + [("queued", 0)]
    assert [w.results for w in stored[:2]] == [{"sum": 1}, {"sum": 2}]


def test_burst_exits_0_at_once_when_there_is_nothing_to_do(client: Client, start_worker) -> None:
    worker = start_worker("burst", FN + "add", "--burst", "--sleep", "30", ready=False)
    assert worker.wait(10) == 0


def test_burst_waits_for_its_own_retries(client: Client, start_worker, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    work = Work(
        pipeline="burst",
        function=FN + "journal_raise",
        retries=1,
        parameters={"path": str(journal)},
    )
    client.deposit([work])
    worker = start_worker("burst", "--burst", ready=False)
    assert worker.wait(15) == 0
    stored = client.get(work.id, pipeline="burst")  # type: ignore[arg-type]
    assert (stored.status, stored.attempt) == ("failure", 2)
    assert len(events(journal, "start")) == 2


def test_burst_with_a_filter_exits_when_nothing_matches(client: Client, start_worker) -> None:
    mine = Work(pipeline="burst", parameters={"a": 1, "b": 2}, site="here")
    other = Work(pipeline="burst", parameters={"a": 1, "b": 2}, site="elsewhere")
    client.deposit([mine, other])
    worker = start_worker("burst", FN + "add", "--burst", "--site", "here", ready=False)
    try:
        assert worker.wait(4) == 0
    finally:
        assert status_of(client, mine) == "success"
        assert status_of(client, other) == "queued"


def test_several_pipelines_and_a_function_for_all(client: Client, start_worker) -> None:
    works = [Work(pipeline=p, parameters={"a": 1, "b": i}) for i, p in enumerate("xyx")]
    works.append(Work(pipeline="z", parameters={"a": 1, "b": 2}))  # not one of ours
    client.deposit(works)
    worker = start_worker("x", "y", FN + "add", "--burst", ready=False)
    assert worker.wait(15) == 0
    assert [status_of(client, w) for w in works] == ["success"] * 3 + ["queued"]


def test_function_argument_overrides_the_works_own_function(client: Client, start_worker) -> None:
    work = Work(pipeline="override", function=FN + "boom", parameters={"a": 2, "b": 3})
    client.deposit([work])
    start_worker("override", FN + "add", "--burst", ready=False).wait(15)
    stored = client.get(work.id, pipeline="override")  # type: ignore[arg-type]
    assert (stored.status, stored.results) == ("success", {"sum": 5})


def test_dash_runs_each_works_own_function_or_command(client: Client, start_worker) -> None:
    works = [
        Work(pipeline="own-a", function=FN + "add", parameters={"a": 2, "b": 3}),
        Work(pipeline="own-b", function=FN + "greet", parameters={"name": "bo"}),
        Work(pipeline="own-b", command=["echo", "from", "a command"]),
    ]
    client.deposit(works)
    assert start_worker("own-a", "own-b", "-", "--burst", ready=False).wait(15) == 0
    stored = [client.get(w.id, pipeline=w.pipeline) for w in works]  # type: ignore[arg-type]
    assert [w.status for w in stored] == ["success"] * 3, [w.error for w in stored]
    assert stored[0].results == {"sum": 5}
    assert stored[1].results == {"text": "hello bo", "quiet": False, "files": []}
    assert stored[2].results["stdout"] == "from a command\n"


def test_filters_take_only_matching_works(client: Client, start_worker) -> None:
    match = dict(
        site="a", tags=["x", "z"], priority=2, user="u", event=[7, 8], config={"parent": "par"}
    )
    near_misses = {  # each differs from a match in one field
        "site": {**match, "site": "b"},
        "tags": {**match, "tags": ["y"]},
        "priority": {**match, "priority": 5},  # withdrawn first if not for the filter
        "user": {**match, "user": "v"},
        "event": {**match, "event": [9]},
        "parent": {**match, "config": {"parent": "other"}},
    }
    misses = {
        k: Work(pipeline="filters", parameters={"a": 0, "b": 0}, **v)  # type: ignore[arg-type]
        for k, v in near_misses.items()
    }
    hit = Work(pipeline="filters", parameters={"a": 1, "b": 1}, **match)  # type: ignore[arg-type]
    client.deposit([*misses.values(), hit])  # the misses are older: withdrawn first otherwise
    worker = start_worker(
        "filters",
        FN + "add",
        "--lives",
        "1",
        "--site",
        "a",
        "--tag",
        "x",
        "--priority",
        "2",
        "--user",
        "u",
        "--event",
        "7",
        "--parent",
        "par",
        ready=False,
    )
    assert worker.wait(15) == 0
    assert status_of(client, hit) == "success"
    assert {k: status_of(client, w) for k, w in misses.items()} == dict.fromkeys(misses, "queued")


def test_concurrency_2_runs_two_works_at_once(client: Client, start_worker, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    works = [journal_work("conc", journal, 1.0) for _ in range(2)]
    client.deposit(works)
    worker = start_worker("conc", "--concurrency", "2", "--burst", ready=False)
    assert worker.wait(15) == 0
    starts, dones = events(journal, "start"), events(journal, "done")
    assert len(starts) == len(dones) == 2
    assert max(e["t"] for e in starts) < min(e["t"] for e in dones)  # the runs overlap
    assert len({e["pid"] for e in starts}) == 2  # in two children


def test_in_process_runs_works_but_cannot_enforce_a_timeout(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    late = journal_work("inproc", journal, 1.5, timeout=1)
    client.deposit([late])
    worker = start_worker("inproc", "--in-process", "--burst", ready=False)
    assert worker.wait(15) == 0
    # No child to stop: the work runs past its timeout and succeeds. Only the lease
    # backstop (start + timeout + grace, 30 s by default) would end a longer one.
    stored = client.get(late.id, pipeline="inproc")  # type: ignore[arg-type]
    assert stored.status == "success" and stored.error is None
    assert stored.stop - stored.start >= 1.5  # type: ignore[operator]
    (run,) = events(journal, "done")
    assert run["pid"] == worker.pid  # it ran in the worker's own process


def test_in_process_runs_quick_works_back_to_back(
    client: Client, start_worker, tmp_path: Path
) -> None:
    works = [journal_work("inproc", tmp_path / "journal", 0.05) for _ in range(3)]
    client.deposit(works)
    assert start_worker("inproc", "--in-process", "--burst", ready=False).wait(15) == 0
    stored = [client.get(w.id, pipeline="inproc") for w in works]  # type: ignore[arg-type]
    assert [w.status for w in stored] == ["success"] * 3
    span = max(w.stop for w in stored) - min(w.start for w in stored)  # type: ignore[type-var]
    assert span < 1.0, f"3 works of 0.05 s each took {span:.1f} s"


def test_in_process_crash_takes_the_worker_down(client: Client, start_worker) -> None:
    work = Work(pipeline="inproc", function=FN + "exit3")
    client.deposit([work])
    worker = start_worker("inproc", "--in-process", ready=False)
    assert worker.wait(15) == 3  # the work's os._exit(3) is the worker's
    assert status_of(client, work) == "running"  # until its lease runs out


@pytest.mark.parametrize(
    ("function", "words"),
    [
        ("nosuchmodule.fn", "cannot import module 'nosuchmodule'"),
        ("userfns.nope", "module 'userfns' has no 'nope'"),
        ("notdotted", "must be a dotted path"),
        ("brokenmod.fn", "brokenmod"),
    ],
)
def test_a_function_that_does_not_import_exits_1_with_one_clear_line(
    client: Client, start_worker, tmp_path: Path, function: str, words: str
) -> None:
    (tmp_path / "brokenmod.py").write_text("raise RuntimeError('database is down')\n")
    worker = start_worker("p", function, ready=False, env={"PYTHONPATH": str(tmp_path)})
    assert worker.wait(15) == 1
    lines = worker.log().strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot start" in lines[0] and words in lines[0]
    assert "Traceback" not in worker.log()


def test_in_process_function_that_does_not_import_exits_1(client: Client, start_worker) -> None:
    worker = start_worker("p", "nosuchmodule.fn", "--in-process", ready=False)
    try:
        assert worker.wait(3) == 1
    finally:
        worker.signal(signal.SIGKILL)


def test_unreachable_redis_exits_1(start_worker) -> None:
    worker = start_worker("p", FN + "add", url="redis://127.0.0.1:1", ready=False)
    assert worker.wait(15) == 1
    assert "cannot reach Redis" in worker.log() and "Traceback" not in worker.log()


def test_an_idle_worker_starts_a_deposited_work_at_once(
    client: Client, start_worker, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    # --sleep 30: only the wake-up signal can start the work quickly
    start_worker("wake", FN + "journal", "--sleep", "30")
    wait_for(lambda: client.redis.exists(f"{client.settings.prefix}:workers"), 5, "a heartbeat")
    work = journal_work("wake", journal)
    client.deposit([work])
    stored = wait_status(client, work, "success", timeout=5)
    (run,) = events(journal, "start")
    assert run["t"] - stored.creation < 1.0  # type: ignore[operator]
