"""The CLI through click's CliRunner: thin commands, JSON output, one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from workflow import Client, Work
from workflow.cli.main import cli


def invoke(client: Client, *args: str):
    runner = CliRunner()
    base = ["--redis-url", client.settings.url, "--prefix", client.settings.prefix]
    return runner.invoke(cli, [*base, *args], catch_exceptions=False)


def test_show_json_round_trips(client: Client) -> None:
    work = Work(pipeline="cli-p", parameters={"x": 1}, tags=["a"])
    client.deposit([work])
    result = invoke(client, "show", work.id, "--json")
    assert result.exit_code == 0
    shown = Work.from_json(result.output)
    assert shown.id == work.id and shown.parameters == {"x": 1} and shown.status == "queued"


def test_show_table(client: Client) -> None:
    work = Work(pipeline="cli-p")
    client.deposit([work])
    result = invoke(client, "show", work.id)
    assert result.exit_code == 0
    assert "queued" in result.output and work.id in result.output


def test_counts_json(client: Client) -> None:
    client.deposit([Work(pipeline="cli-p") for _ in range(3)])
    result = invoke(client, "counts", "cli-p", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["queued"] == 3


def test_errors_are_one_line_and_exit_1(client: Client) -> None:
    result = invoke(client, "show", "missing-id")
    assert result.exit_code == 1
    assert "no work with id 'missing-id'" in result.output
    assert "Traceback" not in result.output
    result = invoke(client, "counts", "bad:name")
    assert result.exit_code == 1
    assert "pipeline: must be" in result.output


def test_schema_lists_fields() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert "priority" in result.output and "pipeline" in result.output


def test_an_empty_prefix_is_refused_not_replaced(client: Client) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--redis-url", client.settings.url, "--prefix", "", "counts",
                                 "p"], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 1
    assert "prefix: must be 1-128 characters" in result.output
