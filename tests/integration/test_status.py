"""`workflow status`: pure rendering of hand-built snapshots (no Redis), the command
through CliRunner on a real deployment, and `--watch` redrawing in place in a real
terminal (tmux)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import msgspec
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from workflow import Client, Failure, Settings, Work, WorkflowError
from workflow.cli import status as status_cli
from workflow.cli.main import cli
from workflow.cli.status import human_age, priority_breakdown, render, sparkline, status
from workflow.keys import worker_key, workers_key
from workflow.server import PrivateServer
from workflow.status import PipelineStatus, RecentFailure, RunningWork, Snapshot, snapshot
from workflow.worker import Worker, WorkerInfo, list_workers

NOW = 1_800_000_000.0
"""Redis time of the hand-built snapshots."""
MINUTE = int(NOW // 60)


# -- hand-built snapshots ---------------------------------------------------------------


def throughput(success: list[int], failure: list[int] | None = None) -> list[dict[str, int]]:
    failure = failure or [0] * len(success)
    return [
        {"minute": MINUTE - len(success) + 1 + i, "success": s, "failure": f, "deposited": s + f}
        for i, (s, f) in enumerate(zip(success, failure, strict=True))
    ]


def pipeline(name: str = "calibrate", **changes: object) -> PipelineStatus:
    base: dict[str, object] = dict(
        name=name, paused=False,
        counts={"queued": 123, "delayed": 4, "running": 2, "success": 10_450, "failure": 3,
                "cancelled": 1},
        queued_by_priority={5: 3, 4: 0, 3: 120, 2: 0, 1: 0},
        oldest_queued_s=250.0,
        # last 5 full minutes: 30, 30, 30, 30, 30 (+ 0/1 failures); the current minute is
        # partial (999) and not part of the rate.
        throughput=throughput([0] * 9 + [30] * 5 + [999], [0] * 9 + [1, 0, 1, 0, 0, 0]),
        running=[
            RunningWork(id="01JD2Q7X00000000000000RUN1", attempt=1, worker="node1.4242.ABCDEF",
                        lease_left_s=21.5, timeout_left_s=3_500.0),
            RunningWork(id="01JD2Q7X00000000000000RUN2", attempt=2, worker=None,
                        lease_left_s=-1.0, timeout_left_s=None),
        ],
        failures=[
            RecentFailure(id="01JD2Q7X00000000000000FAIL", stop=NOW - 130, attempt=3,
                          kind="exception",
                          message="ValueError: beam 300 does not exist\nTraceback: hidden"),
        ],
        stats={"deposited": 10_581, "withdrawn": 10_460, "success": 10_450, "failure": 3,
               "retried": 7},
    )  # fmt: skip
    base.update(changes)
    return PipelineStatus(**base)  # type: ignore[arg-type]


def worker(**changes: object) -> WorkerInfo:
    base: dict[str, object] = dict(
        name="node1.4242.ABCDEF", host="node1", pid=4242, pipelines=["calibrate", "search"],
        function="examples.calibration.calibrate", concurrency=4, started=NOW - 3600,
        beat=NOW - 3, processed=10_450, failed=3, current=["01JD2Q7X00000000000000RUN1"],
    )  # fmt: skip
    base.update(changes)
    return WorkerInfo(**base)  # type: ignore[arg-type]


def snap(*pipelines: PipelineStatus, workers: list[WorkerInfo] | None = None) -> Snapshot:
    return Snapshot(time=NOW, prefix="workflow", pipelines=list(pipelines),
                    workers=[worker()] if workers is None else workers)  # fmt: skip


def text(renderable: object, width: int = 100) -> str:
    console = Console(
        file=io.StringIO(), width=width, force_terminal=False, theme=status_cli.STATUS_THEME
    )
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def row(output: str, first: str) -> list[str]:
    """The cells (split on whitespace) of the line that starts with `first`."""
    for line in output.splitlines():
        if line.startswith(first):
            return line.split()
    raise AssertionError(f"no line starts with {first!r} in:\n{output}")


# -- pure helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (0.4, "0s"), (3.9, "3s"), (59.99, "59s"), (60, "1m"),
     (250, "4m"), (3599, "59m"), (7300, "2h"), (86_399, "23h"), (3 * 86_400 + 5, "3d"),
     (-42, "-42s")],
)  # fmt: skip
def test_human_age(seconds: float | None, shown: str) -> None:
    assert human_age(seconds) == shown


def test_sparkline_scales_to_the_peak_and_keeps_quiet_minutes_visible() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0, 5, 10]) == "▁▅█"
    assert sparkline([0, 1, 1000]) == "▁▂█"  # 1 finish is not an idle minute
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([7]) == "█"
    assert sparkline([]) == ""


def test_priority_breakdown_lists_nonempty_priorities_highest_first() -> None:
    assert priority_breakdown({5: 3, 4: 0, 3: 120, 2: 0, 1: 0}) == "5:3 3:120"
    assert priority_breakdown({1: 2_000, 5: 1}) == "5:1 1:2,000"
    assert priority_breakdown({5: 0, 3: 0}) == ""


# -- rendering (no Redis) ---------------------------------------------------------------


def test_overview_row_has_counts_breakdown_rate_sparkline_and_age() -> None:
    out = text(render(snap(pipeline())))
    assert out.startswith("workflow status  1 pipeline, 1 worker  ·  prefix workflow")
    header = row(out, "pipeline")
    assert header[:8] == ["pipeline", "queued", "priority", "delayed", "running", "success",
                          "failure", "cancelled"]  # fmt: skip
    cells = row(out, "calibrate")
    # name, queued, 5:3 3:120, delayed, running, success, failure, cancelled, /min, spark, age
    assert cells[:4] == ["calibrate", "123", "5:3", "3:120"]
    assert cells[4:9] == ["4", "2", "10,450", "3", "1"]
    assert cells[9] == "30"  # finishes/min over the 5 full minutes: (150 + 2) / 5 = 30.4
    assert cells[10] == "▁" * 9 + "▂" * 5 + "█"  # 30 is small beside 999, but not idle
    assert cells[11] == "4m"


def test_rate_has_one_decimal_below_ten_per_minute() -> None:
    p = pipeline(throughput=throughput([0] * 9 + [1, 2, 3, 4, 5, 0]))
    assert row(text(render(snap(p))), "calibrate")[9] == "3.0"
    p = pipeline(throughput=throughput([0] * 15))
    cells = row(text(render(snap(p))), "calibrate")
    assert cells[9:11] == ["0", "▁" * 15]


def test_paused_pipelines_are_marked() -> None:
    out = text(render(snap(pipeline(), pipeline("search", paused=True))), width=120)
    assert "search (paused)" in out
    assert "calibrate (paused)" not in out


def test_running_works_show_worker_attempt_and_time_left() -> None:
    out = text(render(snap(pipeline())))
    assert "running (2)" in out
    assert row(out, "01JD2Q7X00000000000000RUN1")[1:] == [
        "calibrate", "node1.4242.ABCDEF", "1", "21s", "58m"]  # fmt: skip
    # an expired lease no worker holds (its sweep has not run yet), no timeout recorded
    assert row(out, "01JD2Q7X00000000000000RUN2")[1:] == ["calibrate", "-", "2", "expired", "-"]


def test_failures_show_when_attempt_and_the_first_line_of_the_error() -> None:
    out = text(render(snap(pipeline())))
    assert "recent failures (1 of 3)" in out  # 3 failed, 1 in the snapshot
    line = next(ln for ln in out.splitlines() if ln.startswith("01JD2Q7X00000000000000FAIL"))
    assert line.split()[1:5] == ["calibrate", "2m", "ago", "3"]
    assert line.endswith("exception: ValueError: beam 300 does not exist")
    assert "Traceback" not in out


def test_failures_across_pipelines_are_newest_first_and_cut_to_one_line() -> None:
    old = RecentFailure(id="OLD", stop=NOW - 7200, attempt=1, kind="timeout", message="")
    new = RecentFailure(id="NEW", stop=NOW - 5, attempt=2, kind="crash", message="x" * 300)
    out = text(render(snap(pipeline("a", failures=[old]), pipeline("b", failures=[new]))))
    lines = out.splitlines()
    new_at = next(i for i, ln in enumerate(lines) if ln.startswith("NEW "))
    old_at = next(i for i, ln in enumerate(lines) if ln.startswith("OLD "))
    assert new_at < old_at
    assert lines[new_at].endswith("…") and len(lines[new_at].rstrip()) <= 100
    assert lines[old_at].split()[1:] == ["a", "2h", "ago", "1", "timeout"]


def test_workers_table() -> None:
    out = text(render(snap(pipeline())))
    assert "workers (1)" in out
    cells = row(out, "node1.4242.ABCDEF ")
    assert cells == ["node1.4242.ABCDEF", "node1", "4242", "calibrate,", "search", "1/4",
                     "10,450", "3", "3s", "ago"]  # fmt: skip
    stale = worker(name="gone", beat=NOW - 45)
    assert row(text(render(snap(pipeline(), workers=[stale]))), "gone")[-2:] == ["45s", "ago"]


def test_overview_caps_rows_and_says_how_many_there_are() -> None:
    running = [
        RunningWork(id=f"R{i:03d}", attempt=1, worker=None, lease_left_s=10, timeout_left_s=5)
        for i in range(25)
    ]
    p = pipeline(running=running, counts={**pipeline().counts, "running": 40})
    out = text(render(snap(p)))
    assert "running (10 of 40)" in out
    assert sum(ln.startswith("R0") for ln in out.splitlines()) == 10
    detail = text(render(snap(p), focus="calibrate"))
    assert "running (25 of 40)" in detail
    assert sum(ln.startswith("R0") for ln in detail.splitlines()) == 25


def test_one_pipeline_in_depth_shows_states_rates_and_lifetime_counters() -> None:
    out = text(render(snap(pipeline(), pipeline("search")), focus="calibrate"))
    assert "pipeline calibrate" in out and "search" not in out.split("workers")[0]
    # three tables side by side: works by state | rates | lifetime counters
    assert row(out, "queued") == ["queued", "123", "5:3", "3:120", "oldest", "4m",
                                  "deposited", "30", "deposited", "10,581"]  # fmt: skip
    assert row(out, "delayed") == ["delayed", "4", "success", "30", "failure", "3"]
    assert row(out, "running") == ["running", "2", "failure", "0.4", "retried", "7"]
    assert row(out, "success") == ["success", "10,450", "cancelled", "0", "success", "10,450"]
    assert row(out, "failure") == ["failure", "3", "withdrawn", "10,460"]
    assert row(out, "cancelled") == ["cancelled", "1"]
    assert "▁▁▁▁▁▁▁▁▁▂▂▂▂▂█  peak 999  this minute 999" in out
    assert "node1.4242.ABCDEF" in out  # serves calibrate


def test_one_pipeline_without_works_and_an_empty_deployment_say_so() -> None:
    empty = pipeline("nothing", counts=dict.fromkeys(pipeline().counts, 0), stats={},
                     running=[], failures=[])  # fmt: skip
    assert "No works have been deposited to 'nothing'." in text(render(snap(empty), "nothing"))
    out = text(render(snap(workers=[])))
    assert out.startswith("Nothing here yet: no pipelines and no workers under prefix workflow")


def test_rendering_fits_a_narrow_terminal() -> None:
    for width in (60, 80, 100):
        out = text(render(snap(pipeline(), pipeline("search", paused=True))), width=width)
        assert max(len(line.rstrip()) for line in out.splitlines()) <= width


# -- the command on a real deployment ---------------------------------------------------


@pytest.fixture
def wired() -> Iterator[click.Group]:
    """The root group with `status` (until cli/main.py adds it itself)."""
    added = "status" not in cli.commands
    if added:
        cli.add_command(status)
    yield cli
    if added:
        cli.commands.pop("status")


def invoke(client: Client, *args: str, url: str | None = None) -> Result:
    base = ["--redis-url", url or client.settings.url, "--prefix", client.settings.prefix]
    return CliRunner().invoke(
        cli, [*base, "status", *args], catch_exceptions=False, env={"COLUMNS": "120"}
    )


def publish_worker(client: Client, info: WorkerInfo, ttl_s: float = 30) -> None:
    """A worker's heartbeat record, written as `Worker._beat` writes it."""
    prefix = client.settings.prefix
    client.redis.set(worker_key(prefix, info.name), msgspec.json.encode(info), px=int(ttl_s * 1000))
    client.redis.zadd(workers_key(prefix), {info.name: int(info.beat * 1000)})


