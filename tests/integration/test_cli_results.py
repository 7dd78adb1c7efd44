"""`workflow results view|count|get|export|delete|index|retention` through click's
CliRunner on the private Redis: filters, paging, export then delete, retention enforced by
`index --once` (and counted), and one-line errors for bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from workflow import Client, Failure, Results, Work

from ..helpers import keys

A, B = "res-a", "res-b"
Invoke = Callable[..., Result]


@dataclass(frozen=True)
class Spec:
    """One finished work of the fixture (finished in list order, 3 ms apart)."""

    pipeline: str
    status: str
    event: int
    tags: tuple[str, ...]
    user: str
    site: str
    group: tuple[str, ...] = ()


SPECS = [
    Spec(A, "success", 1, ("x",), "alice", "cern", ("g1",)),
    Spec(A, "failure", 2, ("x", "y"), "bob", "desy"),
    Spec(B, "success", 1, ("y",), "alice", "desy", ("g1", "g2")),
    Spec(A, "cancelled", 3, ("z",), "carol", "cern"),
    Spec(B, "failure", 2, ("x", "y", "z"), "alice", "cern", ("g2",)),
    Spec(B, "success", 1, ("x",), "bob", "cern"),
    Spec(A, "success", 4, ("y", "z"), "alice", "fnal", ("g1",)),
    Spec(B, "cancelled", 1, ("x",), "bob", "desy", ("g2",)),
    Spec(A, "success", 2, ("z",), "carol", "cern"),
    Spec(B, "success", 5, ("x", "z"), "alice", "desy", ("g1",)),
]
IDS = [f"r{i}" for i in range(len(SPECS))]


@pytest.fixture
def run(client: Client) -> Invoke:
    """Invoke `workflow results ...` on the test deployment."""
    from workflow.cli.main import cli

    base = ["--redis-url", client.settings.url, "--prefix", client.settings.prefix, "results"]

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [*base, *args], input=input, catch_exceptions=False)

    return invoke


def finish_all(client: Client, index: bool = True) -> None:
    """Deposit and finish `SPECS` in order, each stop time distinct; index them."""
    for work_id, spec in zip(IDS, SPECS, strict=True):
        w = Work(
            pipeline=spec.pipeline, id=work_id, event=[spec.event], tags=list(spec.tags),
            user=spec.user, site=spec.site, group=list(spec.group) or None, retries=0,
        )  # fmt: skip
        client.deposit([w])
        if spec.status == "cancelled":
            client.cancel(work_id, pipeline=spec.pipeline)
        else:
            [held] = client.withdraw(spec.pipeline)
            failure = Failure(message="boom") if spec.status == "failure" else None
            assert client.complete(held, spec.status, failure=failure) == spec.status  # type: ignore[arg-type]
        time.sleep(0.003)
    if index:
        assert Results(client).index() == len(SPECS)


@pytest.fixture
def finished(client: Client) -> Client:
    finish_all(client)
    return client


def expected(keep: Callable[[Spec], bool]) -> list[str]:
    """Ids of the specs `keep` accepts, newest first."""
    return [i for i, s in reversed(list(zip(IDS, SPECS, strict=True))) if keep(s)]


def view_ids(run: Invoke, *args: str) -> list[str]:
    result = run("view", "--json", *args)
    assert result.exit_code == 0, result.output
    return [payload["id"] for payload in json.loads(result.stdout)]


def stop_of(client: Client, work_id: str) -> float:
    stop = Results(client).get(work_id).stop
    assert stop is not None
    return stop


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def one_line_error(result: Result, *needles: str) -> None:
    """Exit 1, exactly one line on stderr starting `error:` and naming the problem."""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error:"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.output


def usage_error(result: Result, *needles: str) -> None:
    """Exit 2, click's usage error naming the option, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.output


# -- view -------------------------------------------------------------------------------------


def test_view_everything_newest_first(finished: Client, run: Invoke) -> None:
    assert view_ids(run) == IDS[::-1]
    assert view_ids(run, A) == expected(lambda s: s.pipeline == A)
    assert view_ids(run, A, B) == IDS[::-1]
    result = run("view")
    assert result.exit_code == 0
    assert all(i in result.stdout for i in IDS)
    assert "more:" not in result.stderr


