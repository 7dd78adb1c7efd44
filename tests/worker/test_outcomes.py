"""What one attempt's outcome becomes: one `workflow run PIPELINE --burst` subprocess runs a
batch of works (each with its own `function` or `command`), one after the other in
deposit order, and each test checks one stored record. The batch shows on the way that
the worker survives every failure: a crash replaces the child and the next work runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow import Client, Settings, Work
from workflow.server import PrivateServer

from .conftest import FN, alive, events, worker_command, worker_env

P = "outcomes"


class Batch:
    def __init__(self, works: dict[str, Work], journal: Path, log: str, code: int) -> None:
        self.works, self.journal, self.log, self.code = works, journal, log, code

    def started(self, label: str) -> list[dict]:
        return [e for e in events(self.journal, "start") if e["label"] == label]

    def finished(self, label: str) -> list[dict]:
        return [e for e in events(self.journal, "done") if e["label"] == label]


def _specs(journal: str) -> dict[str, Work]:
    def fn(function: str, retries: int = 0, **parameters: object) -> Work:
        return Work(pipeline=P, function=FN + function, parameters=parameters, retries=retries)

    def jn(label: str, **kw: object) -> Work:
        return fn("journal", path=journal, label=label, **kw)

    py = sys.executable
    return {
        "before-crash": jn("before-crash"),
        "segfault": fn("segfault"),
        "after-segfault": jn("after-segfault"),
        "exit3": fn("exit3"),
        "after-exit": jn("after-exit"),
        "raise": fn("boom", message="kaput\nsecond line"),
        "return-int": fn("return_int"),
        "return-object": fn("return_object"),
        "whole-garbage": fn("whole_garbage"),
        "whole-declines": fn("whole_declines"),
        "timeout": Work(
            pipeline=P,
            function=FN + "journal",
            timeout=1,
            retries=0,
            parameters={"path": journal, "label": "timeout", "seconds": 20},
        ),
        "after-timeout": jn("after-timeout"),
        "retried": fn("journal_raise", retries=1, path=journal, label="retried"),
        "missing-function": fn("nope"),
        "nothing": Work(pipeline=P, retries=2),
        "command-ok": Work(
            pipeline=P,
            command=[py, "-c", "print('hi'); import sys; print('warn', file=sys.stderr)"],
        ),
        "command-exit": Work(
            pipeline=P,
            retries=0,
            command=[py, "-c", "import sys; sys.stderr.write('bad thing\\n'); sys.exit(4)"],
        ),
        "click": fn("greet", name="ada", times=2, loud=True, quiet=False, files=["a", "b"]),
        "whole": fn("whole", x=21),
        "add": fn("add", a=1, b=2),
    }


@pytest.fixture(scope="module")
def batch(redis_server: PrivateServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    tmp = tmp_path_factory.mktemp("outcomes")
    journal = tmp / "journal.jsonl"
    with Client(Settings(url=redis_server.url, prefix="wfoutcomes")) as c:
        c.purge()
        works = _specs(str(journal))
        c.deposit(works.values())
        cmd = worker_command(redis_server.url, "wfoutcomes", P, "--burst")
        proc = subprocess.run(
            cmd,
            cwd=Path(__file__).parent,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        stored = {label: c.get(w.id, pipeline=P) for label, w in works.items()}  # type: ignore[arg-type]
        c.purge()
    yield Batch(stored, journal, proc.stdout + proc.stderr, proc.returncode)


def test_burst_worker_ran_everything_and_exited_0(batch: Batch) -> None:
    assert batch.code == 0, batch.log
    assert {w.status for w in batch.works.values()} <= {"success", "failure"}, batch.log
    assert "Traceback" not in batch.log


@pytest.mark.parametrize("label", ["before-crash", "after-segfault", "after-exit", "add"])
def test_plain_function_succeeds(batch: Batch, label: str) -> None:
    work = batch.works[label]
    assert (work.status, work.attempt, work.error) == ("success", 1, None)
    assert work.start is not None and work.stop is not None and work.stop >= work.start


def test_results_are_stored(batch: Batch) -> None:
    assert batch.works["add"].results == {"sum": 3}


def test_exception_keeps_message_and_full_traceback(batch: Batch) -> None:
    work = batch.works["raise"]
    assert (work.status, work.attempt) == ("failure", 1)
    error = work.error
    assert error is not None and error.kind == "exception" and error.attempt == 1
    assert error.message == "ValueError: kaput"  # the first line only
    assert error.traceback is not None
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "userfns.py" in error.traceback and "raise ValueError(message)" in error.traceback
    assert error.traceback.rstrip().endswith("ValueError: kaput\nsecond line")


@pytest.mark.parametrize(
    ("label", "words"),
    [("segfault", "killed by SIGSEGV"), ("exit3", "exited with code 3")],
)
def test_crash_names_the_signal_or_exit_code(batch: Batch, label: str, words: str) -> None:
    work = batch.works[label]
    assert work.status == "failure" and work.error is not None
    assert work.error.kind == "crash"
    assert words in work.error.message


@pytest.mark.parametrize(("crash", "after"), [
    ("segfault", "after-segfault"), ("exit3", "after-exit"), ("timeout", "after-timeout"),
])  # fmt: skip
def test_a_dead_child_is_replaced(batch: Batch, crash: str, after: str) -> None:
    """Works started after the crash was recorded ran in other processes than those
    started before it; the work queued behind the crash (if any) still succeeded."""
    stop = batch.works[crash].stop
    assert batch.works[crash].status == "failure" and stop is not None
    starts = events(batch.journal, "start")
    before = {e["pid"] for e in starts if e["t"] < stop}
    later = {e["pid"] for e in starts if e["t"] > stop}
    assert before and later and not before & later
    assert batch.works[after].status == "success"


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("return-int", "returned int: expected a results dict"),
        ("return-object", "returned data that cannot be stored"),
        ("whole-garbage", "returned str: expected a Work"),
    ],
)
def test_garbage_return_is_bad_return(batch: Batch, label: str, words: str) -> None:
    work = batch.works[label]
    assert work.status == "failure" and work.error is not None
    assert work.error.kind == "bad-return"
    assert words in work.error.message
    assert work.results is None


def test_timeout_stops_the_child(batch: Batch) -> None:
    work = batch.works["timeout"]
    assert (work.status, work.attempt) == ("failure", 1)
    assert work.error is not None and work.error.kind == "timeout"
    assert "timeout of 1 s" in work.error.message
    assert work.stop is not None and work.start is not None
    assert 0.9 <= work.stop - work.start < 3.0  # stopped at its timeout, not when it ended
    (run,) = batch.started("timeout")
    assert not alive(run["pid"])  # the child was really stopped ...
    assert batch.finished("timeout") == []  # ... and never got to finish


def test_retries_follow_retries(batch: Batch) -> None:
    work = batch.works["retried"]
    assert (work.status, work.attempt) == ("failure", 2)  # retries=1: two runs, then terminal
    assert len(batch.started("retried")) == 2
    assert work.error is not None and work.error.kind == "exception"
    assert work.error.attempt == 2
    assert "RuntimeError: attempt failed (retried)" in work.error.message


def test_nothing_to_run_fails_at_once_without_retry(batch: Batch) -> None:
    work = batch.works["nothing"]
    assert (work.status, work.attempt, work.retries) == ("failure", 1, 2)
    assert work.error is not None and work.error.kind == "config"
    assert "nothing to run" in work.error.message


def test_a_work_function_that_does_not_exist_fails_with_a_clear_message(batch: Batch) -> None:
    work = batch.works["missing-function"]
    assert work.status == "failure" and work.error is not None
    assert "userfns" in work.error.message and "nope" in work.error.message


def test_command_success_keeps_its_output(batch: Batch) -> None:
    work = batch.works["command-ok"]
    assert work.status == "success"
    assert work.results == {"returncode": 0, "stdout": "hi\n", "stderr": "warn\n"}


def test_command_nonzero_exit_is_failure_kind_exit(batch: Batch) -> None:
    work = batch.works["command-exit"]
    assert (work.status, work.attempt) == ("failure", 1)
    assert work.error is not None and work.error.kind == "exit"
    assert "exited with code 4" in work.error.message and "bad thing" in work.error.message
    assert work.results == {"returncode": 4, "stdout": "", "stderr": "bad thing\n"}


def test_click_command_gets_flags_from_parameters(batch: Batch) -> None:
    work = batch.works["click"]
    assert work.status == "success", work.error
    # --name ada --times 2 --loud --files a --files b (quiet=False is left out)
    assert work.results == {"text": "HELLO ADA HELLO ADA", "quiet": False, "files": ["a", "b"]}


def test_whole_work_mode_gets_the_work_and_returns_it(batch: Batch) -> None:
    work = batch.works["whole"]
    assert work.status == "success", work.error
    assert work.results == {"double": 42, "attempt": 1, "id": work.id}
    assert work.products == ["product-21.fits"] and work.plots == ["plot-21.png"]


def test_whole_work_returned_with_status_failure_fails(batch: Batch) -> None:
    work = batch.works["whole-declines"]
    assert work.status == "failure" and work.error is not None
    assert work.error.message == "declined by the function"
