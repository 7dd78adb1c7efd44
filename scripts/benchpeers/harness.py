"""The benchmark run: deposit, drain, latency and Redis cost for every library, one server.

Every measurement starts from an empty server (FLUSHALL) and a clear stamp board. Worker
processes get their own session and die with the harness (PR_SET_PDEATHSIG); they are
stopped (SIGTERM, then SIGKILL after `STOP_S`) after every measurement, and on any exit.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchpeers.common import SLOT_ENV, STAMPS_ENV, URL_ENV, Adapter, Board
from workflow.server import PrivateServer

ADAPTERS = ("workflow", "rq", "arq", "saq", "dramatiq", "celery", "huey")
"""Library names, each the module `benchpeers.p_<name>`."""
REFERENCE = "workflow in-process"
"""The row every ratio of the per-worker tables is taken against (deposits: `workflow`)."""
SCRIPTS_DIR = Path(__file__).resolve().parent.parent
STOP_S = 3.0
"""Grace of a worker after SIGTERM before SIGKILL."""
START_TIMEOUT_S = 60.0
"""Longest wait for a worker's first work (interpreter start, imports, connect)."""
POLL_S = 0.002
"""Stamp board poll interval (memory only: no Redis traffic)."""
NOT_REDIS_COMMANDS = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_flushall")
"""The harness's own commands, left out of the per-work counts."""


@dataclass
class Plan:
    """How much to measure."""

    works: int  # pre-deposited works per drain
    reps: int  # repetitions of every measurement
    each: int  # works deposited one by one per repetition
    latency_s: float  # steady phase of the latency measurement
    rate: float  # deposits per second in the latency measurement
    drain_cap_s: float  # a drain slower than this is cut and its rate taken from what finished
    warm: int = 20  # latency warm-up probes, unmeasured


QUICK = Plan(works=2_000, reps=1, each=500, latency_s=2.0, rate=200.0, drain_cap_s=5.0)
FULL = Plan(works=20_000, reps=3, each=2_000, latency_s=3.0, rate=200.0, drain_cap_s=10.0)


@dataclass
class Results:
    """Samples per row and metric; notes say what was cut or could not be measured."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rate: float = 0.0  # deposits per second of the latency measurement
    cap_s: float = 0.0  # drains cut after this long
    cuts: dict[str, list[int]] = field(default_factory=dict)  # works done when cut, per row

    def add(self, row: str, metric: str, value: float) -> None:
        self.samples.setdefault(row, {}).setdefault(metric, []).append(value)

    def note(self, text: str) -> None:
        print(f"    note: {text}", flush=True)
        self.notes.append(text)


# -- worker processes ---------------------------------------------------------------------

_live: set[subprocess.Popen[bytes]] = set()


def _die_with_parent() -> None:
    """In each worker before exec (Linux): SIGTERM it if the harness dies, even by -9."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's whole process group, SIGKILL it after `STOP_S`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_S)
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # forked children left behind
    proc.wait()
    _live.discard(proc)


def stop_all() -> None:
    """Every worker still alive (on errors and interrupts)."""
    for proc in list(_live):
        _stop(proc)


@contextlib.contextmanager
def workers(argv: list[str], n: int, url: str, board: Board, log: Path) -> Iterator[list[Any]]:
    """`n` worker processes of `argv`, slots 0..n-1; always stopped on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    env.update({URL_ENV: url, STAMPS_ENV: str(board.path), "PYTHONUNBUFFERED": "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SCRIPTS_DIR), env.get("PYTHONPATH")) if p)
    try:
        with open(log, "ab") as out:
            for slot in range(n):
                env[SLOT_ENV] = str(slot)
                proc = subprocess.Popen(argv, cwd=SCRIPTS_DIR, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=_die_with_parent)
                _live.add(proc)
                procs.append(proc)
        yield procs
    finally:
        for proc in procs:
            _stop(proc)


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        text = []
    return "\n".join(f"      {line}" for line in text) or "      (no output)"


class NotMeasured(RuntimeError):
    """A measurement could not be made (the worker did not start, died, or stalled)."""


def wait_first(board: Board, procs: list[Any], log: Path) -> None:
    """Until the first work starts (the worker is up); `NotMeasured` if it never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not board.done():
        if all(p.poll() is not None for p in procs):
            raise NotMeasured(f"the worker exited ({procs[0].returncode}):\n{tail(log)}")
        if time.monotonic() > deadline:
            raise NotMeasured(f"no work started in {START_TIMEOUT_S:.0f} s:\n{tail(log)}")
        time.sleep(0.01)


# -- Redis --------------------------------------------------------------------------------


