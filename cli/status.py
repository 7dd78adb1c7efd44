"""`workflow status [PIPELINE...]`: queues, throughput, running works, failures, workers.

Thin: `workflow.status.snapshot()` (two round trips) -> `render()` -> print. Everything
below `render()` is a pure function of a `Snapshot`: no Redis, no clock (ages are
measured from the snapshot's own Redis time), so it is tested on hand-built snapshots.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator

import click
import msgspec
from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Column, Table
from rich.text import Text
from rich.theme import Theme

from workflow.cli.console import THEME, client_from, err, handle_errors, out
from workflow.errors import ConnectionError
from workflow.operations import COUNT_SETS
from workflow.status import PipelineStatus, Snapshot, rates, snapshot
from workflow.worker import WorkerInfo

__all__ = [
    "STATUS_THEME",
    "STYLES",
    "human_age",
    "priority_breakdown",
    "render",
    "render_pipeline",
    "sparkline",
    "status",
]

STYLES = {
    "status.delayed": "blue",
    "status.paused": "bold yellow",
    "status.stale": "bold red",
}
"""Semantic styles `status` uses beyond the shared THEME (added to it if missing)."""
SHOWN = 10
"""Rows of running works and of recent failures in the overview (all pipelines)."""
DETAIL_SHOWN = 30
"""Rows of running works and of recent failures when one pipeline is shown."""
RATE_MINUTES = 5
"""Full minutes averaged for the rate column."""
STALE_BEAT_S = 20.0
"""A worker whose last heartbeat is older than this is shown as stale (beats every lease/3)."""
BLOCKS = "▁▂▃▄▅▆▇█"
"""Sparkline levels, lowest first: an idle minute is the lowest, any finish is higher."""
FINISHED = ("success", "failure", "cancelled")
"""Throughput fields that count as finishes."""

# Until cli/main.py's THEME carries these names, add them to its consoles (a no-op then).
_missing = {name: style for name, style in STYLES.items() if name not in THEME.styles}
if _missing:
    for _console in (out, err):
        _console.push_theme(Theme(_missing))
STATUS_THEME = Theme({**THEME.styles, **STYLES})
"""THEME plus `STYLES`: for consoles that render status outside the CLI (tests)."""


# -- pure helpers ------------------------------------------------------------------------


def human_age(seconds: float | None) -> str:
    """`3s`, `4m`, `2h`, `5d` (whole units, rounded down); `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + human_age(-seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def sparkline(values: Iterable[int]) -> str:
    """One block per value scaled to the largest: 0 is `▁`, the largest `█`, and any
    value above 0 at least `▂`, so a quiet minute never looks idle."""
    values = list(values)
    peak = max(values, default=0)
    if peak <= 0:
        return BLOCKS[0] * len(values)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[0] if v <= 0 else BLOCKS[max(1, round(v / peak * top))] for v in values)


def finishes_per_minute(p: PipelineStatus) -> list[int]:
    """Works finished (success, failure, cancelled) in each minute, oldest first."""
    return [sum(row.get(k, 0) for k in FINISHED) for row in p.throughput]


def priority_breakdown(by_priority: dict[int, int]) -> str:
    """`5:3 3:120`: queued works per priority, highest first, empty ones left out."""
    return " ".join(f"{p}:{n:,}" for p, n in sorted(by_priority.items(), reverse=True) if n)


def _rate(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def _count(n: int, state: str) -> Text:
    return Text(f"{n:,}", style=f"status.{state}" if n else "dim")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _left(seconds: float | None, expired: str) -> Text:
    if seconds is None:
        return Text("-", style="dim")
    if seconds <= 0:
        return Text(expired, style="status.stale")
    return Text(human_age(seconds))


def _title(snap: Snapshot, what: str | Text) -> Text:
    clock = time.strftime("%H:%M:%S", time.localtime(snap.time))
    return Text.assemble(
        ("workflow status", "bold"), "  ", what, "  ·  prefix ", (snap.prefix, "bold"),
        f"  ·  {clock}",
    )  # fmt: skip


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _name(p: PipelineStatus) -> Text:
    text = Text(p.name, style="bold")
    if p.paused:
        text.append(" (paused)", style="status.paused")
    return text


def _table(title: str, *columns: str | Column) -> Table:
    """A borderless table: a bold title line, a rule under the header, one space between
    columns (the box's blank divider; no padding). Columns are `no_wrap` unless given as a
    `Column` (those absorb the squeeze when the terminal is narrow)."""
    cols = [Column(c, no_wrap=True) if isinstance(c, str) else c for c in columns]
    return Table(
        *cols, title=title or None, title_justify="left", title_style="bold",
        box=box.SIMPLE_HEAD, padding=0, show_edge=False, min_width=len(title),
    )  # fmt: skip


def _right(header: str) -> Column:
    return Column(header, justify="right", no_wrap=True)


def _squeezable(header: str) -> Column:
    """A column that gives up width first; its cells stay on one line, cut with `…`."""
    return Column(header, overflow="ellipsis")


def _line(text: str, style: str = "") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _unknown(p: PipelineStatus) -> bool:
    return not p.stats and not any(p.counts.values())


# -- the pieces --------------------------------------------------------------------------


def pipelines_table(snap: Snapshot) -> Table:
    """One row per pipeline: counts by state (queued by priority), finishes per minute,
    a sparkline of the last minutes' finishes, the age of the oldest queued work."""
    minutes = max((len(p.throughput) for p in snap.pipelines), default=0)
    longest = max((len(p.name) + (9 if p.paused else 0) for p in snap.pipelines), default=8)
    table = _table(
        "", Column("pipeline", min_width=min(longest, 24)), _right("queued"), Column("priority"),
        *(_right(s) for s in COUNT_SETS[1:]),
        _right("/min"), f"last {minutes} min", _right("oldest"),
    )  # fmt: skip
    for p in snap.pipelines:
        per_min = sum(rates(p, RATE_MINUTES).get(k, 0.0) for k in FINISHED)
        table.add_row(
            _name(p),
            _count(p.counts.get("queued", 0), "queued"),
            Text(priority_breakdown(p.queued_by_priority), style="dim"),
            *(_count(p.counts.get(s, 0), s) for s in COUNT_SETS[1:]),
            Text(_rate(per_min)),
            Text(sparkline(finishes_per_minute(p)), style="status.success"),
            Text(human_age(p.oldest_queued_s)),
        )  # fmt: skip
    return table


def running_table(snap: Snapshot, limit: int) -> Table:
    """Running works: id, pipeline, worker, attempt, lease left, timeout left."""
    rows = [(p.name, w) for p in snap.pipelines for w in p.running]
    total = sum(p.counts.get("running", 0) for p in snap.pipelines)
    table = _table(
        _heading("running", min(limit, len(rows)), total), "id", "pipeline",
        _squeezable("worker"), _right("attempt"), _right("lease left"), _right("timeout left"),
    )  # fmt: skip
    for name, w in rows[:limit]:
        table.add_row(
            Text(w.id), Text(name), _line(w.worker or "-", "" if w.worker else "dim"),
            Text(str(w.attempt)), _left(w.lease_left_s, "expired"),
            _left(w.timeout_left_s, "overdue"),
        )  # fmt: skip
    return table


def failures_table(snap: Snapshot, limit: int) -> Table:
    """Recent terminal failures, newest first: id, pipeline, when, attempt, and the error
    as `kind: first line of the message`."""
    rows = sorted(
        ((p.name, f) for p in snap.pipelines for f in p.failures), key=lambda r: -r[1].stop
    )
    total = sum(p.counts.get("failure", 0) for p in snap.pipelines)
    table = _table(
        _heading("recent failures", min(limit, len(rows)), total), "id", "pipeline",
        _right("when"), _right("attempt"), _squeezable("error"),
    )  # fmt: skip
    for name, f in rows[:limit]:
        line = _first_line(f.message)
        error = _line("")
        error.append(f.kind, "status.failure")
        error.append(f": {line}" if line else "")
        table.add_row(
            Text(f.id), Text(name), Text(human_age(snap.time - f.stop) + " ago"),
            Text(str(f.attempt)), error,
        )  # fmt: skip
    return table


def workers_table(snap: Snapshot, workers: list[WorkerInfo]) -> Table:
    """Live workers: name, host, pid, pipelines, works held / concurrency, processed,
    failed, age of the last heartbeat (stale past `STALE_BEAT_S`)."""
    table = _table(
        f"workers ({len(workers)})", _squeezable("name"), _squeezable("host"), _right("pid"),
        _squeezable("pipelines"), _right("works"), _right("processed"), _right("failed"),
        _right("beat"),
    )  # fmt: skip
    for w in workers:
        age = snap.time - w.beat
        table.add_row(
            _line(w.name), _line(w.host), Text(str(w.pid)), _line(", ".join(w.pipelines)),
            Text(f"{len(w.current)}/{w.concurrency}"), Text(f"{w.processed:,}"),
            _count(w.failed, "failure"),
            Text(human_age(age) + " ago", style="status.stale" if age > STALE_BEAT_S else ""),
        )  # fmt: skip
    return table


def _heading(what: str, shown: int, total: int) -> str:
    return f"{what} ({total:,})" if shown >= total else f"{what} ({shown} of {total:,})"


# -- whole views -------------------------------------------------------------------------


def render(snap: Snapshot, focus: str | None = None) -> RenderableType:
    """The status view of `snap`: every pipeline, or pipeline `focus` in depth."""
    if focus is not None:
        p = next((p for p in snap.pipelines if p.name == focus), None)
        if p is not None:
            return render_pipeline(snap, p)
    if not snap.pipelines and not snap.workers:
        return Text.assemble(
            "Nothing here yet: no pipelines and no workers under prefix ",
            (snap.prefix, "bold"), ". Deposit a work and it shows up here.",
        )  # fmt: skip
    what = f"{_plural(len(snap.pipelines), 'pipeline')}, {_plural(len(snap.workers), 'worker')}"
    parts: list[RenderableType] = [_title(snap, what)]
    if snap.pipelines:
        parts.append(pipelines_table(snap))
        if any(p.counts.get("running") for p in snap.pipelines):
            parts.append(running_table(snap, SHOWN))
        if any(p.failures for p in snap.pipelines):
            parts.append(failures_table(snap, SHOWN))
    parts.append(
        workers_table(snap, snap.workers) if snap.workers else Text("no live workers", "dim")
    )
    return Group(*parts)


def render_pipeline(snap: Snapshot, p: PipelineStatus) -> RenderableType:
    """One pipeline in depth: works by state, rates by status, the minute-by-minute
    history, lifetime counters, running works, failures and the workers serving it."""
    one = Snapshot(time=snap.time, prefix=snap.prefix, pipelines=[p], workers=snap.workers)
    title = _title(snap, Text.assemble("pipeline ", _name(p)))
    if _unknown(p):
        return Group(title, Text(f"No works have been deposited to {p.name!r}.", "dim"))
    states = _table("works by state", "state", _right("works"), "")
    for s in COUNT_SETS:
        extra = ""
        if s == "queued":
            extra = priority_breakdown(p.queued_by_priority)
            if p.oldest_queued_s is not None:
                extra += f"  oldest {human_age(p.oldest_queued_s)}"
        states.add_row(Text(s, f"status.{s}"), _count(p.counts.get(s, 0), s), Text(extra, "dim"))
    r = rates(p, RATE_MINUTES)
    per_minute = _table(f"last {RATE_MINUTES} min", "", _right("/min"))
    for key in ("deposited", *FINISHED):
        style = f"status.{key}" if key in FINISHED else ""
        per_minute.add_row(Text(key, style), Text(_rate(r.get(key, 0.0))))
    counters = _table("lifetime", "", _right("total"))
    for key in sorted(p.stats):
        counters.add_row(Text(key), Text(f"{p.stats[key]:,}"))
    grid = Table.grid(padding=(0, 4))
    grid.add_row(states, per_minute, counters)
    per_min = finishes_per_minute(p)
    history = Text.assemble(
        (f"finished per minute, last {len(per_min)} min  ", "bold"),
        (sparkline(per_min), "status.success"),
        f"  peak {max(per_min, default=0):,}  this minute {per_min[-1] if per_min else 0:,}",
    )  # fmt: skip
    parts: list[RenderableType] = [title, grid, history]
    if p.counts.get("running"):
        parts.append(running_table(one, DETAIL_SHOWN))
    if p.failures:
        parts.append(failures_table(one, DETAIL_SHOWN))
    serving = [w for w in snap.workers if p.name in w.pipelines]
    parts.append(
        workers_table(one, serving) if serving else Text("no live workers serve it", "dim")
    )
    return Group(*parts)


# -- the command -------------------------------------------------------------------------


@click.command()
@click.argument("pipelines", nargs=-1)
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between refreshes with --watch.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True,
              help="Print the snapshot as JSON (with --watch: one line per refresh).")  # fmt: skip
@click.pass_context
@handle_errors
def status(
    ctx: click.Context, pipelines: tuple[str, ...], watch: bool, interval: float, as_json: bool
) -> None:
    """Queues, throughput, running works, recent failures and live workers.

    With one PIPELINE: that pipeline in depth (more rows, its lifetime counters).
    """
    names = list(dict.fromkeys(pipelines)) or None
    focus = names[0] if names and len(names) == 1 else None
    shown = DETAIL_SHOWN if focus else SHOWN
    with client_from(ctx) as client:

        def take() -> Snapshot:
            return snapshot(client, names, shown=shown)

        if as_json:
            _print_json(take, watch, interval)
        elif watch:
            _watch(take, focus, interval)
        else:
            out.print(render(take(), focus))


def _print_json(take: Callable[[], Snapshot], watch: bool, interval: float) -> None:
    try:
        while True:
            click.echo(msgspec.json.encode(take()).decode())
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _watch(take: Callable[[], Snapshot], focus: str | None, interval: float) -> None:
    """Redraw in place every `interval` s until Ctrl-C (on a terminal; elsewhere, print
    one view per refresh). The first snapshot must succeed, else exit 1; a later lost
    connection is shown under the last good view while the next refreshes retry."""
    first = render(take(), focus)
    live = Live(first, console=out, auto_refresh=False, screen=False) if out.is_terminal else None
    try:
        with live or contextlib.nullcontext():
            if live is None:
                out.print(first)
            for view in _views(take, focus, interval, first):
                if live is None:
                    out.print(view)
                else:
                    live.update(view, refresh=True)
    except KeyboardInterrupt:
        return


def _views(
    take: Callable[[], Snapshot], focus: str | None, interval: float, last: RenderableType
) -> Iterator[RenderableType]:
    """A view every `interval` s after `last` (on a fixed schedule: a slow snapshot does
    not make the refreshes drift)."""
    next_at = time.monotonic()
    while True:
        next_at = max(next_at + interval, time.monotonic())  # late: skip, do not catch up
        time.sleep(max(0.0, next_at - time.monotonic()))
        try:
            last = render(take(), focus)
            yield last
        except ConnectionError as exc:
            yield Group(last, Text(f"{exc}; retrying (the view above is not current)", "error"))
