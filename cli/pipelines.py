"""Operator commands on pipelines: `pipelines ls|rm`, `pause`, `resume`.

Like `works`, imported by the root group at its bottom: helpers of `workflow.cli.main`
are imported inside the commands, when they run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workflow.cli.works import handled
from workflow.errors import ValidationError
from workflow.operations import COUNT_SETS

__all__ = ["pause", "pipelines", "render_pipelines", "resume"]


def render_pipelines(rows: Iterable[dict[str, Any]], console: Console) -> None:
    """A table of pipelines: name, paused, and the count of works in each state."""
    table = Table("pipeline", "paused", *COUNT_SETS, box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)  # fmt: skip
    for col in table.columns[2:]:
        col.justify = "right"
    for row in rows:
        paused = Text("paused" if row["paused"] else "", style="status.cancelled")
        counts = [Text(str(row["counts"][s])) for s in COUNT_SETS]
        table.add_row(Text(row["name"]), paused, *counts)
    console.print(table)


@click.group()
def pipelines() -> None:
    """List and delete pipelines."""


@pipelines.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print [{name, paused, counts}].")
@click.pass_context
@handled
def list_pipelines(ctx: click.Context, as_json: bool) -> None:
    """Every pipeline, whether it is paused, and its works by state."""
    from workflow.cli.console import client_from, out

    with client_from(ctx) as c:
        rows = [
            {"name": name, "paused": c.paused(name), "counts": c.counts(name)}
            for name in c.pipelines()
        ]
    if as_json:
        click.echo(json.dumps(rows))
    elif rows:
        render_pipelines(rows, out)
    else:
        out.print("no pipelines")


@pipelines.command("rm")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handled
def remove_pipeline(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete pipeline NAME and every work in it, whatever their state (asks first
    unless --yes). Workers still running its works find them gone."""
    from workflow.cli.console import client_from, err, out

    with client_from(ctx) as c:
        counts = c.counts(name)
        if name not in c.pipelines() and not any(counts.values()):
            raise ValidationError("pipeline", "no such pipeline", name)
        total = sum(counts.values())
        running = f", {counts['running']} of them running" if counts["running"] else ""
        question = f"Delete pipeline {name} and its {total} works{running}?"
        if not yes and not click.confirm(question, err=True):
            err.print("nothing deleted", highlight=False)
            ctx.exit(1)
        deleted = c.delete_pipeline(name)
    out.print(f"deleted pipeline {name} ({total} works, {deleted} keys)", highlight=False)


@click.command()
@click.argument("pipeline")
@click.pass_context
@handled
def pause(ctx: click.Context, pipeline: str) -> None:
    """Stop handing out works of PIPELINE. Deposits, running works, their completions and
    lease recovery go on."""
    from workflow.cli.console import client_from, out

    with client_from(ctx) as c:
        c.pause(pipeline)
    out.print(f"paused {pipeline} (workflow resume {pipeline} to undo)", highlight=False)


@click.command()
@click.argument("pipeline")
@click.pass_context
@handled
def resume(ctx: click.Context, pipeline: str) -> None:
    """Hand out works of PIPELINE again, waking its idle workers."""
    from workflow.cli.console import client_from, out

    with client_from(ctx) as c:
        c.resume(pipeline)
    out.print(f"resumed {pipeline}", highlight=False)