@pytest.mark.parametrize(
    ("args", "keep"),
    [
        (["--status", "failure"], lambda s: s.status == "failure"),
        (["--status", "failure", "--status", "cancelled"], lambda s: s.status != "success"),
        (["--event", "1"], lambda s: s.event == 1),
        (["--event", "2", "--event", "5"], lambda s: s.event in (2, 5)),
        (["--tag", "x"], lambda s: "x" in s.tags),
        (["--tag", "x", "--tag", "y"], lambda s: {"x", "y"} <= set(s.tags)),
        (["--tag", "x", "--tag", "y", "--any-tag"], lambda s: bool({"x", "y"} & set(s.tags))),
        (["--user", "alice"], lambda s: s.user == "alice"),
        (["--user", "alice", "--site", "desy"], lambda s: (s.user, s.site) == ("alice", "desy")),
        (["--site", "cern", "--status", "success"],
         lambda s: s.site == "cern" and s.status == "success"),
        (["--group", "g2"], lambda s: "g2" in s.group),
        (["--group", "g1", "--group", "g2", "--tag", "x"],
         lambda s: bool({"g1", "g2"} & set(s.group)) and "x" in s.tags),
        ([B, "--tag", "z"], lambda s: s.pipeline == B and "z" in s.tags),
        (["--since", "1h"], lambda s: True),
        (["--since", "1h", "--user", "bob"], lambda s: s.user == "bob"),
    ],
)  # fmt: skip
def test_view_and_count_filters(
    finished: Client, run: Invoke, args: list[str], keep: Callable[[Spec], bool]
) -> None:
    want = expected(keep)
    assert want, "every case matches something"
    assert view_ids(run, *args) == want
    result = run("count", *args)
    assert (result.exit_code, result.stdout) == (0, f"{len(want)}\n")
    assert json.loads(run("count", "--json", *args).stdout) == {"count": len(want)}


def test_view_nothing_matches(finished: Client, run: Invoke) -> None:
    assert view_ids(run, "--until", "1h") == []
    assert view_ids(run, "--tag", "nope") == []
    result = run("view", "--event", "99")
    assert result.exit_code == 0 and "no results" in result.stdout
    assert run("count", "--until", "1h").stdout == "0\n"


def test_view_time_ranges_iso_and_unix(finished: Client, run: Invoke) -> None:
    """`--since`/`--until` are inclusive stop-time bounds: ISO times (with an offset or Z)
    and unix seconds."""
    lo, hi = stop_of(finished, IDS[4]), stop_of(finished, IDS[7])
    between = IDS[4:8][::-1]
    assert view_ids(run, "--since", iso(lo), "--until", iso(hi)) == between
    assert view_ids(run, "--since", iso(lo).replace("+00:00", "Z"), "--until", iso(hi)) == between
    assert view_ids(run, "--since", f"{lo:.3f}", "--until", f"{hi:.3f}") == between
    assert view_ids(run, "--since", iso(lo), "--status", "failure") == ["r4"]
    assert view_ids(run, "--until", iso(lo)) == IDS[:5][::-1]
    assert run("count", "--since", iso(lo), "--until", iso(hi)).stdout == "4\n"


