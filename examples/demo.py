"""The main job, end to end: deposit works, run `workflow run` workers, show what happened.

Deposits 60 works into two pipelines with mixed priorities; three of them ask for a
beam that does not exist and fail (each after its one retry, its error recorded). A first
worker starts and is killed with SIGKILL while it holds works: they come back after their
lease (2 s here) and two fresh workers run everything, then are stopped with SIGTERM.
Ends with `workflow status`, the works that needed more than one attempt, and a search of
the results index (the workers indexed what they finished).

    scripts/demo            # embedded Redis (started on demand), or WORKFLOW_REDIS_URL
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from workflow import Client, Results, Settings, Work
from workflow.cli.status import render
from workflow.status import snapshot

PIPELINES = ("calibrate", "search")
FUNCTION = "examples.calibration.calibrate"
PREFIX = "workflow-demo"
ROOT = Path(__file__).resolve().parents[1]
console = Console()


def worker(client: Client, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`workflow run calibrate search examples.calibration.calibrate ...` as a process."""
    argv = [sys.executable, "-m", "workflow.cli.main", "--redis-url", client.settings.url,
            "--prefix", PREFIX, "run", *PIPELINES, FUNCTION,
            *extra]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def main() -> None:
    with Client(Settings.from_env(prefix=PREFIX)) as client:
        console.print(f"[bold]workflow demo[/] on {client.settings.url} (prefix {PREFIX!r})")
        client.purge()  # the demo owns its prefix: start clean
        works = [
            Work(pipeline=PIPELINES[i % 2], priority=5 if i % 10 == 0 else 3, retries=1,
                 parameters={"beam": 300 + i if i in (7, 27, 47) else i}, tags=["demo"])
            for i in range(60)
        ]  # fmt: skip
        t0 = time.perf_counter()
        client.deposit(works)
        console.print(f"deposited {len(works)} works in {1e3 * (time.perf_counter() - t0):.1f} ms")

        log = Path(tempfile.mkdtemp(prefix="workflow-demo-")) / "workers.log"
        # A short lease for the worker about to die, so its works come back in 2 s (the
        # others keep the default 30 s: a loaded machine must not look like a dead worker).
        doomed = worker(client, log, "--concurrency", "2", "--lease-ms", "2000")
        while sum(client.counts(p)["running"] for p in PIPELINES) < 2:
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        held = sum(client.counts(p)["running"] for p in PIPELINES)
        console.print(f"worker 1 killed with SIGKILL while holding {held} works")

        t0 = time.perf_counter()
        crew = [worker(client, log, "--sleep", "0.2") for _ in range(2)]
        # Wait until every work is finished, including the two the dead worker held (they
        # come back when its lease runs out), then stop the crew as an operator would.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            c["queued"] + c["delayed"] + c["running"] for c in map(client.counts, PIPELINES)
        ):
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        for w in crew:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in crew]
        console.print(f"workers 2 and 3 finished everything in {elapsed:.1f} s; stopped with "
                      f"SIGTERM, exit codes {codes}; their log: {log}")  # fmt: skip
        show(client, works)


def show(client: Client, works: list[Work]) -> None:
    console.print(render(snapshot(client, list(PIPELINES))))  # what `workflow status` shows
    done = [client.get(w.id, pipeline=w.pipeline) for w in works]  # type: ignore[arg-type]
    again = [w for w in done if w.attempt > 1]
    table = Table("id", "pipeline", "attempts", "status", "last failure",
                  title="works that needed more than one attempt")  # fmt: skip
    for w in again:
        table.add_row(w.id[-8:], w.pipeline, str(w.attempt),  # type: ignore[index]
                      f"[{'green' if w.status == 'success' else 'red'}]{w.status}",
                      f"{w.error.kind}: {w.error.message}" if w.error else "")  # fmt: skip
    console.print(table)
    results = Results(client)
    failed = results.find(list(PIPELINES), tags="demo", status="failure")
    console.print(f"results index: {results.count(list(PIPELINES), tags='demo')} results tagged "
                  f"'demo'; those that failed (`workflow results view --tag demo --status "
                  f"failure`): " + ", ".join(f"beam {w.parameters['beam']}"  # type: ignore[index]
                                             for w in failed))  # fmt: skip
    ok = sum(w.status == "success" for w in done)
    console.print(f"[bold]{ok}/{len(done)} works succeeded, {len(done) - ok} failed with their "
                  f"error recorded; {len(again)} needed a second attempt.")  # fmt: skip


if __name__ == "__main__":
    main()
