"""`workflow`: the command line. Thin commands: parse, one library call, render."""

from __future__ import annotations

import json

import click
from rich.table import Table

from workflow import __version__
from workflow.cli.console import client_from, handle_errors, out
from workflow.cli.pipelines import pause, pipelines, resume
from workflow.cli.results import results
from workflow.cli.run import run
from workflow.cli.server import server
from workflow.cli.status import status
from workflow.cli.works import cancel, delete, deposit, retry, show_work, work
from workflow.work import Work


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


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a Work payload."""
    out.print_json(json.dumps(Work.json_schema()))


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


for _command in (run, status, deposit, work, retry, cancel, delete, pipelines, pause, resume,
                 results, server):  # fmt: skip
    cli.add_command(_command)
cli.add_command(show_work, "show")  # `workflow show ID`: short for `workflow work show ID`


if __name__ == "__main__":  # pragma: no cover
    cli()
