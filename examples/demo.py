"""The main job, end to end: deposit works, run workers, show what happened.

Deposits 60 works into two pipelines with mixed priorities, starts three worker
processes, kills one of them with SIGKILL while it holds a work, and lets the others
finish everything: the killed worker's work comes back after its lease (2 s here) and
runs again. Some works raise on their first attempt and are retried. Ends with a table
of counts and a few finished works.

    scripts/demo            # embedded Redis (started on demand), or WORKFLOW_REDIS_URL
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

from rich.console import Console
from rich.table import Table

from workflow import Client, Settings, Work
from workflow.client import format_exception

PIPELINES = ("calibrate", "search")
PREFIX = "workflow-demo"
LEASE_MS = 2_000
console = Console()


def settings() -> Settings:
    return Settings.from_env(prefix=PREFIX, lease_ms=LEASE_MS, backoff_base_ms=200)


def calibrate(beam: int, flaky: bool = False, attempt: int = 1) -> dict:
    """A user function: pretends to calibrate a beam; flaky ones fail on attempt 1."""
    time.sleep(0.02)
    if flaky and attempt == 1:
        raise RuntimeError(f"beam {beam}: transient read error")
    return {"beam": beam, "gain": round(1 + beam / 100, 3)}


def worker(name: str, hold_forever: bool = False) -> None:
    """A minimal worker loop on the library API (`workflow run` does this, and more)."""
    with Client(settings()) as client:
        while True:
            works = client.withdraw(list(PIPELINES), timeout_s=1.0)
            if not works:
                return
            work = works[0]
            if hold_forever:  # this worker will be killed while it holds the work
                print(f"  {name}: took {work.id} and hangs...", flush=True)
                time.sleep(3600)
            try:
                work.results = calibrate(**work.parameters, attempt=work.attempt)
                work.status = "success"
                work.update(client=client)
            except Exception as exc:  # the failure is recorded, and retried
                client.complete(work, "failure", failure=format_exception(exc))


def main() -> None:
    with Client(settings()) as client:
        console.print(f"[bold]workflow demo[/] on {client.settings.url} (prefix {PREFIX!r})")
        for p in PIPELINES:  # start clean: the demo owns its prefix
            for state_ids in _ids(client, p):
                client.delete(state_ids, pipeline=p)
        works = [
            Work(
                pipeline=PIPELINES[i % 2],
                parameters={"beam": i, "flaky": i % 7 == 0},
                priority=5 if i % 10 == 0 else 3,
                tags=["demo"],
                retries=2,
            )
            for i in range(60)
        ]
        t0 = time.perf_counter()
        client.deposit(works)
        console.print(f"deposited {len(works)} works in {1e3 * (time.perf_counter() - t0):.1f} ms")

        ctx = mp.get_context("spawn")
        doomed = ctx.Process(target=worker, args=("worker-0", True))
        doomed.start()
        time.sleep(1.0)
        os.kill(doomed.pid, signal.SIGKILL)  # type: ignore[arg-type]
        doomed.join()
        console.print("  worker-0: killed with SIGKILL while holding a work")
        workers = [ctx.Process(target=worker, args=(f"worker-{i}",)) for i in (1, 2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        show(client, works)


def _ids(client: Client, pipeline: str) -> list[str]:
    from workflow.keys import pipeline_keys

    k = pipeline_keys(client.settings.prefix, pipeline)
    ids: list[str] = []
    for name in ("queued", "delayed", "running", "success", "failure", "cancelled"):
        ids += [m.decode() for m in client.redis.zrange(getattr(k, name), 0, -1)]
    return ids


def show(client: Client, works: list[Work]) -> None:
    table = Table("pipeline", "queued", "running", "success", "failure", title="counts")
    for p in PIPELINES:
        c = client.counts(p)
        table.add_row(p, str(c["queued"] + c["delayed"]), str(c["running"]),
                      f"[green]{c['success']}", f"[red]{c['failure']}")  # fmt: skip
    console.print(table)
    done = [client.get(w.id, pipeline=w.pipeline) for w in works]
    retried = [w for w in done if w.attempt > 1]
    table = Table("id", "pipeline", "prio", "attempts", "status", "results", "last failure",
                  title="works that needed more than one attempt")  # fmt: skip
    table.columns[-1].no_wrap = True
    for w in retried:
        table.add_row(w.id[-8:], w.pipeline, str(w.priority), str(w.attempt), w.status,
                      f"gain {w.results['gain']}", f"{w.error.kind}: {w.error.message}"
                      if w.error else "")  # fmt: skip
    console.print(table)
    ok = sum(w.status == "success" for w in done)
    console.print(f"[bold]{ok}/{len(done)} works succeeded; {len(retried)} needed a retry "
                  f"(one after a SIGKILLed worker, the rest after an exception).")  # fmt: skip


if __name__ == "__main__":
    main()
