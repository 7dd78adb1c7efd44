"""`workflow run PIPELINE... [FUNCTION]`: the worker command (thin over `Worker`)."""

from __future__ import annotations

import logging
import os
import sys

import click

from workflow import Client, Settings
from workflow.errors import WorkflowError
from workflow.worker import GRACE_S, SLEEP_S, Worker

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@click.command(context_settings={"show_default": True})
@click.argument("args", nargs=-1, required=True, metavar="PIPELINE... [FUNCTION]")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    help="Child processes running works at once.",
)
@click.option("--lives", type=int, default=-1, help="Works to process before exiting; -1: forever.")
@click.option(
    "--sleep",
    "sleep_s",
    type=click.FloatRange(min=0.01),
    default=SLEEP_S,
    help="Longest idle wait before re-checking (deposits wake the worker at once).",
)
@click.option("--burst", is_flag=True, help="Exit when the pipelines have nothing left to run.")
@click.option(
    "--in-process",
    is_flag=True,
    help="Run works in this process: fastest, but no hard timeout or crash isolation.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    default=GRACE_S,
    help="Seconds running works get to finish after SIGTERM/SIGINT.",
)
@click.option(
    "--lease-ms",
    type=click.IntRange(min=100),
    default=None,
    help="Liveness lease length (default 30000, or WORKFLOW_LEASE_MS).",
)
@click.option("--site", help="Only works of this site.")
@click.option("--tag", "tags", multiple=True, help="Only works with this tag (repeatable: any).")
@click.option("--user", help="Only works of this user.")
@click.option("--event", "events", type=int, multiple=True, help="Only works of this event.")
@click.option("--priority", type=click.IntRange(1, 5), help="Only works of this priority.")
@click.option("--parent", help="Only works whose config.parent is this.")
@click.option("--name", help="Worker name in the registry (default host.pid.random).")
@click.option(
    "--index/--no-index",
    default=True,
    help="Also index the pipelines' finished works into results (a background thread).",
)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              default="INFO")  # fmt: skip
@click.pass_context
def run(
    ctx: click.Context, args: tuple[str, ...], concurrency: int, lives: int, sleep_s: float,
    burst: bool, in_process: bool, grace_s: float, lease_ms: int | None, site: str | None,
    tags: tuple[str, ...], user: str | None, events: tuple[int, ...], priority: int | None,
    parent: str | None, name: str | None, index: bool, log_level: str,
) -> None:  # fmt: skip
    """Withdraw works of the PIPELINEs and run FUNCTION (a dotted path such as
    `package.module.function`) on each, or each work's own `function`/`command` when
    FUNCTION is `-` or left out (with a single PIPELINE).

    FUNCTION is called with the work's parameters as keyword arguments and returns a
    results dict or (results, products, plots). Exit codes: 0 after a normal stop
    (SIGTERM/SIGINT, --lives used up, --burst done), 1 if the worker cannot start.
    """
    pipelines, function = (list(args[:-1]), args[-1]) if len(args) > 1 else (list(args), None)
    function = None if function == "-" else function
    logging.basicConfig(level=log_level, format=LOG_FORMAT, stream=sys.stderr)
    sys.path.insert(0, os.getcwd())  # import user code the way `python -m` would
    obj = ctx.find_root().obj or {}
    overrides = {"lease_ms": lease_ms} if lease_ms else {}
    filters = {"site": site, "user": user, "priority": priority, "parent": parent,
               "tags": list(tags) or None, "event": list(events) or None}  # fmt: skip
    try:
        settings = Settings.from_env(**overrides)
        settings = settings.replace(url=obj.get("url") or settings.url,
                                    prefix=settings.prefix if obj.get("prefix") is None
                                    else obj["prefix"])  # fmt: skip
        with Client(settings) as client:
            worker = Worker(
                client, pipelines, function, concurrency=concurrency, lives=lives,
                sleep_s=sleep_s, burst=burst, in_process=in_process, grace_s=grace_s,
                filters={k: v for k, v in filters.items() if v is not None}, name=name,
                index=index,
            )  # fmt: skip
            code = worker.run()
    except WorkflowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
