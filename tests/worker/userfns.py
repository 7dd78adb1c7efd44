"""User functions the worker tests run.

Workers started as subprocesses run with this folder as their working directory and name
these `userfns.<name>`; a `Worker` run inside the test process names them
`tests.worker.userfns.<name>`.

Functions that take `path` append one JSON line per event to that file (`start`, `done`)
with their pid, a timestamp and a label, so a test can prove whether, when and where a
work ran, and whether a stopped child kept running.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time

import click

from workflow import Failure, Work


def note(path: str, event: str, label: str = "", **extra: object) -> None:
    """Append one event line to `path` (one `write` with O_APPEND: lines never interleave)."""
    line = json.dumps(
        {"event": event, "pid": os.getpid(), "t": time.time(), "label": label, **extra}
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


# -- the pipeline interface: **parameters in, results out ---------------------------------


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def journal(path: str, seconds: float = 0.0, label: str = "") -> dict[str, object]:
    """Note `start`, sleep, note `done`."""
    note(path, "start", label)
    time.sleep(seconds)
    note(path, "done", label)
    return {"pid": os.getpid(), "label": label}


def journal_raise(path: str, seconds: float = 0.0, label: str = "") -> None:
    """Note `start`, sleep, then raise: every attempt leaves one line."""
    note(path, "start", label)
    time.sleep(seconds)
    raise RuntimeError(f"attempt failed ({label})")


def flaky(path: str, fail_for: float = 0.0, succeed_for: float = 0.0) -> dict[str, int]:
    """The first call sleeps `fail_for` then raises; later calls sleep `succeed_for` and
    succeed. Calls are counted by the `start` lines in `path`."""
    calls = len(open(path).readlines()) if os.path.exists(path) else 0  # noqa: SIM115
    note(path, "start", str(calls + 1))
    if calls == 0:
        time.sleep(fail_for)
        raise RuntimeError("first call fails")
    time.sleep(succeed_for)
    note(path, "done", str(calls + 1))
    return {"call": calls + 1}


def stubborn(path: str, seconds: float = 30.0) -> None:
    """Ignore SIGTERM, note `start`, sleep, note `done`: only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    note(path, "start")
    time.sleep(seconds)
    note(path, "done")


def segfault() -> None:
    ctypes.string_at(0)


def exit3() -> None:
    os._exit(3)


def return_int() -> int:
    return 42


def return_object() -> dict[str, object]:
    return {"when": object()}


def spawn(path: str, seconds: float = 30.0) -> None:
    """Start a grandchild (`sleep`), note its pid, and wait for it."""
    import subprocess

    proc = subprocess.Popen(["sleep", str(seconds)])
    note(path, "start", grandchild=proc.pid)
    proc.wait()
    note(path, "done")


def whose_client() -> dict[str, str | None]:
    """Where `Work` methods without `client=` would go from inside a work (no connection
    is made: the default client is only built)."""
    from workflow import default_client

    settings = default_client().settings
    return {"url": settings.url, "prefix": settings.prefix}


# -- a Click command -------------------------------------------------------------------


@click.command()
@click.option("--name", required=True)
@click.option("--times", type=int, default=1)
@click.option("--loud", is_flag=True)
@click.option("--quiet", is_flag=True)
@click.option("--files", multiple=True)
def greet(name: str, times: int, loud: bool, quiet: bool, files: tuple[str, ...]) -> dict:
    text = " ".join([f"hello {name}"] * times)
    return {"text": text.upper() if loud else text, "quiet": quiet, "files": list(files)}


# -- whole-Work mode ---------------------------------------------------------------------


def whole(work: Work) -> Work:
    """Reads the whole work (its attempt too) and returns it with outputs set."""
    x = (work.parameters or {})["x"]
    work.results = {"double": 2 * x, "attempt": work.attempt, "id": work.id}
    work.products = [f"product-{x}.fits"]
    work.plots = [f"plot-{x}.png"]
    return work


def whole_declines(work: Work) -> Work:
    work.status = "failure"
    work.error = Failure(kind="exception", message="declined by the function")
    return work


def whole_garbage(work: Work) -> str:
    return "not a work"
