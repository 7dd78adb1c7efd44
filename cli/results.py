"""`workflow results view|count|get|export|delete|index|retention`: the results index.

Thin commands: parse, one `Results` call, render. Every listing has `--json`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from workflow.cli.console import client_from, err, handle_errors, out
from workflow.cli.works import Row, render_work, render_works
from workflow.errors import ValidationError
from workflow.indexer import CLAIM_IDLE_MS, Indexer
from workflow.query import STATUSES, TimeArg
from workflow.results import Results, Retention

__all__ = ["parse_duration", "parse_time", "results"]

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(name: str, text: str) -> float:
    """Seconds in `90s`, `30m`, `2h`, `7d`, `1w`."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValidationError(name, "must be a duration such as 90s, 30m, 2h, 7d or 1w", text)
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_time(name: str, text: str | None) -> TimeArg:
    """A time option: a duration ago (`2h`), an ISO date/time, or unix seconds."""
    if text is None:
        return None
    if _DURATION.match(text.strip()):
        return timedelta(seconds=parse_duration(name, text))
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            name, "must be a duration ago (2h, 7d), an ISO date/time or unix seconds", text
        ) from None


def filter_options(fn: F) -> F:
    """The search filters shared by view, count, export and delete."""
    options = [
        click.argument("pipelines", nargs=-1),
        click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
                     help="Only this status (repeatable: any)."),
        click.option("--event", "events", type=int, multiple=True,
                     help="Only works of this event (repeatable: any)."),
        click.option("--tag", "tags", multiple=True, help="Only works with this tag "
                     "(repeatable: all of them, or any with --any-tag)."),
        click.option("--any-tag", is_flag=True, help="Match works with any of the --tag values."),
        click.option("--user", "users", multiple=True, help="Only works of this user."),
        click.option("--site", "sites", multiple=True, help="Only works of this site."),
        click.option("--group", "groups", multiple=True, help="Only works in this group."),
        click.option("--since", help="Stopped at or after: 2h (ago), ISO time or unix s."),
        click.option("--until", help="Stopped at or before: 2h (ago), ISO time or unix s."),
        click.option("--created-since", help="Created at or after (same forms)."),
        click.option("--created-until", help="Created at or before (same forms)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def query_args(kw: dict[str, Any]) -> dict[str, Any]:
    """`Results` keyword arguments from the filter options (removed from `kw`)."""
    return {
        "pipeline": list(kw.pop("pipelines")) or None,
        "status": list(kw.pop("statuses")) or None,
        "event": list(kw.pop("events")) or None,
        "tags": list(kw.pop("tags")) or None,
        "tags_mode": "any" if kw.pop("any_tag") else "all",
        "user": list(kw.pop("users")) or None,
        "site": list(kw.pop("sites")) or None,
        "group": list(kw.pop("groups")) or None,
        **{
            name: parse_time(name.replace("_", "-"), kw.pop(name))
            for name in ("since", "until", "created_since", "created_until")
        },
    }


def _results(ctx: click.Context) -> Results:
    return Results(client_from(ctx))


@click.group()
def results() -> None:
    """Search finished works (newest first), export them, set their retention."""


@results.command("view")
@filter_options
@click.option("--limit", type=click.IntRange(0, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cursor", help="Continue after a page (its last line prints the cursor).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of payloads.")
@click.pass_context
@handle_errors
def view(ctx: click.Context, limit: int, offset: int, cursor: str | None, as_json: bool,
         **kw: Any) -> None:  # fmt: skip
    """Finished works of the PIPELINES (default: all) matching the filters."""
    args = query_args(kw)
    r = _results(ctx)
    with r.client:
        page = r.find(limit=limit, offset=offset, cursor=cursor, **args)
    if as_json:
        click.echo(json.dumps([w.payload for w in page]))
    elif not page:
        out.print("no results")
    else:
        render_works([Row(str(w.id), w.status, w) for w in page], out, time.time())
    if page.cursor is not None:  # on stderr: stdout stays a table, or JSON
        err.print(f"more: --cursor {page.cursor}", highlight=False)


@results.command("count")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def count(ctx: click.Context, as_json: bool, **kw: Any) -> None:
    """How many finished works match the filters."""
    args = query_args(kw)
    r = _results(ctx)
    with r.client:
        n = r.count(**args)
    click.echo(json.dumps({"count": n}) if as_json else str(n))


@results.command("get")
@click.argument("work_id")
@click.option("--pipeline", help="Look only in this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the payload as JSON.")
@click.pass_context
@handle_errors
def get(ctx: click.Context, work_id: str, pipeline: str | None, as_json: bool) -> None:
    """One finished work by id."""
    r = _results(ctx)
    with r.client:
        work = r.get(work_id, pipeline=pipeline)
    if as_json:
        click.echo(work.to_json().decode())
    else:
        render_work(work, out)


@results.command("export")
@filter_options
@click.option("-o", "--output", type=click.File("w"), default="-",
              help="JSON Lines file to write (default: stdout).")  # fmt: skip
@click.option("--delete", "then_delete", is_flag=True,
              help="Delete exactly the exported results once written (archive, then drop).")
@click.pass_context
@handle_errors
def export(ctx: click.Context, output: Any, then_delete: bool, **kw: Any) -> None:
    """Write matching results as JSON Lines (one payload per line, newest first)."""
    args = query_args(kw)
    r = _results(ctx)
    with r.client:
        written: list[tuple[str, str]] = []
        for work in r.iterate(**args):
            output.write(work.to_json().decode() + "\n")
            written.append((str(work.id), work.pipeline))
        output.flush()
        deleted = sum(r.delete(p, ids=[i]) for i, p in written) if then_delete else 0
    err.print(f"exported {len(written)}" + (f", deleted {deleted}" if then_delete else ""),
              highlight=False)  # fmt: skip


@results.command("delete")
@filter_options
@click.option("--id", "ids", multiple=True, help="Delete this result (repeatable).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handle_errors
def delete(ctx: click.Context, ids: tuple[str, ...], yes: bool, **kw: Any) -> None:
    """Delete results: the --id ones, or every one matching the filters (export first to
    keep a copy). Refused without any pipeline, filter or id."""
    args = {k: v for k, v in query_args(kw).items() if v is not None}
    given = [k for k in args if k not in ("pipeline", "tags_mode")]
    r = _results(ctx)
    with r.client:
        if ids:
            pipeline = args.get("pipeline")
            if given:
                raise ValidationError("--id", "cannot be combined with filters")
            n = r.delete(pipeline[0] if pipeline and len(pipeline) == 1 else None, ids=list(ids))
        else:
            if not given and "pipeline" not in args:
                raise ValidationError("filters", "give a pipeline, a filter or --id")
            matched = r.count(**args)
            if not yes and not click.confirm(f"delete {matched} results?", err=True):
                err.print("nothing deleted", highlight=False)
                sys.exit(1)
            n = r.delete(**args)
    err.print(f"deleted {n}", highlight=False)


@results.command("index")
@click.argument("pipelines", nargs=-1)
@click.option("--once", is_flag=True, help="Index what is waiting, then exit.")
@click.option("--name", help="Consumer name (default: results-index.<pid>).")
@click.option("--claim-idle-ms", type=click.IntRange(min=1), default=CLAIM_IDLE_MS,
              show_default=True,
              help="Take over entries another indexer has left pending this long.")
@click.pass_context
@handle_errors
def index(ctx: click.Context, pipelines: tuple[str, ...], once: bool, name: str | None,
          claim_idle_ms: int) -> None:  # fmt: skip
    """Run a results indexer for the PIPELINES (default: every pipeline). Workers index
    results themselves; this is for deployments that want a separate one."""
    client = client_from(ctx)
    with client:
        indexer = Indexer(client, list(pipelines) or None, claim_idle_ms=claim_idle_ms,
                          consumer=name or f"results-index.{os.getpid()}")  # fmt: skip
        if once:
            n = indexer.drain()
            err.print(f"indexed {indexer.indexed} of {n} entries, dropped {indexer.dropped}",
                      highlight=False)  # fmt: skip
            return
        err.print(f"indexing results of {', '.join(pipelines) or 'every pipeline'}",
                  highlight=False)  # fmt: skip
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        indexer.run(stop)
        err.print(f"indexed {indexer.indexed}, dropped {indexer.dropped}", highlight=False)


def _retention_line(pipeline: str, policy: Retention) -> str:
    limits = []
    if policy.max_age_s is not None:
        limits.append(f"for {policy.max_age_s} s after they stop")
    if policy.max_count is not None:
        limits.append(f"at most {policy.max_count:,} of them")
    return f"{pipeline}: results kept " + (" and ".join(limits) or "forever")


@results.command("retention")
@click.argument("pipeline")
@click.option("--max-age", help="Keep results this long after they stop: 12h, 7d, 4w ...")
@click.option("--max-count", type=click.IntRange(min=1), help="Keep at most this many.")
@click.option("--clear", is_flag=True, help="Keep results forever (remove both limits).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def retention(ctx: click.Context, pipeline: str, max_age: str | None, max_count: int | None,
              clear: bool, as_json: bool) -> None:  # fmt: skip
    """Show, or set, how long PIPELINE keeps results. Workers enforce it continuously;
    every dropped result is counted in the pipeline's stats."""
    r = _results(ctx)
    with r.client:
        if clear or max_age is not None or max_count is not None:
            current = Retention() if clear else r.retention(pipeline)
            age = current.max_age_s
            if max_age is not None:
                age = max(1, round(parse_duration("--max-age", max_age)))
            policy = r.set_retention(pipeline, max_age_s=age,
                                     max_count=max_count or current.max_count)  # fmt: skip
        else:
            policy = r.retention(pipeline)
    if as_json:
        click.echo(json.dumps({"pipeline": pipeline, "max_age_s": policy.max_age_s,
                               "max_count": policy.max_count}))  # fmt: skip
    else:
        out.print(_retention_line(pipeline, policy), highlight=False)