def test_view_cursor_paging(finished: Client, run: Invoke) -> None:
    """The text listing ends with `more: --cursor C`; each page continues the last, the last
    page has no cursor. `--json` pages are the same pages."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        args = ["--limit", "4"] + (["--cursor", cursor] if cursor else [])
        result = run("view", *args)
        assert result.exit_code == 0, result.output
        pages.append(view_ids(run, *args))
        assert all(i in result.stdout for i in pages[-1])
        if "more: --cursor" not in result.stderr:
            break
        cursor = result.stderr.split("more: --cursor", 1)[1].split()[0]
    assert pages == [IDS[::-1][:4], IDS[::-1][4:8], IDS[::-1][8:]]
    assert view_ids(run, "--limit", "3", "--offset", "2") == IDS[::-1][2:5]
    assert view_ids(run, "--tag", "x", "--limit", "2") == expected(lambda s: "x" in s.tags)[:2]


# -- get ---------------------------------------------------------------------------------------


def test_get(finished: Client, run: Invoke) -> None:
    result = run("get", "r4", "--json")
    assert result.exit_code == 0, result.output
    shown = Work.from_json(result.stdout)
    assert (shown.id, shown.pipeline, shown.status, shown.tags) == ("r4", B, "failure",
                                                                   ["x", "y", "z"])  # fmt: skip
    assert shown.error is not None and shown.error.message == "boom"
    result = run("get", "r3", "--pipeline", A)
    assert result.exit_code == 0 and "r3" in result.stdout and "cancelled" in result.stdout
    one_line_error(run("get", "nosuch"), "nosuch")
    one_line_error(run("get", "r3", "--pipeline", B), "r3")
    finished.deposit([Work(pipeline=A, id="waiting")])
    one_line_error(run("get", "waiting"), "waiting", "queued")


# -- export and delete ---------------------------------------------------------------------------


def test_export_to_a_file_then_export_delete(finished: Client, run: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    result = run("export", B, "-o", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "exported 5"
    lines = path.read_text().splitlines()
    assert [Work.from_json(line).id for line in lines] == expected(lambda s: s.pipeline == B)
    assert Work.from_json(lines[0]).tags == ["x", "z"]
    assert run("count").stdout == "10\n"  # exporting alone keeps everything

    result = run("export", "--status", "failure")  # to stdout
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["r4", "r1"]

    archive = tmp_path / "failures.jsonl"
    result = run("export", "--status", "failure", "--delete", "-o", str(archive))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "exported 2, deleted 2"
    assert [Work.from_json(line).id for line in archive.read_text().splitlines()] == ["r4", "r1"]
    assert run("count", "--status", "failure").stdout == "0\n"
    assert view_ids(run) == [i for i in IDS[::-1] if i not in ("r4", "r1")]
    assert view_ids(run, "--tag", "y") == ["r6", "r2"]  # the index forgot them too
    one_line_error(run("get", "r4"), "r4")


def test_delete_refuses_without_a_filter(finished: Client, run: Invoke) -> None:
    one_line_error(run("delete"), "filters")
    one_line_error(run("delete", "--yes"), "filters")
    one_line_error(run("delete", "--id", "r1", "--tag", "x"), "--id")
    assert run("count").stdout == "10\n"


def test_delete_asks_then_deletes_exactly_the_matches(finished: Client, run: Invoke) -> None:
    result = run("delete", "--tag", "z", input="n\n")
    assert result.exit_code == 1
    assert "delete 5 results?" in result.stderr and "nothing deleted" in result.stderr
    assert run("count").stdout == "10\n"

    result = run("delete", "--tag", "z", "--status", "success", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "deleted 3"
    assert view_ids(run) == expected(lambda s: not ("z" in s.tags and s.status == "success"))
    assert view_ids(run, "--tag", "z") == ["r4", "r3"]

    result = run("delete", B, "--yes")  # a pipeline alone is a filter
    assert result.exit_code == 0 and result.stderr.strip() == "deleted 4"
    assert view_ids(run) == ["r3", "r1", "r0"]

    result = run("delete", "--id", "r1", "--id", "nosuch")
    assert result.exit_code == 0 and result.stderr.strip() == "deleted 1"
    assert view_ids(run) == ["r3", "r0"]


def test_delete_leaves_unfinished_works_alone(finished: Client, run: Invoke) -> None:
    finished.deposit([Work(pipeline=A, id="waiting", tags=["x"])])
    result = run("delete", "--id", "waiting")
    assert result.exit_code == 0 and result.stderr.strip() == "deleted 0"
    assert finished.get("waiting").status == "queued"


# -- index and retention ----------------------------------------------------------------------


def test_index_once_makes_field_filters_see_new_results(client: Client, run: Invoke) -> None:
    finish_all(client, index=False)
    assert view_ids(run, "--tag", "x") == []  # not indexed yet
    result = run("index", "--once")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "indexed 10 of 10 entries, dropped 0"
    assert view_ids(run, "--tag", "x") == expected(lambda s: "x" in s.tags)
    result = run("index", "--once", A)
    assert result.stderr.strip() == "indexed 0 of 0 entries, dropped 0"


def test_retention_set_show_clear(client: Client, run: Invoke) -> None:
    def shown(*args: str) -> dict[str, object]:
        result = run("retention", A, "--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert shown() == {"pipeline": A, "max_age_s": None, "max_count": None}
    assert shown("--max-count", "3") == {"pipeline": A, "max_age_s": None, "max_count": 3}
    assert shown("--max-age", "2h") == {"pipeline": A, "max_age_s": 7200, "max_count": 3}
    assert shown() == {"pipeline": A, "max_age_s": 7200, "max_count": 3}
    result = run("retention", A)
    kept = "results kept for 7200 s after they stop and at most 3 of them"
    assert result.stdout.strip() == f"{A}: {kept}"
    assert shown("--max-age", "7d")["max_age_s"] == 7 * 86400
    assert shown("--clear") == {"pipeline": A, "max_age_s": None, "max_count": None}
    assert run("retention", A).stdout.strip() == f"{A}: results kept forever"
    assert json.loads(run("retention", B, "--json").stdout)["max_count"] is None
    one_line_error(run("retention", A, "--max-age", "5x"), "--max-age")
    usage_error(run("retention", A, "--max-count", "0"), "--max-count")
    one_line_error(run("retention", "bad:name"), "pipeline")


def test_index_once_enforces_retention_and_counts_drops(finished: Client, run: Invoke) -> None:
    """A max count drops the oldest results; a max age drops those stopped before it; each
    drop is counted by status; clearing the policy stops it."""
    assert run("retention", A, "--max-count", "3").exit_code == 0
    result = run("index", "--once")
    assert result.stderr.strip() == "indexed 0 of 0 entries, dropped 2"
    assert view_ids(run, A) == ["r8", "r6", "r3"]  # r0 (success) and r1 (failure) dropped
    assert view_ids(run, "--tag", "x") == expected(lambda s: s.pipeline == B and "x" in s.tags)
    stats = finished.stats(A)
    assert (stats["dropped"], stats["dropped:success"], stats["dropped:failure"]) == (2, 1, 1)
    assert "dropped:cancelled" not in stats
    assert "dropped" not in finished.stats(B)
    one_line_error(run("get", "r0"), "r0")

    # r3 (cancelled) stopped 3 h ago, as far as its status set says
    k = keys(finished, A)
    stop_ms = int(finished.redis.zscore(k.cancelled, "r3"))  # type: ignore[arg-type]
    finished.redis.zadd(k.cancelled, {"r3": stop_ms - 3 * 3_600_000})
    assert run("retention", A, "--max-age", "2h").exit_code == 0
    assert run("index", "--once").stderr.strip() == "indexed 0 of 0 entries, dropped 1"
    assert view_ids(run, A) == ["r8", "r6"]
    stats = finished.stats(A)
    assert (stats["dropped"], stats["dropped:cancelled"]) == (3, 1)

    assert run("retention", A, "--clear").exit_code == 0
    finish_more = Work(pipeline=A, id="late", retries=0)
    finished.deposit([finish_more])
    [held] = finished.withdraw(A)
    finished.complete(held, "success")
    assert run("index", "--once").stderr.strip() == "indexed 1 of 1 entries, dropped 0"
    assert view_ids(run, A) == ["late", "r8", "r6"]
    assert finished.stats(A)["dropped"] == 3


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["view", "--since", "yesterday"], "since"),
        (["view", "--until", "2026-13-45"], "until"),
        (["count", "--since", "-5h"], "since"),
        (["view", "--created-since", "soon"], "created-since"),
        (["view", "--cursor", "bogus"], "cursor"),
        (["view", "--cursor", "12:"], "cursor"),
        (["view", "bad:name"], "pipeline"),
        (["count", "bad:name"], "pipeline"),
        (["export", "--since", "nope"], "since"),
        (["delete", "--since", "nope", "--yes"], "since"),
        (["get", "nosuch", "--pipeline", "bad:name"], "pipeline"),
    ],
)
def test_bad_input_is_one_line_exit_1(finished: Client, run: Invoke, args: list[str],
                                      needle: str) -> None:  # fmt: skip
    one_line_error(run(*args), needle)
    assert run("count").stdout == "10\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["view", "--status", "unknown"], "--status"),
        (["count", "--status", "done"], "--status"),
        (["view", "--event", "abc"], "--event"),
        (["view", "--limit", "20000"], "--limit"),
        (["view", "--offset", "-1"], "--offset"),
        (["view", "--json", "--bogus"], "--bogus"),
    ],
)
def test_bad_options_are_usage_errors_exit_2(run: Invoke, args: list[str], needle: str) -> None:
    usage_error(run(*args), needle)


def test_bad_input_with_json_is_still_one_line(finished: Client, run: Invoke) -> None:
    one_line_error(run("view", "--json", "--since", "yesterday"), "since")
    one_line_error(run("view", "--json", "--cursor", "x"), "cursor")
    one_line_error(run("count", "--json", "--until", "later"), "until")
