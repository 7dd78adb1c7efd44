"""User functions the fault tests run in `workflow run` workers (imported as
`tests.faults.faultfns.<name>`; the workers get the repository root on PYTHONPATH).

`logged` appends one line per execution to `$FAULT_LOG`: the work's id, its attempt,
`$FAULT_WORKER` (the worker incarnation that ran it; a child inherits it from its
worker through the forkserver) and the time, so a test can explain every execution.
"""

from __future__ import annotations

import os
import signal
import time

from workflow import Work


def logged(work: Work) -> Work:
    """Whole-Work mode: note `id attempt worker time` (one O_APPEND write), sleep
    `parameters["seconds"]` if given, and return a small result."""
    line = f"{work.id} {work.attempt} {os.environ.get('FAULT_WORKER', '?')} {time.time()}\n"
    fd = os.open(os.environ["FAULT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    seconds = (work.parameters or {}).get("seconds", 0)
    if seconds:
        time.sleep(seconds)
    work.results = {"i": (work.parameters or {}).get("i")}
    return work


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def stuck() -> None:
    """Never returns by itself (a hung call)."""
    while True:
        time.sleep(3600)


def deaf() -> None:
    """Ignores SIGTERM and hangs: only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(3600)


def huge(size: int) -> dict[str, str]:
    """A result of about `size` bytes."""
    return {"blob": "x" * size}
