"""Operator commands on works: `deposit`, `work show|ls`, `retry`, `cancel`, `delete`.

Thin commands: parse, one library call, render. Rendering functions take a `Console` and
never touch Redis. The root group (`workflow.cli.main`) imports this module at its
bottom, so its helpers (`client_from`, `handle_errors`, the `out`/`err` consoles) are
imported inside the commands, when they run, never at import time.
"""

from __future__ import annotations

import functools
import json
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workflow.client import Client
from workflow.errors import (
    CorruptWork,
    InvalidTransition,
    ValidationError,
    WorkNotFound,
)
from workflow.operations import COUNT_SETS
from workflow.work import Work

__all__ = [
    "cancel",
    "delete",
    "deposit",
    "handled",
    "parse_payloads",
    "render_work",
    "render_works",
    "retry",
    "work",
]

F = TypeVar("F", bound=Callable[..., Any])
LIST_LIMIT = 50
"""Works `work ls` shows unless told otherwise."""
PER_ID_ERRORS = (WorkNotFound, InvalidTransition, CorruptWork, ValidationError)
"""Errors about one id of many: reported, then the other ids go on."""


def handled(fn: F) -> F:
    """`workflow.cli.main.handle_errors`, looked up when the command runs (main imports
    this module at its bottom, so it cannot be imported here at import time)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from workflow.cli.console import handle_errors

        return handle_errors(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- deposit ------------------------------------------------------------------------------


def parse_param(raw: str) -> tuple[str, Any]:
    """`key=value`; the value is JSON when it parses as JSON, else the string itself."""
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise ValidationError("--param", "must be key=value", raw)
    try:
        return key, msgspec.json.decode(value)
    except msgspec.DecodeError:
        return key, value


def parse_payloads(data: bytes, name: str, fmt: str = "auto") -> list[tuple[str, dict]]:
    """Work payloads from a file's bytes: a JSON object, a JSON array of objects, JSON
    Lines (one object per line) or YAML (a mapping or a list of them). Each comes with
    where it was found (`works.jsonl line 3`) for error messages."""
    if fmt == "auto":
        fmt = "yaml" if name.endswith((".yaml", ".yml")) else "json"
    if fmt == "yaml":
        try:
            doc = msgspec.yaml.decode(data)
        except ImportError:
            raise ValidationError(
                name, "reading YAML needs PyYAML: pip install pyyaml (or give JSON Lines)"
            ) from None
        except msgspec.DecodeError as exc:
            raise ValidationError(name, f"is not valid YAML ({exc})") from None
        return _documents(doc, name)
    if not data.strip():
        raise ValidationError(name, "is empty: give a JSON object per line, or a JSON array")
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        if fmt == "json" and data.lstrip()[:1] == b"[":
            raise ValidationError(name, f"is not a valid JSON array ({exc})") from None
        return _json_lines(data, name)
    return _documents(doc, name)


def _json_lines(data: bytes, name: str) -> list[tuple[str, dict]]:
    found = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name} line {n}"
        try:
            item = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise ValidationError(where, f"is not valid JSON ({exc})") from None
        if not isinstance(item, dict):
            raise ValidationError(where, "must be a JSON object (one work payload)", item)
        found.append((where, item))
    return found


def _documents(doc: Any, name: str) -> list[tuple[str, dict]]:
    if isinstance(doc, dict):
        return [(name, doc)]
    if not isinstance(doc, list):
        raise ValidationError(name, "must hold a work payload object or a list of them", doc)
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise ValidationError(f"{name} item {i}", "must be an object (a work payload)", item)
    return [(f"{name} item {i}", item) for i, item in enumerate(doc)]


def _work_from(where: str, payload: dict[str, Any]) -> Work:
    try:
        return Work.from_dict(payload)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc.field}", exc.rule, exc.value) from None


@click.command()
@click.argument("pipeline", required=False)
@click.option(
    "-f",
    "--file",
    "source",
    type=click.File("rb"),
    help="Payloads: a JSON object or array, JSON Lines, or YAML; '-' is stdin.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "json", "yaml"]),
    default="auto",
    show_default=True,
    help="Format of --file (auto: YAML for .yaml/.yml).",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter (repeatable); VALUE is JSON when it parses, else a string.",
)
@click.option("--priority", type=int, help="1-5, 5 is withdrawn first.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--event", "events", type=int, multiple=True, help="An event number (repeatable).")
@click.option("--user", help="Who the work is for.")
@click.option("--site", help="Where it should run.")
@click.option("--timeout", type=int, help="Seconds one attempt may run.")
@click.option("--retries", type=int, help="Retries after the first attempt.")
@click.option("--function", help="Dotted path of the function a worker runs.")
@click.option("--command", help="Command line a worker runs (split like a shell).")
@click.option("--delay", type=float, default=0, help="Seconds before the works may start.")
@click.option("--json", "as_json", is_flag=True, help="Print [{id, pipeline, created}].")
@click.pass_context
@handled
def deposit(
    ctx: click.Context, pipeline: str | None, source: Any, fmt: str, params: tuple[str, ...],
    priority: int | None, tags: tuple[str, ...], events: tuple[int, ...], user: str | None,
    site: str | None, timeout: int | None, retries: int | None, function: str | None,
    command: str | None, delay: float, as_json: bool,
) -> None:  # fmt: skip
    """Deposit works: one from the options, or many from --file (one batch).

    With --file, PIPELINE and the options are defaults for payloads that lack them.
    Prints the ids, one a line; ids that existed already are left unchanged.
    """
    from workflow.cli.console import client_from, err

    if pipeline is None and source is None:
        raise click.UsageError("give a PIPELINE, or payloads with -f FILE")
    fields: dict[str, Any] = {
        "pipeline": pipeline, "priority": priority, "user": user, "site": site,
        "timeout": timeout, "retries": retries, "function": function,
        "parameters": dict(parse_param(p) for p in params) or None,
        "tags": list(tags) or None, "event": list(events) or None,
    }  # fmt: skip
    if command is not None:
        try:
            fields["command"] = shlex.split(command)
        except ValueError as exc:
            raise ValidationError("command", f"cannot be split like a shell line ({exc})") from None
    defaults = {k: v for k, v in fields.items() if v is not None}
    if source is None:
        works = [Work(**defaults)]
    else:
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) and name not in ("-", "<stdin>") else "stdin"
        found = parse_payloads(source.read(), name, fmt)
        works = [_work_from(where, {**defaults, **payload}) for where, payload in found]
    with client_from(ctx) as c:
        created = c.deposit(works, delay_s=delay)
    if as_json:
        rows = [{"id": w.id, "pipeline": w.pipeline, "created": new}
                for w, new in zip(works, created, strict=True)]  # fmt: skip
        click.echo(json.dumps(rows))
    else:
        for w in works:
            click.echo(w.id)
    existed = created.count(False)
    note = f"; {existed} existed already (unchanged)" if existed else ""
    err.print(f"deposited {len(works) - existed} of {len(works)} works{note}", highlight=False)


# -- work show / work ls --------------------------------------------------------------------


def render_work(work: Work, console: Console) -> None:
    """One work as a two-column table of its payload; the status in its theme colour.
    Cells are plain `Text`, never markup: a parameter may contain `[/]`."""
    table = Table(show_header=False, box=None)
    for key, value in work.payload.items():
        if key == "status":
            table.add_row(key, Text(value, style=f"status.{value}"))
        else:
            table.add_row(key, Text(repr(value)))
    console.print(table)


@dataclass(frozen=True)
class Row:
    """One line of `work ls`: the set the id is in, and its work or why it is unreadable."""

    id: str
    state: str
    work: Work | None = None
    corrupt: str | None = None

    def to_builtins(self) -> dict[str, Any]:
        """The work's payload plus `state`; a corrupt record as `{id, state, corrupt}`."""
        if self.work is None:
            return {"id": self.id, "state": self.state, "corrupt": self.corrupt}
        return {**self.work.payload, "state": self.state}