def redis_cost(r: redis.Redis) -> tuple[int, int, float]:
    """(commands, script calls, server CPU seconds) so far; commandstats since RESETSTAT.

    Redis counts the commands a Lua script runs as commands too: `commands` includes them
    and `script calls` tells how many EVAL/EVALSHA/FCALL there were."""
    stats: dict[str, dict[str, float]] = r.info("commandstats")  # type: ignore[assignment]
    commands = sum(int(v["calls"]) for k, v in stats.items() if k not in NOT_REDIS_COMMANDS)
    scripts = sum(int(v["calls"]) for k, v in stats.items()
                  if k.split("|")[0] in ("cmdstat_eval", "cmdstat_evalsha", "cmdstat_fcall"))
    cpu: dict[str, float] = r.info("cpu")  # type: ignore[assignment]
    return commands, scripts, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


# -- measurements -------------------------------------------------------------------------


def measure_deposits(adapter: Adapter, r: redis.Redis, plan: Plan, res: Results) -> None:
    r.flushall()
    begin = time.perf_counter()
    adapter.deposit_each(plan.each)
    res.add(adapter.name, "deposit_each", plan.each / (time.perf_counter() - begin))


def measure_drain(adapter: Adapter, variant: str, procs: int, r: redis.Redis, board: Board,
                  plan: Plan, log: Path, res: Results) -> None:  # fmt: skip
    """Deposit `plan.works` (batched: timed), then drain them with `procs` workers."""
    r.flushall()
    begin = time.perf_counter()
    adapter.deposit_batch(plan.works)
    res.add(adapter.name, "deposit_batch", plan.works / (time.perf_counter() - begin))
    board.clear()
    r.config_resetstat()
    cpu0 = redis_cost(r)[2]
    argv = adapter.worker_argv(variant, Path(sys.executable).parent, burst=True)
    with workers(argv, procs, adapter.url, board, log) as running:
        wait_first(board, running, log)
        while (done := board.done()) < plan.works:
            n, span = board.span()
            if span > plan.drain_cap_s:
                res.cuts.setdefault(f"{variant}, {procs} proc", []).append(n)
                print(f"    cut after {span:.0f} s: {n:,} of {plan.works:,} done", flush=True)
                break
            if all(p.poll() is not None for p in running):
                raise NotMeasured(f"the worker exited after {done} works:\n{tail(log)}")
            time.sleep(POLL_S)
        commands, scripts, cpu1 = redis_cost(r)
        n, span = board.span()
        if n >= plan.works:  # the library's own records must agree that all are finished
            deadline = time.monotonic() + 10
            while (left := adapter.pending()) and time.monotonic() < deadline:
                time.sleep(0.01)
            if left:
                res.note(f"{variant}: {left} works still pending in Redis after the last stamp")
    res.add(variant, f"drain{procs}", n / span if span > 0 else math.nan)
    if procs == 1:
        res.add(variant, "commands", commands / n)
        res.add(variant, "scripts", scripts / n)
        res.add(variant, "redis_cpu_us", 1e6 * (cpu1 - cpu0) / n)


def measure_latency(adapter: Adapter, variant: str, r: redis.Redis, board: Board, plan: Plan,
                    log: Path, res: Results) -> None:  # fmt: skip
    """Enqueue-to-start of an idle worker at a steady `plan.rate` (bench_latency's method)."""
    r.flushall()
    board.clear()
    argv = adapter.worker_argv(variant, Path(sys.executable).parent, burst=False)
    steady = max(1, round(plan.rate * plan.latency_s))
    with workers(argv, 1, adapter.url, board, log) as running:
        adapter.deposit_one(0)
        wait_first(board, running, log)
        i = 1
        for stop_at, first in ((plan.warm, 1), (plan.warm + steady, plan.warm)):
            begin = time.perf_counter()
            for k, i in enumerate(range(first, stop_at)):
                pause = begin + k / plan.rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                adapter.deposit_one(i)
            deadline = time.monotonic() + 10
            while board.done() < stop_at and time.monotonic() < deadline:
                time.sleep(0.005)
        cells = board.latencies(plan.warm + steady)[plan.warm:]
    started = [1000 * v for v in cells if v > 0]
    if len(started) < steady:
        res.note(f"{variant}: {steady - len(started)} of {steady} latency probes had not "
                 f"started 10 s after the last deposit")  # fmt: skip
    if started:
        res.add(variant, "p50_ms", pct(started, 50))
        res.add(variant, "p99_ms", pct(started, 99))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# -- rendering ----------------------------------------------------------------------------

