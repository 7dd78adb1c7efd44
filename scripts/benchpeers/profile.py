"""`scripts/bench --profile`: where one work's time goes in `workflow run --burst`.

For each worker mode (in-process, isolated `-c 1`), `works` no-op works are deposited on a
private server, then drained by one `workflow run --burst` sampled by py-spy (1,000 Hz,
idle samples included, per thread; the children of isolated mode are not sampled: their
share shows as the supervisor's wait on the pipe). Reported per work:

- wall time (first start to last finish, from the stamp board);
- client requests sent, by command (redis-py's `send_packed_command`, counted in the
  worker by `wfrun.py`): the round trips;
- Redis: commands run (inside scripts too) and µs per script call from INFO commandstats,
  and the server's CPU time from INFO cpu;
- per thread, where its wall time goes (µs per work): Python on the CPU, writing to the
  socket, waiting on a Redis reply, on a pipe (the child; in-process: the fetch thread's
  wake-up), idle; and the hottest functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import redis

from benchpeers.common import STAMPS_ENV, URL_ENV, Board
from benchpeers.harness import SCRIPTS_DIR, redis_cost
from benchpeers.p_workflow import FUNCTION, PREFIX, WorkflowAdapter
from workflow.server import PrivateServer

RATE_HZ = 1000
THREADS = {"_main_loop": "main", "_fetch_loop": "fetch", "_heartbeat_loop": "heartbeat",
           "_index_loop": "indexer"}
"""A sample belongs to the thread whose stack holds this worker function (others: start-up,
shutdown, the registry thread...: left out)."""
WAITS = (
    ("redis", ("redis/", "hiredis")),
    ("pipe", ("multiprocessing/connection.py", "selectors.py")),
    ("idle", ("threading.py",)),
)
"""Leaf-frame file fragments of a thread that waits (py-spy samples idle threads too)."""


def parse_frame(frame: str) -> tuple[str, str]:
    """`func (path/file.py:123)` -> (`func`, `path/file.py`)."""
    name, _, where = frame.rpartition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def short(path: str) -> str:
    for marker in ("site-packages/", "wt-bench/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def analyse(raw: Path) -> tuple[dict[str, Counter[str]], Counter[str], Counter[str]]:
    """Per thread: samples by kind; all threads: self samples of CPU leaves, and
    inclusive samples of workflow functions."""
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if " (" in f and not f.startswith("thread (")]
        names = [parse_frame(f) for f in frames]
        thread = next((THREADS[k] for n, _ in names if (k := n.rsplit(".", 1)[-1]) in THREADS),
                      None)
        if thread is None or not names:
            continue
        n = int(count)
        leaf, leaf_path = names[-1]
        kind = next((k for k, marks in WAITS if any(m in leaf_path for m in marks)), "python")
        if kind == "redis":
            short_leaf = leaf.rsplit(".", 1)[-1]
            if short_leaf == "send_packed_command":
                kind = "send"  # sendall(): the request into the socket (syscall)
            elif short_leaf not in ("read_from_socket", "_read_from_socket",
                                    "can_read_destructive", "read_response"):  # fmt: skip
                kind = "python"  # redis-py's own Python (command packing, pool, parsing)
        if kind == "idle" and leaf.rsplit(".", 1)[-1] not in ("wait", "_wait_for_tstate_lock"):
            kind = "python"  # Condition.notify, lock hand-offs: work, not parked
        kinds[thread][kind] += n
        if kind == "python":
            leaves[f"{leaf} ({short(leaf_path)})"] += n
        for name, path in dict.fromkeys(names):
            if "workflow/" in path or "benchpeers/" in path:
                inclusive[f"{name} ({short(path)})"] += n
    return kinds, leaves, inclusive


def profile_mode(mode: str, works: int, url: str, board: Board, tmp: Path) -> str:
    r = redis.Redis.from_url(url)
    r.flushall()
    adapter = WorkflowAdapter()
    adapter.open(url)
    adapter.deposit_batch(works)
    adapter.close()
    board.clear()
    r.config_resetstat()
    cpu0 = redis_cost(r)[2]
    raw, counts = tmp / f"{mode}.raw", tmp / f"{mode}.counts.json"
    wf = ["--redis-url", url, "--prefix", PREFIX, "run", "bench", FUNCTION, "-c", "1",
          "--burst", "--log-level", "WARNING", *(["--in-process"] if mode == "in-process" else [])]
    if keep := os.environ.get("BENCH_PROFILE_KEEP"):  # a folder for the raw samples
        raw = Path(keep) / raw.name
    cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", str(RATE_HZ), "--idle",
           "--threads", "--nonblocking", "--format", "raw", "-o", str(raw), "--",
           sys.executable, "-m", "benchpeers.wfrun", str(counts), "--", *wf]  # fmt: skip
    env = {**os.environ, URL_ENV: url, STAMPS_ENV: str(board.path), "PYTHONPATH": str(SCRIPTS_DIR)}
    subprocess.run(cmd, cwd=SCRIPTS_DIR, env=env, check=True, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    commands, scripts, cpu1 = redis_cost(r)
    stats = r.info("commandstats")
    n, span = board.span()
    us = 1e6 * span / n
    sent: dict[str, int] = json.loads(counts.read_text())
    kinds, leaves, inclusive = analyse(raw)
    main_total = sum(kinds["main"].values()) or 1
    per_sample = us / main_total  # µs per work that one sample stands for (main thread = wall)
    out = [f"workflow {mode}: {n:,} works in {span:.2f} s = {us:.0f} µs per work "
           f"({n / span:,.0f} works/s; py-spy attached, so a little slower than the benchmark)"]
    by_count = sorted(sent.items(), key=lambda kv: -kv[1])
    out.append("  client requests (round trips) per work: "
               + ", ".join(f"{k} {v / n:.2f}" for k, v in by_count if v / n >= 0.005)
               + f"; total {sum(sent.values()) / n:.2f}")
    evalsha = stats.get("cmdstat_evalsha", {})
    inner = sorted(((k.removeprefix("cmdstat_"), int(v["calls"])) for k, v in stats.items()
                    if k not in ("cmdstat_evalsha", "cmdstat_info", "cmdstat_config|resetstat")),
                   key=lambda kv: -kv[1])  # fmt: skip
    out.append(f"  Redis: {commands / n:.1f} commands per work ({scripts / n:.2f} script calls, "
               f"{evalsha.get('usec_per_call', 0):.1f} µs per EVALSHA, "
               f"{scripts / n * float(evalsha.get('usec_per_call', 0)):.1f} µs script time per "
               f"work), server CPU {1e6 * (cpu1 - cpu0) / n:.1f} µs per work")  # fmt: skip
    out.append("  commands per work: " + ", ".join(f"{k} {c / n:.2f}" for k, c in inner[:12]))
    out.append("  per thread, µs of wall time per work (python = on the CPU in Python or C it "
               "calls; send = writing a request to the socket; redis = waiting on a reply; pipe = "
               "waiting on / talking over a pipe: the child (isolated), or the fetch thread's "
               "wake-up (in-process); idle = parked):")
    for thread in ("main", "fetch", "heartbeat", "indexer"):
        got = kinds.get(thread)
        if got:
            kinds_us = (f"{k} {got[k] * per_sample:6.1f}"
                        for k in ("python", "send", "redis", "pipe", "idle"))  # fmt: skip
            out.append(f"    {thread:<9} " + "  ".join(kinds_us))
    out.append("  hottest Python leaves (self time, all threads), µs per work:")
    out += [f"    {c * per_sample:6.1f}  {f}" for f, c in leaves.most_common(15)]
    out.append("  workflow functions, inclusive wall time (all threads), µs per work:")
    out += [f"    {c * per_sample:6.1f}  {f}" for f, c in inclusive.most_common(15)]
    return "\n".join(out)


def profile(works: int) -> int:
    """Profile both modes on one private server; print the report."""
    with tempfile.TemporaryDirectory(prefix="workflow-profile-") as name:
        tmp = Path(name)
        board = Board(tmp / "stamps", create=True)
        with PrivateServer(tmp / "redis") as server:
            for mode in ("in-process", "isolated"):
                print(profile_mode(mode, works, server.url, board, tmp), flush=True)
                print()
    return 0