def duration(seconds: float) -> str:
    """A short, human duration: 12s, 3m12s, 2h05m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def render_works(rows: Iterable[Row], console: Console, now: float) -> None:
    """A table of works: id, state, priority, attempt, age (since creation) or, for
    finished works, how long ago they stopped, and the first line of the last error
    (cut to fit the console's width)."""
    cells = [_cells(row, now) for row in rows]
    table = Table("id", "state", "prio", "attempt", "age/stop", "error", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True)  # fmt: skip
    fixed = 0
    for i, column in enumerate(table.columns[:-1]):
        column.no_wrap = True
        fixed += max([len(str(column.header))] + [c[i].cell_len for c in cells]) + 2
    error = table.columns[-1]
    error.no_wrap, error.overflow = True, "ellipsis"
    error.max_width = max(8, console.width - fixed)
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)


def _cells(row: Row, now: float) -> list[Text]:
    state = Text(row.state, style=f"status.{row.state}")
    w = row.work
    if w is None:
        corrupt = Text.assemble(("corrupt: ", "error"), row.corrupt or "")
        return [Text(row.id), state, Text("?"), Text("?"), Text("?"), corrupt]
    if w.stop is not None and w.status in ("success", "failure", "cancelled"):
        when = f"{duration(now - w.stop)} ago"
    else:
        when = duration(now - (w.creation or now))
    error = "" if w.error is None else f"{w.error.kind}: {first_line(w.error.message)}"
    return [Text(row.id), state, Text(str(w.priority)), Text(str(w.attempt)), Text(when),
            Text(error)]  # fmt: skip