@pytest.fixture
def deployment(client: Client) -> dict[str, object]:
    """Two pipelines: `st-cal` with queued works at two priorities, one running (held by a
    registered worker), one success and one failure; `st-search` paused, 3 queued."""
    cal = [Work(pipeline="st-cal", priority=5 if i < 2 else 3, retries=0) for i in range(7)]
    client.deposit(cal)
    client.deposit([Work(pipeline="st-search") for _ in range(3)])
    client.pause("st-search")
    done, failed, running = client.withdraw("st-cal", count=3)
    client.complete(done, "success")
    error = Failure(kind="exception", message="ValueError: beam 300 does not exist\n  more")
    client.complete(failed, "failure", failure=error)
    now = time.time()
    info = WorkerInfo(
        name="node7.999.STATUS", host="node7", pid=999, pipelines=["st-cal"], function=None,
        concurrency=2, started=now - 60, beat=now, processed=2, failed=1, current=[running.id],
    )  # fmt: skip
    publish_worker(client, info)
    return {"running": running, "failed": failed, "worker": info}


def test_status_shows_a_real_deployment(client: Client, deployment: dict, wired: object) -> None:
    result = invoke(client)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 pipelines, 1 worker" in out
    # 4 queued: the 2 priority-5 works went first; 1 running, 1 success, 1 failure
    assert row(out, "st-cal")[:9] == ["st-cal", "4", "3:4", "0", "1", "1", "1", "0", "0"]
    assert row(out, "st-search")[:5] == ["st-search", "(paused)", "3", "3:3", "0"]
    running = deployment["running"]
    cells = row(out, running.id)
    assert cells[1:4] == ["st-cal", "node7.999.STATUS", "1"]
    assert re.fullmatch(r"\d+s", cells[4]) and cells[5] == "59m"  # lease 30 s, timeout 1 h
    failure = row(out, deployment["failed"].id)
    assert failure[1:] == ["st-cal", "0s", "ago", "1", "exception:", "ValueError:", "beam",
                           "300", "does", "not", "exist"]  # fmt: skip
    assert row(out, "node7.999.STATUS ")[1:7] == ["node7", "999", "st-cal", "1/2", "2", "1"]
    assert result.stderr == ""


