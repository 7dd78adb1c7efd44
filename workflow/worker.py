"""`workflow run`: the supervisor that withdraws works, keeps their leases, and runs them.

Four threads, each with one job:
- the main thread hands works to warm child processes (`pool.Child`), collects their
  outcomes, completes the works, stops children whose work ran past its `timeout`, and
  runs the shutdown;
- a fetch thread withdraws as many works as there are free children, blocking on the
  wake-up signal when the queue is empty (a deposit wakes it within milliseconds);
- a heartbeat thread renews the leases of every work held and publishes the worker's
  record; user code runs in other processes and cannot block it. A lease found lost or
  cancelled stops the child running that work, and its outcome is not written;
- an index thread moves the pipelines' finished works into the results index
  (`indexer.Indexer`; off with `index=False`), apart from the withdraw path.

Shutdown (SIGTERM/SIGINT): stop withdrawing, hand back works not started, let running
works finish for `grace_s`, then stop them and hand them back (the attempt is not
counted). A second signal skips the grace period. Exit codes: 0 after a normal stop
(signal, `lives` used up, `burst` and nothing left), 1 when the worker cannot start (the
function does not import, Redis is unreachable).

In-process mode (`in_process=True`) runs works in the main thread: no process start-up
or pipe per work, so the fastest, but a timeout cannot stop the work (the lease
backstop reclaims it after `timeout` + grace) and a crash takes the worker down (the
lease brings the work back).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import redis

from workflow import core, execution, registry
from workflow.client import Client, set_default_client
from workflow.errors import ConnectionError, ScriptError, WorkflowError
from workflow.execution import Outcome
from workflow.feeding import BATCH_MAX, FLUSH_S, TAKE_BACK_S, Feeding
from workflow.ids import new_id
from workflow.indexer import Indexer
from workflow.pool import KILL_AFTER_S, Child
from workflow.registry import WorkerInfo, list_workers
from workflow.work import Failure, Work

__all__ = ["Worker", "WorkerInfo", "list_workers"]  # the last two live in registry

log = logging.getLogger("workflow.worker")

GRACE_S = 30.0
"""On SIGTERM, running works get this long to finish before they are handed back."""
NO_RETRY = frozenset({"config", "too-large"})
"""Failure kinds that no retry can fix: the work fails at once."""
SLEEP_S = 1.0
"""Longest single idle wait before the queue is checked again (deposits wake at once)."""
SWITCH_INTERVAL_S = 0.0005
"""The worker's GIL switch interval (Python's default is 0.005 s)."""
PIPE_AHEAD_S = 0.01
"""A child gets its next work before it finishes the current one while works take less
than this on average (no idle gap between short works; a long one never waits behind)."""


@dataclass(slots=True)
class _Done:
    """A finished attempt waiting to be recorded."""

    work: Work
    outcome: str  # success | failure | release
    failure: Failure | None
    elapsed: float


Verdict = Failure | str
"""Decided outside the child: "lost" (do not complete), "release", or a timeout Failure."""


class Worker(Feeding):
    """Run works of `pipelines` until stopped. See the module docstring."""

    def __init__(
        self,
        client: Client,
        pipelines: list[str],
        function: str | None = None,
        *,
        concurrency: int = 1,
        lives: int = -1,
        sleep_s: float = SLEEP_S,
        burst: bool = False,
        in_process: bool = False,
        grace_s: float = GRACE_S,
        kill_after_s: float = KILL_AFTER_S,
        filters: dict[str, Any] | None = None,
        name: str | None = None,
        index: bool = True,
    ) -> None:
        self.client = client
        self.pipelines = list(pipelines)
        self.function = function
        self.concurrency = 1 if in_process else max(1, concurrency)
        self.lives, self.burst, self.in_process = lives, burst, in_process
        self.sleep_s, self.grace_s, self.kill_after_s = sleep_s, grace_s, kill_after_s
        self.filters = filters or {}
        self.info = WorkerInfo(
            name=name or f"{socket.gethostname()}.{os.getpid()}.{new_id()[-6:]}",
            host=socket.gethostname(), pid=os.getpid(), pipelines=self.pipelines,
            function=function, concurrency=self.concurrency, started=time.time(), beat=0.0,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # a child became free
        self._held: dict[str, Work] = {}  # every work whose lease we hold, by id
        self._pending: deque[Work] = deque()  # withdrawn, not started
        self._busy: dict[str, Child | None] = {}  # work id -> its child (None: in-process)
        self._children: list[Child] = []
        self._verdicts: dict[str, Verdict] = {}  # work id -> outcome decided from outside
        self._kill_at: dict[int, float] = {}  # child pid -> when to SIGKILL
        self._taken = 0
        self._retrying: dict[str, str] = {}  # id -> pipeline of our failures awaiting retry
        self._drained = False
        self._stop = threading.Event()  # no new works
        self._finished = threading.Event()  # the main loop is over
        self._failed = False  # a thread died of an unexpected error: exit 1
        self._grace_end = float("inf")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._indexer = Indexer(client, self.pipelines, consumer=self.info.name) if index else None
        self._filters = core.Filters.make(**self.filters)
        self._completions: list[_Done] = []  # finished, not yet recorded (main thread)
        self._first_done = 0.0  # when the oldest of them finished
        self._unrecorded = 0  # len(self._completions), readable by the fetch thread
        self._reserved = 0  # works being withdrawn right now (either thread)
        self._runtime: float | None = None  # moving average of a work's run time, s
        self._running_since: float | None = None  # in-process: when the current work began

    # -- public -------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code."""
        self._install_signals()
        # Threads hand works to each other: let a woken one take the GIL within 0.5 ms
        # (Python's default lets a busy thread keep it 5 ms, a latency spike).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        if self.in_process:  # user code's Work methods reach this deployment by default
            set_default_client(self.client)
        if self.in_process and self.function:
            try:
                execution.resolve(self.function)
            except WorkflowError as exc:
                log.error("cannot start: %s", exc)
                return 1
        if not self.in_process:
            for _ in range(self.concurrency):
                child = self._new_child()
                error = child.wait_ready()
                if error:
                    log.error("cannot start: %s", error)
                    self._stop_children([child, *self._children])
                    return 1
                self._children.append(child)
        try:
            self.client.redis.ping()
        except Exception as exc:
            log.error("cannot reach Redis at %s: %s", self.client.settings.url, exc)
            self._stop_children(self._children)
            return 1
        log.info("worker %s: pipelines %s, function %s, concurrency %d%s", self.info.name,
                 ", ".join(self.pipelines), self.function or "(each work's own)",
                 self.concurrency, ", in-process" if self.in_process else "")  # fmt: skip
        loops = [self._fetch_thread, self._heartbeat_loop]
        if self._indexer is not None:
            loops.append(self._index_loop)
        threads = [threading.Thread(target=t, daemon=True, name=t.__name__)
                   for t in loops]  # fmt: skip
        for t in threads:
            t.start()
        try:
            self._main_loop()
        finally:
            self._shutdown(threads)
        return 1 if self._failed else 0

    def stop(self, now: bool = False) -> None:
        """Stop withdrawing; running works get `grace_s` (none if `now`) to finish."""
        if not self._stop.is_set():
            log.info("stopping: no new works; %d running get %.0f s to finish",
                     len(self._busy), 0 if now else self.grace_s)  # fmt: skip
            self._grace_end = time.monotonic() + (0 if now else self.grace_s)
            self._stop.set()
        elif now:
            self._grace_end = time.monotonic()
        self._wake()
        if self._lock.acquire(blocking=False):  # a signal handler must not wait for the lock
            try:
                self._space.notify_all()
            finally:
                self._lock.release()

    # -- main thread --------------------------------------------------------------------

    def _main_loop(self) -> None:
        while True:
            self._dispatch()
            if self._flush_due():
                self._flush()  # records them and leases the next works, one round trip
                continue
            with self._lock:
                idle_now = not self._busy and not self._pending
                if idle_now and (self._stop.is_set() or self._lives_left() == 0 or self._drained):
                    return
                running = {c.conn: c for c in self._children if c.awaiting}
            if self._stop.is_set() and time.monotonic() >= self._grace_end:
                self._hand_back_running()
            for conn in wait([*running, self._wake_r], timeout=self._next_timeout()):
                if conn == self._wake_r:
                    os.read(self._wake_r, 4096)
                else:
                    self._collect(running[conn])
            self._enforce_timeouts()

    def _dispatch(self) -> None:
        while True:
            child = None if self.in_process else self._least_loaded()
            with self._lock:
                if not self._pending or (not self.in_process and child is None):
                    return
                work = self._pending.popleft()
                stopping = self._stop.is_set()
                if not stopping:
                    self._busy[work.id] = child  # type: ignore[index]
            if stopping:  # (released outside the lock: _release takes it)
                self._release(work)
                continue
            if getattr(work, "_ahead", False):  # leased ahead: Redis counts this attempt
                work._ahead = False  # type: ignore[attr-defined]  # when it is completed
                work.attempt += 1
            if child is None:
                self._log_start(work)
                t0 = time.monotonic()
                self._running_since = t0
                outcome = execution.execute(
                    work, self.function, self.client.settings.max_result_bytes
                )
                self._running_since = None
                with self._lock:
                    del self._busy[work.id]  # type: ignore[arg-type]
                    self._unrecorded += 1  # before the slot shows free: the flush refills it
                self._finish(work, outcome, time.monotonic() - t0)
                if self._flush_due():
                    return
            else:
                try:
                    child.send(work, self.function)
                    if child.awaiting == 1:  # (one queued behind is logged when it starts)
                        self._log_start(work)  # after the send: not on the latency path
                except OSError:  # the child died: this work never started
                    with self._lock:
                        del self._busy[work.id]  # type: ignore[arg-type]
                        self._pending.appendleft(work)
                    if child.awaiting:
                        return  # its pipe reports the death: _collect replaces it
                    self._children.remove(child)
                    child.stop(0)
                    self._replace_child()

    def _least_loaded(self) -> Child | None:
        """The child with the fewest works sent, if it can take one more: one each, or
        two while works are short (the second waits in its pipe)."""
        depth = 2 if self._runtime is not None and self._runtime < PIPE_AHEAD_S else 1
        ready = [c for c in self._children if c.awaiting < depth
                 and c.pid not in self._kill_at]  # fmt: skip
        return min(ready, key=lambda c: c.awaiting) if ready else None

    @staticmethod
    def _log_start(work: Work) -> None:
        log.info("work=%s start: pipeline %s, attempt %d", work.id, work.pipeline, work.attempt)

    def _collect(self, child: Child) -> None:
        started = child.started
        work, outcome, died = child.receive()
        if not died and child.work is not None:  # the one queued behind starts now
            self._log_start(child.work)
        if work is not None:  # (None: a work taken back, answered `skipped`)
            with self._lock:
                del self._busy[work.id]  # type: ignore[arg-type]
                self._unrecorded += 1  # before the slot shows free: the flush refills it
            self._finish(work, outcome, time.monotonic() - started)
        if died:  # works sent after the one it died running never started: hand back
            for queued in child.forget():
                self._decide(queued.id, "release")  # type: ignore[arg-type]
                with self._lock:
                    del self._busy[queued.id]  # type: ignore[arg-type]
                    self._unrecorded += 1
                self._finish(queued, Outcome(ok=False), 0.0)
        # A child that died after answering, or is being stopped, still owes an answer
        # for each work sent after: its pipe reports that, then it is replaced.
        if died or (not child.awaiting and (not child.alive() or child.pid in self._kill_at)):
            self._flush()  # record first: replacing a child takes time
            self._children.remove(child)
            self._kill_at.pop(child.pid, None)
            child.stop(0)
            if not self._stop.is_set():
                self._replace_child()

    def _new_child(self) -> Child:
        s = self.client.settings
        return Child(
            self.function, env={"WORKFLOW_REDIS_URL": s.url or "", "WORKFLOW_PREFIX": s.prefix},
            max_result_bytes=s.max_result_bytes,
        )  # fmt: skip

    def _replace_child(self) -> None:
        child = self._new_child()
        error = child.wait_ready()
        if error:  # the function imported before: something is badly wrong now
            log.error("cannot restart a child: %s; stopping", error)
            self.stop(now=True)
        else:
            self._children.append(child)

    def _finish(self, work: Work, outcome: Outcome, elapsed: float) -> None:
        """Queue the completion of a finished attempt; `_flush` records it. The work stays
        held until then: a burst worker must not exit before it is recorded. (The caller
        counted it in `_unrecorded` when it freed its slot.)"""
        with self._lock:
            verdict = self._verdicts.pop(work.id, None)  # type: ignore[arg-type]
        if verdict != "release":
            avg = self._runtime
            self._runtime = elapsed if avg is None else 0.8 * avg + 0.2 * elapsed
        if verdict == "lost":
            log.warning("work=%s not completed: its lease was lost or it was cancelled", work.id)
            with self._lock:
                self._held.pop(work.id, None)  # type: ignore[arg-type]
                self._unrecorded -= 1
                self._space.notify()
            return
        if verdict == "release":
            done = _Done(work, "release", None, elapsed)
        else:
            work.results, work.products = outcome.results, outcome.products
            work.plots = outcome.plots
            if isinstance(verdict, Failure) or not outcome.ok:
                done = _Done(work, "failure", verdict or outcome.failure, elapsed)  # type: ignore[arg-type]
            else:
                done = _Done(work, "success", None, elapsed)
        self._queue_done(done, counted=True)

    def _queue_done(self, done: _Done, counted: bool = False) -> None:
        with self._lock:  # (the fetch thread may flush them while a work runs in-process)
            if not self._completions:
                self._first_done = time.monotonic()
            self._completions.append(done)
            if not counted:
                self._unrecorded += 1

    def _flush_due(self) -> bool:
        """Record now: the batch is full or old enough, the works to run are running
        out (the round trip brings more), or the worker is stopping."""
        return bool(self._completions) and (
            len(self._completions) >= BATCH_MAX
            or time.monotonic() - self._first_done >= FLUSH_S
            or len(self._pending) < self.concurrency
            or self._stop.is_set()
        )

    def _flush(self) -> None:
        """Record every queued completion and lease the works that fill the free slots
        (from the first pipeline; the fetch thread serves the others), in one round trip."""
        with self._lock:
            done, self._completions = self._completions, []
            free = 0 if self._stop.is_set() or self._drained else max(0, self._free())
            ahead = free - min(free, self._slots())
            self._reserved += free
        leased: list[Work] = []
        try:
            statuses, leased = self._record(done, free, ahead)
        finally:
            with self._lock:
                self._reserved -= free
                self._unrecorded -= len(done)
                self._add_pending(leased)
                for d in done:  # recorded (or given up on): no longer ours to renew
                    self._held.pop(d.work.id, None)  # type: ignore[arg-type]
                    self._verdicts.pop(d.work.id, None)  # type: ignore[arg-type]
                self._space.notify()
        for d, status in zip(done, statuses, strict=True):
            self._report(d, status)

    def _record(
        self, done: list[_Done], free: int, ahead: int
    ) -> tuple[list[str], list[Work]]:
        """`client.complete_many`, re-sent (completions only) while Redis is unreachable or
        refuses writes (READONLY), for up to one lease period; then the leases expire and
        the works run again."""
        items = [(d.work, d.outcome, d.failure, d.failure is not None and d.failure.kind
                  in NO_RETRY) for d in done]  # fmt: skip
        refill = (self.pipelines[0], free, self._filters, ahead) if free else None
        delay = 0.1
        deadline = time.monotonic() + max(self.client.settings.lease_ms / 1000, 5.0)
        while True:
            try:
                return self.client.complete_many(items, refill=refill)  # type: ignore[arg-type]
            except (ConnectionError, ScriptError) as exc:  # unreachable, or read-only for now
                refill = None
                if time.monotonic() > deadline:
                    log.error("%d works could not be completed (%s); their leases will expire "
                              "and they will be retried", len(done), exc)  # fmt: skip
                    return ["unrecorded"] * len(done), []
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except WorkflowError as exc:
                log.error("%d works could not be completed: %s", len(done), exc)
                return ["unrecorded"] * len(done), []

    def _report(self, d: _Done, status: str) -> None:
        work = d.work
        if status == "rejected":
            log.warning("work=%s completion rejected: its lease was lost", work.id)
            return
        if d.outcome == "release":
            log.info("work=%s handed back to the queue", work.id)
            return
        if status == "unrecorded":
            return
        if d.outcome == "failure":
            self.info.failed += 1
        else:
            self.info.processed += 1
        why = f": {work.error.message}" if status != "success" and work.error else ""
        said = "failure, retry scheduled" if status == "queued" else status
        if status == "queued":
            with self._lock:
                self._retrying[work.id] = work.pipeline  # type: ignore[index]
        log.info("work=%s %s after %.3f s%s", work.id, said, d.elapsed, why)

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for child in list(self._children):
            if now - child.started >= TAKE_BACK_S and (taken := child.take_back()):
                with self._lock:  # a long work: the one queued behind it goes elsewhere
                    del self._busy[taken.id]  # type: ignore[arg-type]
                    self._pending.appendleft(taken)
        for child in list(self._children):
            if child.work is None or child.pid in self._kill_at:
                continue
            if now - child.started >= child.work.timeout:
                self._decide(child.work.id, Failure(  # type: ignore[arg-type]
                    kind="timeout", time=time.time(),
                    message=f"exceeded its timeout of {child.work.timeout} s; stopped",
                ))  # fmt: skip
                self._terminate(child)
        for child in list(self._children):
            if self._kill_at.get(child.pid, float("inf")) <= now:
                child._signal(signal.SIGKILL)
                self._kill_at[child.pid] = float("inf")  # sent; its pipe closes when it dies

    def _hand_back_running(self) -> None:
        for child in list(self._children):
            if child.work is not None and child.pid not in self._kill_at:
                self._decide(child.work.id, "release")  # type: ignore[arg-type]
                self._terminate(child)

    def _terminate(self, child: Child) -> None:
        """SIGTERM the child (SIGKILL after `kill_after_s`); works waiting in its pipe
        never start: they are handed back."""
        for queued in child.inflight[1:]:
            self._decide(queued.id, "release")  # type: ignore[arg-type]
        child._signal(signal.SIGTERM)
        self._kill_at[child.pid] = time.monotonic() + self.kill_after_s

    def _decide(self, work_id: str, verdict: Verdict) -> None:
        with self._lock:
            self._verdicts.setdefault(work_id, verdict)

    def _next_timeout(self) -> float:
        """Until the next thing the main loop must do by itself (at most 1 s)."""
        now = time.monotonic()
        moments = [now + 1.0, *self._kill_at.values()]
        if self._completions:
            moments.append(self._first_done + FLUSH_S)
        pending = [c for c in self._children if c.work and c.pid not in self._kill_at]
        moments += [c.started + c.work.timeout for c in pending]  # type: ignore[union-attr]
        moments += [c.started + TAKE_BACK_S for c in self._children if len(c.inflight) > 1]
        if pending and self._stop.is_set():
            moments.append(self._grace_end)
        return max(0.0, min(moments) - now)

    def _release(self, work: Work) -> None:
        """Hand a work that never started back to the queue."""
        self._queue_done(_Done(work, "release", None, 0.0))
        self._flush()

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        self._stop.set()
        self._finished.set()
        for t in threads:
            t.join(timeout=self.sleep_s + 5)
        with self._lock:
            pending, self._pending = list(self._pending), deque()
        for work in pending:
            self._queue_done(_Done(work, "release", None, 0.0))
        if self._completions:
            self._flush()
        self._stop_children(self._children)
        if self._indexer is not None:  # results of the last works show up at once
            with contextlib.suppress(WorkflowError, redis.RedisError):
                self._indexer.run_once()
        with contextlib.suppress(WorkflowError):
            registry.withdraw(self.client, self.info.name)
        log.info("worker %s stopped: %d succeeded, %d failed", self.info.name,
                 self.info.processed, self.info.failed)  # fmt: skip

    def _stop_children(self, children: list[Child]) -> None:
        for child in children:
            child.stop(self.kill_after_s)
        children.clear()

    # -- index thread -------------------------------------------------------------------

    def _index_loop(self) -> None:
        """Index finished works into results until the worker is finished."""
        assert self._indexer is not None
        self._indexer.run(self._finished)

    # -- signals ------------------------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop(now=self._stop.is_set()))

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe already wakes the main thread
            os.write(self._wake_w, b"x")
