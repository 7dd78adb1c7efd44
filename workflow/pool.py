"""Warm child processes that run works for the worker, one at a time each (a second may
wait in the pipe, so a child never idles between short works).

A child is started once (forkserver: cheap, and safe next to the supervisor's threads),
imports the function once, then loops: receive a work over its pipe, run it, send back
the outcome. Each child leads its own process group so that stopping it also stops any
subprocess it started. On Linux a child dies with its parent (PR_SET_PDEATHSIG), so a
SIGKILLed worker leaves no orphan still running a work another worker now owns.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from workflow import codec, execution
from workflow.execution import Outcome
from workflow.work import Failure, Work

__all__ = ["Child", "Ready", "context"]

KILL_AFTER_S = 5.0
"""A child that ignores SIGTERM this long is killed with SIGKILL."""
START_TIMEOUT_S = 60.0
"""Longest wait for a new child to import its function and report ready."""


class Ready(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The first message of a child: it imported the function, or why it could not."""

    error: str | None = None


class _Request(msgspec.Struct, kw_only=True):
    work: msgspec.Raw
    function: str | None = None
    token: str = ""  # the lease token: whole-Work functions may save progress
    seq: int = 0  # numbers the requests to one child, for taking one back
    max_result_bytes: int | None = None  # larger outputs fail as `too-large`, never sent


STARTED, TAKEN_BACK = 0, 1
"""Slots of the array a child shares with the supervisor: the number of the request it
started last, and of the request the supervisor took back (never to be started)."""


_request = msgspec.json.Encoder()
_decode_request = msgspec.json.Decoder(_Request)
_decode_ready = msgspec.json.Decoder(Ready)
_decode_outcome = msgspec.json.Decoder(Outcome)