def test_status_json_round_trips_into_a_snapshot(
    client: Client, deployment: dict, wired: object
) -> None:
    result = invoke(client, "--json")
    assert result.exit_code == 0
    data = msgspec.json.decode(result.stdout, type=Snapshot)
    assert data.prefix == client.settings.prefix
    assert [p.name for p in data.pipelines] == ["st-cal", "st-search"]
    cal, search = data.pipelines
    assert cal.counts == client.counts("st-cal") and search.counts == client.counts("st-search")
    assert cal.queued_by_priority == {5: 0, 4: 0, 3: 4, 2: 0, 1: 0}
    assert (cal.paused, search.paused) == (False, True)
    assert [r.id for r in cal.running] == [deployment["running"].id]
    assert cal.running[0].worker == "node7.999.STATUS"
    assert cal.failures[0].message.startswith("ValueError: beam 300")
    assert cal.stats["deposited"] == 7 and sum(r.get("success", 0) for r in cal.throughput) == 1
    assert data.workers == [deployment["worker"]]
    # the same data the library returns
    again = snapshot(client)
    assert again.pipelines[0].counts == cal.counts and again.workers == data.workers


def test_status_of_one_pipeline_in_depth(client: Client, deployment: dict, wired: object) -> None:
    result = invoke(client, "st-cal")
    assert result.exit_code == 0
    out = result.stdout
    assert "pipeline st-cal" in out and "st-search" not in out
    assert row(out, "queued")[:3] == ["queued", "4", "3:4"]
    assert "lifetime" in out and "withdrawn" in out
    assert deployment["running"].id in out and deployment["failed"].id in out
    assert "node7.999.STATUS" in out
    paused = invoke(client, "st-search").stdout
    assert "pipeline st-search (paused)" in paused and "no live workers serve it" in paused