TABLES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("deposit, works/s (ratio: / workflow)",
     [("deposit_each", "one by one", "{:,.0f}"), ("deposit_batch", "batched", "{:,.0f}")]),
    ("drain of pre-deposited no-op works, works/s (ratio: / workflow in-process)",
     [("drain1", "1 worker process", "{:,.0f}"), ("drain2", "2 worker processes", "{:,.0f}")]),
    ("enqueue-to-start latency, idle worker, steady deposits, ms (ratio: / workflow in-process)",
     [("p50_ms", "p50", "{:.2f}"), ("p99_ms", "p99", "{:.2f}")]),
    ("Redis cost per work, drain by 1 worker process, INFO commandstats / cpu deltas "
     "(ratio: / workflow in-process)",
     [("commands", "commands (incl. in scripts)", "{:.2f}"), ("scripts", "script calls", "{:.3f}"),
      ("redis_cpu_us", "Redis CPU µs", "{:.1f}")]),
]  # fmt: skip


def cell(values: list[float] | None, ref: list[float] | None, fmt: str) -> str:
    """`median [min-max] xratio` (spread only with several samples)."""
    if not values:
        return "-"
    mid = statistics.median(values)
    text = fmt.format(mid)
    if len(values) > 1:
        text += f" [{fmt.format(min(values))}-{fmt.format(max(values))}]"
    if ref and statistics.median(ref) > 0 and mid > 0 and math.isfinite(mid):
        text += f" x{mid / statistics.median(ref):.2g}"
    return text


def render(res: Results, rows: list[str], adapters: list[Adapter]) -> str:
    out = []
    for title, metrics in TABLES:
        deposit = metrics[0][0].startswith("deposit")
        keys = [a.name for a in adapters] if deposit else rows
        ref_key = "workflow" if deposit else REFERENCE
        ref = res.samples.get(ref_key, {})
        grid = [["", *(label for _, label, _ in metrics)]]
        if deposit:
            grid[0].append("batched how")
        for key in keys:
            got = res.samples.get(key, {})
            line = [key, *(cell(got.get(m), ref.get(m), fmt) for m, _, fmt in metrics)]  # fmt: skip
            if deposit:
                line.append(next(a.batch_how for a in adapters if a.name == key))
            grid.append(line)
        widths = [max(len(r[c]) for r in grid) for c in range(len(grid[0]))]
        out += [title, "-" * len(title)]
        for r in grid:
            left = {0, len(r) - 1} if deposit else {0}
            out.append("  ".join(c.ljust(w) if k in left else c.rjust(w)
                                 for k, (c, w) in enumerate(zip(r, widths, strict=True))))
        out.append("")
    out += ["workers (one process each; logging at WARNING for all):"]
    out += [f"  {variant}: {a.describe(variant)}" for a in adapters for variant in a.variants]
    out += [""]
    out += targets(res)
    for row in rows:
        drain = res.samples.get(row, {}).get("drain1")
        if drain and statistics.median(drain) < 1.25 * res.rate:
            res.notes.append(f"{row} drains at most 1.25x the {res.rate:.0f} works/s of the "
                             "latency probes: its latency includes time queued behind them")
    for row, done in res.cuts.items():
        res.notes.append(f"{row}: drain cut at {res.cap_s:.0f} s in {len(done)} rep(s) "
                         f"({min(done):,}-{max(done):,} works done), rate from the works done")
    if res.notes:
        out += ["", "notes:", *(f"  - {n}" for n in res.notes)]
    return "\n".join(out)


def targets(res: Results) -> list[str]:
    """The issue's targets, checked on this run's medians."""
    def med(row: str, metric: str) -> float | None:
        values = res.samples.get(row, {}).get(metric)
        return statistics.median(values) if values else None

    peers = [row for row in res.samples if not row.startswith("workflow")]
    out = ["targets (issue 7), on this run's medians:"]
    fastest = max(((med(p, "drain1") or 0.0, p) for p in peers), default=(0.0, ""))
    for mode, factor in (("workflow in-process", 10), ("workflow isolated", 3)):
        mine = med(mode, "drain1")
        if mine is not None and fastest[0] > 0:
            ratio = mine / fastest[0]
            out.append(f"  {mode} drain (1 proc) = {ratio:.2f}x the fastest peer ({fastest[1]}), "
                       f"target >= {factor}x: {'met' if ratio >= factor else 'NOT met'}")
    best = min(((med(p, "p99_ms") or math.inf, p) for p in peers), default=(math.inf, ""))
    for mode in ("workflow in-process", "workflow isolated"):
        mine = med(mode, "p99_ms")
        if mine is not None and math.isfinite(best[0]):
            out.append(f"  {mode} p99 latency {mine:.2f} ms vs best peer {best[0]:.2f} ms "
                       f"({best[1]}): {'met' if mine <= best[0] else 'NOT met'}")  # fmt: skip
    batch = med("workflow", "deposit_batch")
    if batch is not None:
        out.append(f"  workflow batched deposit {batch:,.0f} works/s, target >= 50,000: "
                   f"{'met' if batch >= 50_000 else 'NOT met'}")  # fmt: skip
    return out