@click.group()
def work() -> None:
    """Inspect works: show one, list a pipeline's."""


@work.command("show")
@click.argument("work_id")
@click.option("--pipeline", help="Look only in this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the payload as JSON.")
@click.pass_context
@handled
def show_work(ctx: click.Context, work_id: str, pipeline: str | None, as_json: bool) -> None:
    """Show one work by id."""
    from workflow.cli.console import client_from, out

    with client_from(ctx) as c:
        found = c.get(work_id, pipeline=pipeline)
    if as_json:
        click.echo(found.to_json().decode())
    else:
        render_work(found, out)


@work.command("ls")
@click.argument("pipeline")
@click.option(
    "--status",
    type=click.Choice(COUNT_SETS),
    help="Only works in this state (default: every state, in this order).",
)
@click.option("--limit", type=click.IntRange(min=0), default=LIST_LIMIT, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of payloads.")
@click.pass_context
@handled
def list_works(
    ctx: click.Context, pipeline: str, status: str | None, limit: int, offset: int,
    as_json: bool,
) -> None:  # fmt: skip
    """List the works of PIPELINE: queued in withdraw order, delayed by due time, running
    by lease expiry, finished newest first."""
    from workflow.cli.console import client_from, out

    with client_from(ctx) as c:
        rows = _rows(c, pipeline, [status] if status else list(COUNT_SETS), limit, offset)
    if as_json:
        click.echo(json.dumps([r.to_builtins() for r in rows]))
    elif rows:
        render_works(rows, out, time.time())
    else:
        out.print(f"no works in {pipeline}" + (f" with status {status}" if status else ""))


def _rows(c: Client, pipeline: str, states: list[str], limit: int, offset: int) -> list[Row]:
    """`limit` rows after skipping `offset`, across `states` in order."""
    counts = c.counts(pipeline) if offset and len(states) > 1 else {}
    ids: list[tuple[str, str]] = []
    for state in states:
        if len(ids) >= limit:
            break
        if counts and offset >= counts[state]:
            offset -= counts[state]
            continue
        got = c.ids(pipeline, state, limit=limit - len(ids), offset=offset)
        offset = 0
        ids += [(i, state) for i in got]
    found = c.get_many(pipeline, [i for i, _ in ids]) if ids else []
    rows = []
    for (work_id, state), w in zip(ids, found, strict=True):
        if isinstance(w, CorruptWork):
            rows.append(Row(work_id, state, corrupt=w.reason))
        elif w is not None:  # None: deleted since its id was read
            rows.append(Row(work_id, state, work=w))
    return rows


# -- retry / cancel / delete ------------------------------------------------------------------


def for_each(ctx: click.Context, ids: Iterable[str], action: Callable[[str], str]) -> None:
    """Run `action` on each id (duplicates once), printing what it returns; an error about
    one id is one line on stderr and the others go on. Exit 1 if any failed."""
    from workflow.cli.console import err, out

    unique = list(dict.fromkeys(ids))
    failed = 0
    for work_id in unique:
        try:
            message = action(work_id)
        except PER_ID_ERRORS as exc:
            failed += 1
            line = Text.assemble(("error:", "error"), " ", " ".join(str(exc).split()))
            err.print(line, highlight=False, soft_wrap=True)
        else:
            out.print(message, markup=False, highlight=False, soft_wrap=True)
    if len(unique) > 1:
        err.print(f"{len(unique) - failed} done, {failed} failed", highlight=False)
    if failed:
        ctx.exit(1)


@click.command()
@click.argument("ids", nargs=-1)
@click.option("--pipeline", help="The works' pipeline (saves searching every pipeline).")
@click.option(
    "--status",
    type=click.Choice(["failure", "cancelled"]),
    help="Without IDS: retry the works of --pipeline in this state [failure].",
)
@click.option("--all", "all_", is_flag=True, help="Without IDS: every such work.")
@click.option("--limit", type=click.IntRange(min=1), help="Without IDS: at most N, newest first.")
@click.pass_context
@handled
def retry(
    ctx: click.Context, ids: tuple[str, ...], pipeline: str | None, status: str | None,
    all_: bool, limit: int | None,
) -> None:  # fmt: skip
    """Put failed or cancelled works back in the queue, as new runs (attempt 0, their last
    error kept): by id, or --pipeline P --status failure (--all | --limit N)."""
    from workflow.cli.console import client_from, err

    if ids and (status or all_ or limit):
        raise click.UsageError("give IDS, or --pipeline with --status/--all/--limit, not both")
    if not ids and (pipeline is None or all_ == (limit is not None)):
        raise click.UsageError("give IDS, or --pipeline P with one of --all or --limit N")
    with client_from(ctx) as c:
        if not ids:
            state = status or "failure"
            n = c.counts(pipeline)[state] if all_ else limit  # type: ignore[index, arg-type]
            ids = tuple(c.ids(pipeline, state, limit=n))  # type: ignore[arg-type]
            if not ids:
                err.print(f"no works in {pipeline} with status {state}", highlight=False)
                return

        def one(work_id: str) -> str:
            return f"retried {work_id} (was {c.retry(work_id, pipeline=pipeline)})"

        for_each(ctx, ids, one)


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--pipeline", help="The works' pipeline (saves searching every pipeline).")
@click.option("--reason", default="", help="Recorded as the works' error message.")
@click.pass_context
@handled
def cancel(ctx: click.Context, ids: tuple[str, ...], pipeline: str | None, reason: str) -> None:
    """Cancel works that have not finished: queued ones never run, running ones are told
    to stop at their worker's next heartbeat."""
    from workflow.cli.console import client_from

    with client_from(ctx) as c:

        def one(work_id: str) -> str:
            before = c.cancel(work_id, pipeline=pipeline, reason=reason)
            return f"cancelled {work_id} (was {before})"

        for_each(ctx, ids, one)


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--pipeline", help="The works' pipeline (saves searching every pipeline).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handled
def delete(ctx: click.Context, ids: tuple[str, ...], pipeline: str | None, yes: bool) -> None:
    """Delete works, whatever their state (asks first unless --yes)."""
    from workflow.cli.console import client_from, err

    unique = list(dict.fromkeys(ids))
    what = unique[0] if len(unique) == 1 else f"{len(unique)} works"
    if not yes and not click.confirm(f"Delete {what}? This cannot be undone", err=True):
        err.print("nothing deleted", highlight=False)
        ctx.exit(1)
    with client_from(ctx) as c:

        def one(work_id: str) -> str:
            if not c.delete(work_id, pipeline=pipeline):
                raise WorkNotFound(work_id, pipeline)
            return f"deleted {work_id}"

        for_each(ctx, unique, one)