def test_status_of_pipelines_given_by_name(client: Client, deployment: dict, wired: object) -> None:
    result = invoke(client, "st-search", "st-new", "--json")
    data = msgspec.json.decode(result.stdout, type=Snapshot)
    assert [p.name for p in data.pipelines] == ["st-search", "st-new"]
    out = invoke(client, "st-new").stdout
    assert "No works have been deposited to 'st-new'." in out
    bad = invoke(client, "bad:name")
    assert bad.exit_code == 1 and "pipeline: must be" in bad.stderr


def test_status_of_an_empty_deployment(client: Client, wired: object) -> None:
    result = invoke(client)
    assert result.exit_code == 0
    assert result.stdout.startswith("Nothing here yet: no pipelines and no workers")
    data = msgspec.json.decode(invoke(client, "--json").stdout, type=Snapshot)
    assert data.pipelines == [] and data.workers == []


@pytest.mark.slow  # the client retries a lost connection for ~4 s before giving up
def test_status_cannot_connect_is_one_line_and_exit_1(client: Client, wired: object) -> None:
    dead = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    result = invoke(client, url=dead)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach Redis")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_status_of_a_named_pipeline_cannot_connect_is_one_line(
    client: Client, wired: object
) -> None:
    result = CliRunner().invoke(cli, ["--redis-url", "redis://127.0.0.1:9/0", "status", "st-cal"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach Redis")  # not a traceback


def test_one_unreadable_worker_record_does_not_break_status(
    client: Client, deployment: dict, wired: object
) -> None:
    prefix = client.settings.prefix
    client.redis.set(worker_key(prefix, "odd"), b'{"name": "odd"}', px=30_000)
    client.redis.zadd(workers_key(prefix), {"odd": int(time.time() * 1000)})
    result = CliRunner().invoke(
        cli, ["--redis-url", client.settings.url, "--prefix", prefix, "status"]
    )
    assert result.exit_code == 0 and "node7.999.STATUS" in result.stdout


def test_watch_off_a_terminal_prints_one_view_per_refresh_and_ctrl_c_exits_0(
    client: Client, wired: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.deposit([Work(pipeline="st-w") for _ in range(2)])
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # a refresh: deposit, then Ctrl-C on the third
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt
        client.deposit([Work(pipeline="st-w") for _ in range(3)])

    monkeypatch.setattr(status_cli.time, "sleep", sleep)
    result = invoke(client, "--watch", "--interval", "0.5")
    assert result.exit_code == 0 and result.stderr == ""
    queued = [cells[1] for cells in (ln.split() for ln in result.stdout.splitlines())
              if cells and cells[0] == "st-w"]  # fmt: skip
    assert queued == ["2", "5", "8"]
    assert 0 < sleeps[0] <= 0.5  # on schedule: the first refresh 0.5 s after the first view


def test_watch_json_prints_one_line_per_refresh(
    client: Client, wired: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.deposit([Work(pipeline="st-w")])
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt
        client.deposit([Work(pipeline="st-w")])

    monkeypatch.setattr(status_cli.time, "sleep", sleep)
    result = invoke(client, "--watch", "--json", "--interval", "0.2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    snaps = [msgspec.json.decode(line, type=Snapshot) for line in lines]
    assert [s.pipelines[0].counts["queued"] for s in snaps] == [1, 2]


def test_watch_shows_a_lost_connection_under_the_last_view(
    client: Client, wired: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.deposit([Work(pipeline="st-w")])
    real = status_cli.snapshot
    calls: list[int] = []

    def flaky(*args: object, **kwargs: object) -> Snapshot:
        calls.append(1)
        if len(calls) == 2:
            from workflow.errors import ConnectionError

            raise ConnectionError("cannot reach Redis: gone")
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(status_cli, "snapshot", flaky)
    monkeypatch.setattr(status_cli.time, "sleep", lambda s: None)
    result = invoke(client, "--watch")
    assert result.exit_code == 0
    views = result.stdout.split("workflow status  ")
    assert len(views) == 4  # before the first, then: good, good + error line, good
    assert "cannot reach Redis: gone; retrying" in views[2]
    assert "retrying" not in views[1] + views[3]


# -- --watch in a real terminal ---------------------------------------------------------


class Tmux:
    """A tmux server of our own (its own socket, in the test's directory): nothing else
    is touched, and the socket goes with the directory."""

    def __init__(self, socket: Path) -> None:
        self.socket = str(socket)

    def __call__(self, *args: str) -> str:
        # An explicit environment: without one the child inherits the C-level environ,
        # where COLUMNS=80 LINES=24 were exported under pytest (GNU readline does that
        # when loaded; os.environ does not show them) and the tmux server would hand
        # them to the program: a 120-column pane would get an 80-column view.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10,
            env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "status")

    def kill(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True,
                           timeout=10)  # fmt: skip


def wait_screen(tmux: Tmux, check, timeout: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        screen = tmux.screen()
        if check(screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen never matched; it shows:\n{screen}")
        time.sleep(0.05)


def queued_of(screen: str, name: str) -> str | None:
    for line in screen.splitlines():
        cells = line.split()
        if cells and cells[0] == name:
            return cells[1]
    return None


@pytest.mark.slow
def test_watch_redraws_in_place_in_a_real_terminal(
    client: Client, wired: object, tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    client.deposit([Work(pipeline="st-live") for _ in range(3)])
    s = client.settings
    # Until cli/main.py registers `status`, add it in the child the way the fixture does.
    program = (
        "from workflow.cli.main import cli; from workflow.cli.status import status; "
        "cli.commands.setdefault('status', status); cli()"
    )
    argv = [sys.executable, "-c", program, "--redis-url", s.url, "--prefix", s.prefix,
            "status", "--watch", "--interval", "0.3"]  # fmt: skip
    command = f"{shlex.join(argv)}; echo EXIT=$?; sleep 60"
    tmux = Tmux(tmp_path / "tmux.sock")
    try:
        tmux("new-session", "-d", "-s", "status", "-x", "120", "-y", "40", command)
        seen = [queued_of(wait_screen(tmux, lambda sc: queued_of(sc, "st-live") == "3"), "st-live")]
        for total in (5, 9):
            client.deposit([Work(pipeline="st-live") for _ in range(total - int(seen[-1]))])
            screen = wait_screen(tmux, lambda sc, t=str(total): queued_of(sc, "st-live") == t)
            seen.append(queued_of(screen, "st-live"))
            # redrawn in place: one view on the screen, starting on its first line
            assert screen.count("workflow status") == 1, screen
            assert screen.splitlines()[0].startswith("workflow status  1 pipeline")
            assert sum(ln.split()[:1] == ["st-live"] for ln in screen.splitlines()) == 1
        assert seen == ["3", "5", "9"]
        tmux("send-keys", "-t", "status", "C-c")
        screen = wait_screen(tmux, lambda sc: "EXIT=" in sc)
        assert "EXIT=0" in screen, screen
        assert "Traceback" not in screen and "KeyboardInterrupt" not in screen
        assert screen.count("workflow status") == 1  # the last view stays, once
    finally:
        tmux.kill()


# -- the worker registry, as `status` sees it ---------------------------------------------


@contextlib.contextmanager
def running_worker(client: Client, name: str) -> Iterator[Worker]:
    """An in-process `Worker` on pipeline `st-reg`, run in a thread, stopped afterwards."""
    worker = Worker(client, ["st-reg"], "examples.calibration.calibrate", in_process=True,
                    name=name, sleep_s=0.05)  # fmt: skip
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop(now=True)
        thread.join(10)


def listed(client: Client, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(WorkflowError):
            if any(w.name == name for w in list_workers(client)):
                return True
        time.sleep(0.02)
    return False


def test_a_started_worker_is_listed_at_once(client: Client) -> None:
    with running_worker(client, "st-fresh"):
        assert listed(client, "st-fresh", timeout=2.0)


@pytest.mark.slow
def test_a_worker_is_listed_again_after_redis_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    died: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", died.append)  # reported by the assert
    with PrivateServer(tmp_path / "redis") as server:
        client = Client(Settings(url=server.url, prefix="st-blip", lease_ms=300))
        try:
            with running_worker(client, "st-blip"):
                assert listed(client, "st-blip", timeout=5.0)  # first beat after 0.1 s
                server.stop()
                time.sleep(0.5)  # idle worker: its next beats meet a dead server
                server.start()  # same port, empty data
                assert listed(client, "st-blip", timeout=3.0)
        finally:
            client.close()
    assert not died, f"{died[0].thread.name} died: {died[0].exc_value!r}"
