"""Bad input, fuzzed, at the command line: every operator command (deposit, work show|ls,
show, retry, cancel, delete, pipelines ls|rm, pause, resume, status, counts, schema,
results view|count|get|export|delete|index --once|retention) with random arguments and
random files or stdin, through click's CliRunner on the test server (in a scratch
directory: `results export -o NAME` writes where it is told). Each run exits 0, 1 with
our one-line errors, or 2 with a click usage error; never a traceback. After each run
the queue is intact: every id in exactly one state set, with a record whose status
agrees, and every record decodes.

Not fuzzed here: `workflow run` (it would run the fuzzed works' functions; its argument
errors are in tests/worker/test_options.py) and `workflow server` (it starts and stops
the embedded server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow import Client, Failure, Work
from workflow.cli.main import cli
from workflow.keys import work_key

from ..helpers import STATES, keys
from .test_fuzz_work import values

PIPES = ("fz", "fz2")
COMMANDS = [["deposit"], ["work", "show"], ["work", "ls"], ["show"], ["retry"], ["cancel"],
            ["delete"], ["pipelines", "ls"], ["pipelines", "rm"], ["pause"], ["resume"],
            ["status"], ["counts"], ["schema"], ["results", "view"], ["results", "count"],
            ["results", "get"], ["results", "export"], ["results", "delete"],
            ["results", "index", "--once"], ["results", "retention"]]  # fmt: skip
OPTIONS = ["--json", "--yes", "--pipeline", "--all", "--limit", "--offset", "--status",
           "--reason", "--priority", "--tag", "--event", "--user", "--site", "--timeout",
           "--retries", "--function", "--command", "--delay", "--param", "-f", "--format",
           "--file", "--help", "--interval", "-", "--", "--any-tag", "--group", "--since",
           "--until", "--created-since", "--created-until", "--cursor", "-o", "--output",
           "--delete", "--id", "--once", "--name", "--claim-idle-ms", "--max-age",
           "--max-count", "--clear"]  # fmt: skip
ODD = ["x=1", "x={", "=1", "a=[1,2]", "k=null", "nan", "inf", "-1", "0", "6", "1e309",
       "9" * 40, "'unclosed", "os.system", "[bold]x[/]", "a:b", "{p}", "", " ", "\x00",
       "failure", "cancelled", "queued", "json", "yaml", "auto", "w-queued", "w-failed",
       "w-cancelled", "w-running", "w-success", "nope", "2h", "7d", "-1h", "0s", "1e20",
       "2026-01-01T00:00:00", "2026-13-45", "success", *PIPES]  # fmt: skip
FILE_TOKEN = "@FILE"
tokens = st.one_of(
    st.sampled_from(OPTIONS), st.sampled_from(ODD), st.sampled_from(PIPES), st.just(FILE_TOKEN),
    st.integers(-3, 10**12).map(str), st.floats().map(str), st.text(max_size=12),
)  # fmt: skip
contents = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda v: msgspec.json.encode(v) if _encodable(v) else b"[", values),
    st.lists(st.fixed_dictionaries({"pipeline": st.sampled_from([*PIPES, "a:b", 5])},
             optional={"priority": st.integers(-1, 7), "parameters": values, "id": st.text(
                 max_size=6), "tags": values, "retries": values}), max_size=4,
    ).map(lambda docs: b"\n".join(msgspec.json.encode(d) for d in docs if _encodable(d))),
    st.sampled_from([b"", b"\n\n", b"[]", b"{}", b"- pipeline: fz\n", b"pipeline: [", b"\xff"]),
)  # fmt: skip


def _encodable(value: object) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


@pytest.fixture
def seeded(client: Client) -> Iterator[Client]:
    """Works in every state, in two pipelines."""
    seed(client)
    yield client


def seed(client: Client) -> None:
    for p in PIPES:
        client.deposit([Work(pipeline=p, id=f"w-{s}", retries=0) for s in
                        ("running", "failed", "success", "cancelled", "queued")])  # fmt: skip
        running, failed, success = client.withdraw(p, count=3)
        client.complete(failed, "failure", failure=Failure(message="boom"))
        client.complete(success, "success")
        client.cancel("w-cancelled", pipeline=p)
        assert running.id == "w-running"


def check_queue(client: Client) -> None:
    """Every id in exactly one state set, with a record whose status agrees; every work
    record is in a set; every record decodes."""
    for p in {*client.pipelines(), *PIPES}:
        k = keys(client, p)
        state_of: dict[str, str] = {}
        for state in STATES:
            for member in client.redis.zrange(getattr(k, state), 0, -1):
                work_id = member.decode()
                assert work_id not in state_of, f"{p}/{work_id} in {state_of[work_id]} and {state}"
                state_of[work_id] = state
        pattern = work_key(client.settings.prefix, p, "*")
        stored = {key.decode().rpartition(":")[2] for key in client.redis.scan_iter(pattern)}
        assert stored == set(state_of), f"{p}: records {stored} vs sets {state_of}"
        works = client.get_many(p, sorted(state_of))
        for work_id, w in zip(sorted(state_of), works, strict=True):
            assert isinstance(w, Work), (p, work_id, w)
            expected = "queued" if state_of[work_id] == "delayed" else state_of[work_id]
            assert w.status == expected, (p, work_id, w.status, state_of[work_id])


def check_result(result: Result, args: list[str]) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args!r} raised {result.exception!r}") from result.exception
    text = result.output + result.stderr
    assert "Traceback" not in text, (args, text)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, text)
    if result.exit_code == 1:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines, (args, "exit 1 without a message")
        said = ("error:", "nothing deleted", "Aborted!")  # (click's own, on EOF at a prompt)
        declined = any("[y/N]" in line for line in lines)  # a confirmation answered no
        assert declined or any(line.startswith(said) or line.endswith(said) for line in lines), (
            args, text,
        )  # fmt: skip
    elif result.exit_code == 2:
        assert "Usage:" in result.stderr or "Error:" in result.stderr, (args, text)


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS), args=st.lists(tokens, max_size=6),
       content=contents, stdin=st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
           ["y\n", "n\n", '{"pipeline": "fz"}\n', "[1, 2]"])))  # fmt: skip
def test_every_command_with_random_input(
    seeded: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str],
    args: list[str], content: bytes, stdin: str | None,
) -> None:  # fmt: skip
    client = seeded
    if not client.redis.exists(keys(client, "fz").queued):
        client.redis.flushall()  # a previous example deleted some: seed from scratch
        seed(client)
    path = tmp_path / "payloads.jsonl"
    path.write_bytes(content)
    args = [str(path) if a == FILE_TOKEN else a for a in args]
    if command == ["status"]:
        args = [a for a in args if a not in ("--watch", "--interval")]  # would never return
    base = ["--redis-url", client.settings.url, "--prefix", client.settings.prefix]
    scratch = tmp_path / "cwd"
    scratch.mkdir(exist_ok=True)
    monkeypatch.chdir(scratch)
    result = CliRunner().invoke(cli, [*base, *command, *args], input=stdin)
    check_result(result, [*command, *args])
    check_queue(client)


@pytest.mark.parametrize("url", ["notaurl", "http://x", "redis://127.0.0.1:port/0", "redis://[::1",
                                 "redis://h:99999999/0", "redis://h/0?socket_timeout=abc"])
@pytest.mark.parametrize("command", [["counts", "fz"], ["show", "x"], ["deposit", "fz"],
                                     ["status"], ["pipelines", "ls"], ["retry", "x"]])  # fmt: skip
def test_bad_redis_urls_are_one_line_errors(url: str, command: list[str]) -> None:
    """(An unreachable server, retried for a few seconds first: test_cli_ops.py.)"""
    result = CliRunner().invoke(cli, ["--redis-url", url, *command])
    check_result(result, command)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("prefix", ["a:b", "{x}", "x" * 200, "a b"])
def test_bad_prefixes_are_one_line_errors(client: Client, prefix: str) -> None:
    result = CliRunner().invoke(cli, ["--redis-url", client.settings.url, "--prefix", prefix,
                                      "counts", "fz"])  # fmt: skip
    check_result(result, ["counts"])
    assert result.exit_code == 1 and "prefix" in result.stderr
