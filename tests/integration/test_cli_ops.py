"""The operator commands through click's CliRunner on the private Redis: deposit, work
show|ls, retry, cancel, delete, pipelines ls|rm, pause, resume."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from workflow import Client, Failure, Work
from workflow.cli.console import THEME
from workflow.cli.main import cli
from workflow.cli.pipelines import pause, pipelines, render_pipelines, resume
from workflow.cli.works import (
    Row,
    cancel,
    delete,
    deposit,
    parse_payloads,
    render_work,
    render_works,
    retry,
    work,
)
from workflow.errors import ValidationError
from workflow.keys import work_key

P = "ops"
OURS = {c.name: c for c in (deposit, work, retry, cancel, delete, pipelines, pause, resume)}
Invoke = Callable[..., Result]


@pytest.fixture
def run(client: Client) -> Invoke:
    """Invoke the CLI: main's root group (its options and callback) with these commands
    added, without changing the global group."""
    app = click.Group(
        "workflow", params=cli.params, callback=cli.callback, commands={**cli.commands, **OURS}
    )
    base = ["--redis-url", client.settings.url, "--prefix", client.settings.prefix]

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, [*base, *args], input=input, catch_exceptions=False)

    return invoke


def one_line_error(result: Result, *needles: str) -> None:
    """Exit 1, one error on stderr naming the problem, no traceback. (Lines are joined:
    main's `err` console wraps long messages, see the xfail test below.)"""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error:"), result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
    message = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in result.output


def failed_work(client: Client, pipeline: str = P, **fields) -> Work:
    """A work that failed terminally (no retries), with an error on record."""
    w = Work(pipeline=pipeline, retries=0, **fields)
    client.deposit([w])
    [held] = client.withdraw(pipeline)
    client.complete(held, "failure", failure=Failure(message="boom\nsecond line"))
    return w


def corrupt(client: Client, work_id: str, pipeline: str = P) -> None:
    client.redis.hset(work_key(client.settings.prefix, pipeline, work_id), "body", b"{not json")


# -- deposit ----------------------------------------------------------------------------------


def test_deposit_from_flags(client: Client, run: Invoke) -> None:
    result = run(
        "deposit", P, "--param", "beam=12", "--param", "name=crab", "--param", "xs=[1, 2]",
        "--param", "q='quoted'", "--priority", "5", "--tag", "a", "--tag", "b",
        "--event", "123", "--event", "7", "--user", "u", "--site", "s", "--timeout", "60",
        "--retries", "1", "--function", "examples.calibration.calibrate",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [work_id] = result.stdout.split()
    w = client.get(work_id, pipeline=P)
    assert w.parameters == {"beam": 12, "name": "crab", "xs": [1, 2], "q": "'quoted'"}
    assert (w.priority, w.tags, w.event, w.user, w.site) == (5, ["a", "b"], [123, 7], "u", "s")
    assert (w.timeout, w.retries, w.function, w.status) == (60, 1, "examples.calibration.calibrate",
                                                           "queued")  # fmt: skip
    assert "deposited 1 of 1 works" in result.stderr


def test_deposit_a_command_and_a_delay(client: Client, run: Invoke) -> None:
    result = run("deposit", P, "--command", "echo 'hello world' 2", "--delay", "60", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["pipeline"] == P and row["created"] is True
    assert client.get(row["id"], pipeline=P).command == ["echo", "hello world", "2"]
    assert client.counts(P)["delayed"] == 1


def test_deposit_json_lines_file_in_one_batch(client: Client, run: Invoke, tmp_path: Path) -> None:
    lines = [json.dumps({"parameters": {"beam": i}, "priority": 1 + i % 5}) for i in range(20)]
    lines.insert(3, "")  # blank lines are skipped
    path = tmp_path / "works.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run("deposit", P, "-f", str(path), "--tag", "daily", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 20 and all(r["created"] and r["pipeline"] == P for r in rows)
    assert client.counts(P)["queued"] == 20
    assert client.stats(P)["deposited"] == 20
    w = client.get(rows[7]["id"], pipeline=P)
    assert (w.parameters, w.priority, w.tags) == ({"beam": 7}, 3, ["daily"])


def test_deposit_json_array_from_stdin_with_its_own_pipelines(client: Client, run: Invoke) -> None:
    payloads = [{"pipeline": "a", "id": "one"}, {"pipeline": "b", "id": "two", "priority": 4}]
    result = run("deposit", "-f", "-", input=json.dumps(payloads, indent=2))
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["one", "two"]
    assert client.get("two", pipeline="b").priority == 4
    assert client.pipelines() == ["a", "b"]


def test_deposit_a_file_payload_overrides_the_defaults(client: Client, run: Invoke) -> None:
    result = run("deposit", "dflt", "--priority", "2", "-f", "-",
                 input='{"id": "x", "pipeline": "own", "priority": 5}\n{"id": "y"}\n')  # fmt: skip
    assert result.exit_code == 0, result.output
    assert client.get("x", pipeline="own").priority == 5
    assert client.get("y", pipeline="dflt").priority == 2


def test_redepositing_an_existing_id_is_reported_not_repeated(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="old")])
    payloads = '{"pipeline": "ops", "id": "old"}\n{"pipeline": "ops", "id": "new"}'
    result = run("deposit", "-f", "-", "--json", input=payloads)
    assert result.exit_code == 0, result.output
    assert [r["created"] for r in json.loads(result.stdout)] == [False, True]
    assert "1 existed already" in result.stderr
    assert client.counts(P)["queued"] == 2


@pytest.mark.parametrize(
    ("args", "stdin", "needles"),
    [
        (["--priority", "7"], None, ["priority: must be an integer from 1 to 5"]),
        (["--param", "novalue"], None, ["--param: must be key=value"]),
        (["--command", "echo 'unclosed"], None, ["command: cannot be split"]),
        (["--function", "m.f", "--command", "ls"], None, ["give either function or command"]),
        (["-f", "-"], '{"id": "a"}\n{"priority": 9}\n', ["stdin line 2: priority"]),
        (["-f", "-"], '{"id": "a"}\n{oops\n', ["stdin line 2: is not valid JSON"]),
        (["-f", "-"], "[1, 2]", ["stdin item 0: must be an object"]),
        (["-f", "-"], '[{"id": "a"},', ["stdin: is not a valid JSON array"]),
        (["-f", "-"], "  \n", ["stdin: is empty"]),
        (["-f", "-"], '{"tags": "notalist"}', ["stdin: tags"]),
    ],
)
def test_deposit_bad_input_is_one_line_and_deposits_nothing(
    client: Client, run: Invoke, args: list[str], stdin: str | None, needles: list[str]
) -> None:
    one_line_error(run("deposit", P, *args, input=stdin), *needles)
    assert client.counts(P)["queued"] == 0 and client.pipelines() == []


def test_deposit_file_payloads_need_a_pipeline(client: Client, run: Invoke) -> None:
    one_line_error(run("deposit", "-f", "-", input='{"id": "a"}'), "stdin: pipeline: is required")
    assert client.pipelines() == []


def test_deposit_without_pipeline_or_file_is_a_usage_error(run: Invoke) -> None:
    result = run("deposit")
    assert result.exit_code == 2
    assert "give a PIPELINE, or payloads with -f FILE" in result.stderr


def test_deposit_yaml_without_pyyaml_says_to_install_it(
    client: Client, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # importing it fails, installed or not
    path = tmp_path / "works.yaml"
    path.write_text("- parameters: {beam: 1}\n")
    one_line_error(run("deposit", P, "-f", str(path)), "needs PyYAML", "pip install pyyaml")
    assert client.counts(P)["queued"] == 0


def test_deposit_yaml(client: Client, run: Invoke, tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "works.yml"
    path.write_text("- parameters: {beam: 1}\n- parameters: {beam: 2}\n  priority: 5\n")
    result = run("deposit", P, "-f", str(path))
    assert result.exit_code == 0, result.output
    assert client.counts(P)["queued"] == 2


def test_parse_payloads_shapes() -> None:
    assert parse_payloads(b'{"a": 1}', "f") == [("f", {"a": 1})]
    assert parse_payloads(b'{"a": 1}\n\n{"a": 2}\n', "f") == [
        ("f line 1", {"a": 1}),
        ("f line 3", {"a": 2}),
    ]
    assert parse_payloads(b'[{"a": 1}]', "f") == [("f item 0", {"a": 1})]
    with pytest.raises(ValidationError, match="f line 1: must be a JSON object"):
        parse_payloads(b"1\n2\n", "f")
    with pytest.raises(ValidationError, match="f: must hold a work payload"):
        parse_payloads(b'"text"', "f")


# -- work show / work ls --------------------------------------------------------------------


def test_work_show_renders_like_show(client: Client, run: Invoke) -> None:
    w = Work(pipeline=P, parameters={"x": 1}, tags=["a"])
    client.deposit([w])
    mine = run("work", "show", w.id)
    assert mine.exit_code == 0
    assert mine.stdout == run("show", w.id).stdout
    assert "queued" in mine.stdout and w.id in mine.stdout
    shown = Work.from_json(run("work", "show", w.id, "--pipeline", P, "--json").stdout)
    assert shown.id == w.id and shown.parameters == {"x": 1}


def test_work_show_escapes_values_that_look_like_markup(client: Client, run: Invoke) -> None:
    w = Work(pipeline=P, parameters={"x": "[/]", "y": "[bold]b[/bold]"})
    client.deposit([w])
    result = run("work", "show", w.id)
    assert result.exit_code == 0, result.output
    assert "'[/]'" in result.stdout and "[bold]b[/bold]" in result.stdout


def test_work_show_errors(client: Client, run: Invoke) -> None:
    one_line_error(run("work", "show", "missing"), "no work with id 'missing'")
    one_line_error(run("work", "show", "x", "--pipeline", "bad:name"), "pipeline: must be")
    client.deposit([Work(pipeline=P, id="c")])
    corrupt(client, "c")
    one_line_error(run("work", "show", "c"), "work 'c' is corrupt")


def test_an_error_naming_markup_like_text_is_still_one_line(client: Client, run: Invoke) -> None:
    one_line_error(run("work", "show", "[/x]"), "no work with id '[/x]'")


def test_a_long_error_is_one_line(client: Client, run: Invoke) -> None:
    result = run("work", "ls", "bad:name")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_work_ls_every_state(client: Client, run: Invoke) -> None:
    failed = failed_work(client)
    client.deposit([Work(pipeline=P, id="q1", priority=5), Work(pipeline=P, id="q2")])
    client.deposit([Work(pipeline=P, id="late")], delay_s=60)
    client.deposit([Work(pipeline=P, id="c1")])
    client.cancel("c1", pipeline=P)
    result = run("work", "ls", P)
    assert result.exit_code == 0, result.output
    text = result.stdout
    for needle in ("q1", "q2", "late", "delayed", "cancelled", failed.id, "exception: boom"):
        assert needle in text
    assert "second line" not in text

    rows = json.loads(run("work", "ls", P, "--json").stdout)
    assert [(r["id"], r["state"]) for r in rows] == [
        ("q1", "queued"), ("q2", "queued"), ("late", "delayed"),
        (failed.id, "failure"), ("c1", "cancelled"),
    ]  # fmt: skip
    assert Work.from_dict(rows[0]).priority == 5
    assert rows[3]["error"]["message"] == "boom\nsecond line"


def test_work_ls_status_limit_offset(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id=f"w{i}") for i in range(5)])
    client.deposit([Work(pipeline=P, id="d")], delay_s=60)

    def ids(*args: str) -> list[str]:
        result = run("work", "ls", P, "--json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.stdout)]

    assert ids("--status", "queued", "--limit", "2", "--offset", "1") == ["w1", "w2"]
    assert ids("--status", "delayed") == ["d"]
    assert ids("--status", "running") == []
    assert ids("--limit", "3", "--offset", "3") == ["w3", "w4", "d"]  # across states
    assert ids("--offset", "5") == ["d"]
    assert ids("--offset", "6") == []
    assert ids("--limit", "0") == []


def test_work_ls_shows_a_corrupt_record_without_crashing(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="good"), Work(pipeline=P, id="bad")])
    corrupt(client, "bad")
    result = run("work", "ls", P)
    assert result.exit_code == 0, result.output
    assert "good" in result.stdout and "corrupt" in result.stdout
    rows = json.loads(run("work", "ls", P, "--json").stdout)
    assert rows[0]["id"] == "good" and "corrupt" not in rows[0]
    assert rows[1]["id"] == "bad" and "JSON" in rows[1]["corrupt"]