def context() -> Any:
    """The multiprocessing context children are started from."""
    return mp.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _leave_forkserver() -> None:
    """A forkserver child's parent is the forkserver, which exits when the worker dies only
    once no process holds its 'alive' pipe: children must not keep a copy of it, or a
    SIGKILLed worker's children would live on (and PDEATHSIG would never fire)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


def child_main(
    conn: Connection, function: str | None, env: dict[str, str], shared: Any
) -> None:
    """The loop of one child process. `env`: variables for user code (the deployment's
    URL and prefix, so `Work` methods in user code reach the worker's deployment)."""
    os.environ.update(env)
    die_with_parent()
    _leave_forkserver()
    with contextlib.suppress(OSError):
        os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    error = None
    if function:
        try:
            execution.resolve(function)
        except Exception as exc:
            error = str(exc)
    conn.send_bytes(_request.encode(Ready(error=error)))
    if error:
        return
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the supervisor is gone
        request = _decode_request.decode(raw)
        with shared.get_lock():  # start it, unless the supervisor took it back
            taken_back = shared[TAKEN_BACK] == request.seq
            if not taken_back:
                shared[STARTED] = request.seq
        if taken_back:
            outcome = Outcome(ok=False, skipped=True)
            try:
                conn.send_bytes(_request.encode(outcome))
            except OSError:
                return
            continue
        try:
            work = codec.decode_json(bytes(request.work))
            work._token = request.token  # type: ignore[attr-defined]
            outcome = execution.execute(work, request.function, request.max_result_bytes)
        except Exception as exc:
            outcome = Outcome(ok=False, failure=execution.failure_from(exc))
        try:
            conn.send_bytes(_request.encode(outcome))
        except OSError:
            return  # the supervisor died meanwhile: its lease brings the work back


class Child:
    """One child process and the pipe to it."""

    def __init__(
        self,
        function: str | None,
        ctx: Any = None,
        env: dict[str, str] | None = None,
        max_result_bytes: int | None = None,
    ) -> None:
        ctx = ctx or context()
        self.max_result_bytes = max_result_bytes
        self.conn, theirs = ctx.Pipe()
        self.shared = ctx.Array("q", 2)  # STARTED, TAKEN_BACK
        self.process = ctx.Process(
            target=child_main, args=(theirs, function, env or {}, self.shared),
            name="workflow-child",
        )  # fmt: skip
        self.process.start()
        theirs.close()
        self._queue: deque[list[Any]] = deque()  # [request number, Work | None (taken back)]
        self._sent = 0
        self.started = 0.0  # when the first one started (about: when the one before ended)

    @property
    def pid(self) -> int:
        return self.process.pid  # type: ignore[no-any-return]

    @property
    def awaiting(self) -> int:
        """Requests sent and not yet answered (taken-back ones included)."""
        return len(self._queue)

    @property
    def inflight(self) -> list[Work]:
        """The works sent and not yet answered, in order: the first one is running."""
        return [w for _, w in self._queue if w is not None]

    @property
    def work(self) -> Work | None:
        """The work running now (the first sent and not yet answered)."""
        return self._queue[0][1] if self._queue else None

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> str | None:
        """None once the child is ready, else why it is not (it then exits)."""
        if not self.conn.poll(timeout_s):
            self.stop()
            return f"the child process did not start within {timeout_s:.0f} s"
        try:
            return _decode_ready.decode(self.conn.recv_bytes()).error
        except (EOFError, OSError):
            return self.exit_failure().message

    def send(self, work: Work, function: str | None) -> None:
        """Send `work` to the child: it runs it after those sent before (the pipe holds
        it meanwhile, so a child with a work queued never waits for the supervisor)."""
        token = getattr(work, "_token", "")
        payload = codec.trusted_json(work)  # decoded from its record: valid already
        self._sent += 1
        request = _Request(work=msgspec.Raw(payload), function=function, token=token,
                           seq=self._sent, max_result_bytes=self.max_result_bytes)  # fmt: skip
        self.conn.send_bytes(_request.encode(request))
        self._queue.append([self._sent, work])
        if len(self._queue) == 1:
            self.started = time.monotonic()

    def take_back(self) -> Work | None:
        """Take back the work waiting in the pipe behind the running one, unless the child
        started it meanwhile (it then answers `skipped` for it, at once, after the running
        one). None if there is none to take back."""
        if len(self._queue) < 2 or self._queue[1][1] is None:
            return None
        entry = self._queue[1]
        with self.shared.get_lock():
            if self.shared[STARTED] >= entry[0]:
                return None
            self.shared[TAKEN_BACK] = entry[0]
        work, entry[1] = entry[1], None
        return work  # type: ignore[no-any-return]

    def receive(self) -> tuple[Work | None, Outcome, bool]:
        """The answer to the oldest request: its work (None if it was taken back), its
        outcome (a crash is an outcome too), and whether the child died. The next work
        sent, if any, starts running."""
        died = False
        try:
            outcome = _decode_outcome.decode(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.process.join(1.0)
            outcome, died = Outcome(ok=False, failure=self.exit_failure()), True
        _, work = self._queue.popleft()
        if self._queue:
            self.started = time.monotonic()
        return work, outcome, died

    def forget(self) -> list[Work]:
        """The works sent that will never be answered (the child died): they never
        started. Clears the queue."""
        works = self.inflight
        self._queue.clear()
        return works

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def exit_failure(self) -> Failure:
        """A failure record describing how the child died."""
        self.process.join(1.0)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"killed by {name}"
            if -code == signal.SIGKILL:
                how += " (out of memory, or killed from outside)"
        else:
            how = f"exited with code {code}"
        return Failure(kind="crash", message=f"the process running the work died: {how}",
                       time=time.time())  # fmt: skip

    def stop(self, kill_after_s: float = KILL_AFTER_S) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever is left."""
        self._signal(signal.SIGTERM)
        self.process.join(kill_after_s)
        self._signal(signal.SIGKILL)
        self.process.join(5.0)
        self.conn.close()

    def _signal(self, sig: int) -> None:
        for target in (lambda: os.killpg(self.pid, sig), lambda: os.kill(self.pid, sig)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                target()