# -- main ---------------------------------------------------------------------------------


def _interrupt_once(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: unwind and clean up; further signals cannot cut the cleanup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK.works:,} works, {QUICK.reps} repetition (under 2 minutes)")
    p.add_argument("--only", help=f"comma-separated libraries (of {', '.join(ADAPTERS)})")
    p.add_argument("--works", type=int, help="pre-deposited works per drain")
    p.add_argument("--reps", type=int, help="repetitions of every measurement")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every sample as JSON")
    p.add_argument("--profile", action="store_true",
                   help="instead: profile workflow's drain in both modes (see profile.py)")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(ADAPTERS)
    if unknown := set(names) - set(ADAPTERS):
        p.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    args.names = [n for n in ADAPTERS if n in names]
    plan = QUICK if args.quick else FULL
    args.plan = Plan(**{**asdict(plan), **{k: v for k in ("works", "reps")
                                           if (v := getattr(args, k)) is not None}})  # fmt: skip
    if not args.plan.works > 0 and args.plan.reps > 0:
        p.error("--works and --reps must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    if args.profile:
        from benchpeers.profile import profile

        return profile(args.plan.works)
    plan: Plan = args.plan
    began = time.monotonic()
    res = Results(rate=plan.rate, cap_s=plan.drain_cap_s)
    adapters: list[Adapter] = []
    try:
        with tempfile.TemporaryDirectory(prefix="workflow-bench-") as name:
            tmp = Path(name)
            board = Board(tmp / "stamps", create=True)
            with PrivateServer(tmp / "redis") as server, redis.Redis.from_url(server.url) as r:
                os.environ[URL_ENV] = server.url  # read by the peers' modules at import
                version = r.info("server")["redis_version"]
                print(f"python {platform.python_version()}, redis {version}, "
                      f"{os.cpu_count()} CPUs; {plan.works:,} works per drain, {plan.reps} "
                      f"rep(s), latency at {plan.rate:.0f} works/s for {plan.latency_s:g} s",
                      flush=True)  # fmt: skip
                for name_ in args.names:
                    adapter: Adapter = importlib.import_module(f"benchpeers.p_{name_}").ADAPTER()
                    adapter.open(server.url)
                    adapters.append(adapter)
                rows = [v for a in adapters for v in a.variants]
                for rep in range(plan.reps):
                    for adapter in adapters:
                        try:
                            measure_deposits(adapter, r, plan, res)
                        except Exception as exc:
                            res.note(f"{adapter.name} deposits not measured in rep {rep + 1}: "
                                     f"{type(exc).__name__}: {exc}")  # fmt: skip
                        for variant in adapter.variants:
                            log = tmp / f"{variant.replace(' ', '_')}.log"
                            print(f"  rep {rep + 1}/{plan.reps} {variant} "
                                  f"({time.monotonic() - began:.0f} s)", flush=True)  # fmt: skip
                            try:
                                for procs in (1, 2):
                                    measure_drain(adapter, variant, procs, r, board, plan, log, res)
                                measure_latency(adapter, variant, r, board, plan, log, res)
                            except NotMeasured as exc:
                                res.note(f"{variant} not measured in rep {rep + 1}: {exc}")
                            except Exception as exc:  # one library's failure ends only its row
                                res.note(f"{variant} not measured in rep {rep + 1}: "
                                         f"{type(exc).__name__}: {exc}")  # fmt: skip
                for adapter in adapters:
                    adapter.close()
    except KeyboardInterrupt:
        stop_all()
        print("interrupted; workers, server and temporary directory cleaned up", file=sys.stderr)
        return 130
    finally:
        stop_all()
    elapsed = time.monotonic() - began
    print()
    print(render(res, rows, adapters))
    print(f"\ndrain rate = works / (last finish - first start), from the tasks' own stamps "
          f"(interpreter start, imports and connecting excluded); total {elapsed:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"plan": asdict(plan), "samples": res.samples,
                                         "notes": res.notes, "cuts": res.cuts,
                                         "seconds": elapsed}, indent=1))
    return 0