def test_work_ls_empty_and_errors(client: Client, run: Invoke) -> None:
    result = run("work", "ls", P)
    assert result.exit_code == 0 and "no works in ops" in result.stdout
    assert json.loads(run("work", "ls", P, "--json").stdout) == []
    one_line_error(run("work", "ls", "bad:name"), "pipeline: must be")
    assert run("work", "ls", P, "--status", "nope").exit_code == 2


def test_render_works_columns() -> None:
    now = 1_000_000.0
    done = Work(pipeline=P, id="done", creation=now - 7200, attempt=2, status="failure",
                error=Failure(kind="timeout", message="too slow\nmore"))  # fmt: skip
    done.stop = now - 65
    rows = [
        Row("new", "queued", work=Work(pipeline=P, id="new", creation=now - 12, priority=5)),
        Row("done", "failure", work=done),
        Row("[bad]", "running", corrupt="body is not [a] JSON object"),
    ]
    buf = io.StringIO()
    render_works(rows, Console(file=buf, width=100, theme=THEME), now)
    text = buf.getvalue()
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "12s" in lines["new"] and " 5 " in lines["new"]
    assert "1m05s ago" in lines["done"] and "timeout: too slow" in lines["done"]
    assert "more" not in text
    assert "corrupt: body is not [a] JSON object" in lines["[bad]"]


