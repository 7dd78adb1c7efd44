"""`workflow server`: start, stop and inspect the embedded Redis server."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.table import Table
from rich.theme import Theme

from workflow.cli.console import handle_errors
from workflow.server import EmbeddedStatus, embedded_status, ensure_embedded, stop_embedded

THEME = Theme({"server.running": "green", "server.stopped": "dim"})
out = Console(theme=THEME, highlight=False, soft_wrap=True)

directory_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Server directory (default: $WORKFLOW_HOME or ~/.local/share/workflow).",
)


@click.group()
def server() -> None:
    """The embedded Redis server used when WORKFLOW_REDIS_URL is not set."""


@server.command()
@directory_option
@handle_errors
def start(directory: Path | None) -> None:
    """Start the embedded server (if it is not running) and print its URL."""
    was_running = embedded_status(directory).running
    url = ensure_embedded(directory, announce=False)
    state = "already running" if was_running else "started"
    out.print(f"[server.running]{state}[/] {url}", markup=True)


@server.command()
@directory_option
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the server to exit.")  # fmt: skip
@handle_errors
def stop(directory: Path | None, timeout_s: float) -> None:
    """Stop the embedded server (its data stays on disk)."""
    if stop_embedded(directory, timeout_s=timeout_s):
        out.print("[server.stopped]stopped[/]", markup=True)
    else:
        out.print("[server.stopped]not running[/]", markup=True)


@server.command()
@directory_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@handle_errors
def status(directory: Path | None, as_json: bool) -> None:
    """Show whether the embedded server runs, and where."""
    found = embedded_status(directory)
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
    else:
        out.print(render_status(found))


def render_status(status: EmbeddedStatus) -> Table:
    """A two-column table of the status."""
    table = Table(show_header=False, box=None)
    state = "[server.running]running[/]" if status.running else "[server.stopped]stopped[/]"
    table.add_row("state", state)
    for field in ("url", "directory", "pid", "binary", "version", "used_memory"):
        value = getattr(status, field)
        if value is not None:
            table.add_row(field, str(value))
    return table
