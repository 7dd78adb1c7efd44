"""`workflow`: the command line. Thin commands: parse, one library call, render."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.theme import Theme

from workflow import Client, Settings, WorkflowError, __version__
from workflow.cli.run import run
from workflow.cli.server import server
from workflow.work import Work

THEME = Theme(
    {
        "status.created": "dim",
        "status.queued": "cyan",
        "status.running": "yellow",
        "status.success": "green",
        "status.failure": "bold red",
        "status.cancelled": "magenta",
        "error": "bold red",
    }
)
out = Console(theme=THEME)
err = Console(theme=THEME, stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Expected errors become one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WorkflowError as exc:
            err.print(f"[error]error:[/] {exc}", highlight=False, markup=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="workflow")
@click.option(
    "--redis-url", envvar="WORKFLOW_REDIS_URL", help="Redis URL (default: embedded server)."
)
@click.option("--prefix", envvar="WORKFLOW_PREFIX", default="workflow", show_default=True,
              help="Key prefix of the deployment.")  # fmt: skip
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None, prefix: str) -> None:
    """workflow: a Redis-native work queue for scientific pipelines."""
    ctx.obj = {"url": redis_url, "prefix": prefix}


def client_from(ctx: click.Context) -> Client:
    """The Client for the options of the root command."""
    obj = ctx.find_root().obj or {}
    return Client(Settings(url=obj.get("url"), prefix=obj.get("prefix") or "workflow"))


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a Work payload."""
    out.print_json(json.dumps(Work.json_schema()))


@cli.command()
@click.argument("work_id")
@click.option("--pipeline", help="Look only in this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the payload as JSON.")
@click.pass_context
@handle_errors
def show(ctx: click.Context, work_id: str, pipeline: str | None, as_json: bool) -> None:
    """Show one work by id."""
    with client_from(ctx) as c:
        work = c.get(work_id, pipeline=pipeline)
    if as_json:
        click.echo(work.to_json().decode())
        return
    table = Table(show_header=False, box=None)
    for key, value in work.payload.items():
        style = f"status.{value}" if key == "status" else ""
        table.add_row(key, f"[{style}]{value}[/]" if style else repr(value))
    out.print(table)


@cli.command()
@click.argument("pipeline")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def counts(ctx: click.Context, pipeline: str, as_json: bool) -> None:
    """Works of PIPELINE by state."""
    with client_from(ctx) as c:
        data = c.counts(pipeline)
    if as_json:
        click.echo(json.dumps(data))
        return
    table = Table("state", "works")
    for state, n in data.items():
        table.add_row(f"[status.{state}]{state}[/]", str(n))
    out.print(table)


cli.add_command(server)
cli.add_command(run)


if __name__ == "__main__":  # pragma: no cover
    cli()