def test_render_work_is_a_key_value_table() -> None:
    buf = io.StringIO()
    render_work(Work(pipeline=P, id="w", parameters={"k": "[red]v"}), Console(file=buf, width=100))
    text = buf.getvalue()
    assert "pipeline" in text and "'ops'" in text and "[red]v" in text


# -- retry / cancel / delete ------------------------------------------------------------------


def test_retry_by_id(client: Client, run: Invoke) -> None:
    a, b = failed_work(client), failed_work(client)
    client.deposit([Work(pipeline=P, id="c")])
    client.cancel("c", pipeline=P)
    result = run("retry", a.id, b.id, "c")
    assert result.exit_code == 0, result.output
    assert f"retried {a.id} (was failure)" in result.stdout
    assert "retried c (was cancelled)" in result.stdout
    assert "3 done, 0 failed" in result.stderr
    assert client.counts(P)["queued"] == 3
    assert client.get(a.id).attempt == 0 and client.get(a.id).error.message.startswith("boom")


def test_retry_reports_each_bad_id_and_still_does_the_others(client: Client, run: Invoke) -> None:
    good = failed_work(client)
    client.deposit([Work(pipeline=P, id="queued")])
    result = run("retry", "missing", good.id, "queued", "--pipeline", P)
    assert result.exit_code == 1
    assert f"retried {good.id} (was failure)" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: no work with id 'missing'",
        "error: cannot retry work 'queued': its status is 'queued'",
    ]
    assert "1 done, 2 failed" in result.stderr
    assert "Traceback" not in result.output
    assert client.get(good.id).status == "queued"


def test_retry_a_pipelines_failures(client: Client, run: Invoke) -> None:
    failed = [failed_work(client) for _ in range(4)]
    client.deposit([Work(pipeline=P, id="c")])
    client.cancel("c", pipeline=P)
    result = run("retry", "--pipeline", P, "--status", "failure", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert f"retried {failed[-1].id}" in result.stdout  # newest first
    assert client.counts(P)["failure"] == 3
    result = run("retry", "--pipeline", P, "--all")  # --status failure is the default
    assert result.exit_code == 0, result.output
    counts = client.counts(P)
    assert (counts["queued"], counts["failure"], counts["cancelled"]) == (4, 0, 1)
    result = run("retry", "--pipeline", P, "--status", "cancelled", "--all")
    assert "retried c (was cancelled)" in result.stdout
    result = run("retry", "--pipeline", P, "--all")
    assert result.exit_code == 0 and "no works in ops with status failure" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--pipeline", P],
        ["--pipeline", P, "--all", "--limit", "2"],
        ["some-id", "--all"],
        ["--all"],
    ],
)
def test_retry_usage_errors(client: Client, run: Invoke, args: list[str]) -> None:
    result = run("retry", *args)
    assert result.exit_code == 2, result.output
    assert "give IDS" in result.stderr


def test_cancel(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="q"), Work(pipeline=P, id="r")])
    client.withdraw(P, count=1)  # q is running
    result = run("cancel", "q", "r", "--reason", "wrong input")
    assert result.exit_code == 0, result.output
    assert "cancelled q (was running)" in result.stdout
    assert "cancelled r (was queued)" in result.stdout
    assert client.get("r").error.message == "wrong input"
    result = run("cancel", "q", "missing")
    assert result.exit_code == 1
    assert "error: cannot cancel work 'q': its status is 'cancelled'" in result.stderr
    assert "error: no work with id 'missing'" in result.stderr
    assert run("cancel").exit_code == 2


def test_delete_asks_first(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="a"), Work(pipeline=P, id="b")])
    result = run("delete", "a", "b", input="n\n")
    assert result.exit_code == 1
    assert "Delete 2 works?" in result.stderr and "nothing deleted" in result.stderr
    assert client.counts(P)["queued"] == 2
    result = run("delete", "a", input="")  # no answer at all: nothing deleted either
    assert result.exit_code == 1
    assert client.counts(P)["queued"] == 2

    result = run("delete", "a", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Delete a?" in result.stderr and "deleted a" in result.stdout
    result = run("delete", "b", "a", "--yes", "--pipeline", P)
    assert result.exit_code == 1
    assert "deleted b" in result.stdout
    assert "error: no work with id 'a' in pipeline 'ops'" in result.stderr
    assert client.counts(P)["queued"] == 0


def test_a_corrupt_work_is_deleted_with_its_pipeline(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="bad")])
    corrupt(client, "bad")
    result = run("delete", "bad", "--yes", "--pipeline", P)
    assert result.exit_code == 0, result.output
    assert client.counts(P)["queued"] == 0


def test_a_corrupt_work_is_deleted_by_id_alone(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="bad")])
    corrupt(client, "bad")
    result = run("delete", "bad", "--yes")
    assert result.exit_code == 0, result.output
    assert client.counts(P)["queued"] == 0


def test_per_id_errors_are_printed_verbatim(client: Client, run: Invoke) -> None:
    result = run("cancel", "[/x]", "--pipeline", P)
    assert result.exit_code == 1
    assert "error: no work with id '[/x]'" in result.stderr


# -- pipelines, pause, resume -----------------------------------------------------------------


def test_pipelines_ls(client: Client, run: Invoke) -> None:
    assert run("pipelines", "ls").stdout.strip() == "no pipelines"
    assert json.loads(run("pipelines", "ls", "--json").stdout) == []
    client.deposit([Work(pipeline="a"), Work(pipeline="a"), Work(pipeline="b")])
    client.pause("b")
    rows = json.loads(run("pipelines", "ls", "--json").stdout)
    assert [(r["name"], r["paused"], r["counts"]["queued"]) for r in rows] == [
        ("a", False, 2),
        ("b", True, 1),
    ]
    result = run("pipelines", "ls")
    assert result.exit_code == 0
    assert "paused" in result.stdout and "failure" in result.stdout


def test_render_pipelines() -> None:
    buf = io.StringIO()
    counts = dict.fromkeys(("queued", "delayed", "running", "success", "failure", "cancelled"), 0)
    render_pipelines([{"name": "x", "paused": True, "counts": counts | {"queued": 42}}],
                     Console(file=buf, width=100, theme=THEME))  # fmt: skip
    line = next(line for line in buf.getvalue().splitlines() if line.split()[:1] == ["x"])
    assert "paused" in line and "42" in line


def test_pipelines_rm(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline="doomed") for _ in range(3)] + [Work(pipeline="kept")])
    client.withdraw("doomed")
    result = run("pipelines", "rm", "doomed", input="n\n")
    assert result.exit_code == 1
    assert "Delete pipeline doomed and its 3 works, 1 of them running?" in result.stderr
    assert "nothing deleted" in result.stderr
    assert client.counts("doomed")["queued"] == 2

    result = run("pipelines", "rm", "doomed", input="y\n")
    assert result.exit_code == 0, result.output
    assert "deleted pipeline doomed (3 works" in result.stdout
    assert client.pipelines() == ["kept"]
    assert not client.redis.keys(f"{client.settings.prefix}:{{doomed}}:*")
    assert client.counts("kept")["queued"] == 1

    one_line_error(run("pipelines", "rm", "doomed", "--yes"), "pipeline: no such pipeline")
    one_line_error(run("pipelines", "rm", "bad:name", "--yes"), "pipeline: must be")


def test_pipelines_rm_yes(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline="doomed")])
    result = run("pipelines", "rm", "doomed", "--yes")
    assert result.exit_code == 0, result.output
    assert client.pipelines() == []


def test_pause_and_resume(client: Client, run: Invoke) -> None:
    client.deposit([Work(pipeline=P, id="w")])
    result = run("pause", P)
    assert result.exit_code == 0 and "paused ops" in result.stdout
    assert client.paused(P) and client.withdraw(P) == []
    assert json.loads(run("pipelines", "ls", "--json").stdout)[0]["paused"] is True
    result = run("resume", P)
    assert result.exit_code == 0 and "resumed ops" in result.stdout
    assert not client.paused(P)
    assert [w.id for w in client.withdraw(P)] == ["w"]
    one_line_error(run("pause", "bad:name"), "pipeline: must be")
    one_line_error(run("resume", "bad:name"), "pipeline: must be")


def test_unreachable_redis_is_one_line(client: Client) -> None:
    app = click.Group("workflow", params=cli.params, callback=cli.callback, commands=OURS)
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["--redis-url", "redis://127.0.0.1:1/0", "pipelines", "ls"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "cannot reach Redis" in result.stderr and "Traceback" not in result.output
    assert time.monotonic() - started < 15
