"""How a worker gets works and keeps them: the fetch thread (withdraw, prefetch, hand
back works leased ahead of a long one) and the heartbeat thread (renew every lease held,
publish the worker's record). A mixin of `Worker`, sharing its state and its lock (see
`Worker.__init__`); split out of `worker.py` to keep each file about one thing."""

from __future__ import annotations

import contextlib
import logging
import time

from workflow import registry
from workflow.errors import ConnectionError, ScriptError, WorkflowError
from workflow.keys import work_key
from workflow.work import Work

__all__ = ["BATCH_MAX", "FLUSH_S", "PREFETCH_WINDOW_S", "TAKE_BACK_S", "Feeding"]

log = logging.getLogger("workflow.worker")

FLUSH_S = 0.005
"""Longest a finished work's completion waits to share a round trip with others."""
BATCH_MAX = 100
"""Most completions sent in one round trip."""
TAKE_BACK_S = 0.1
"""A work queued in a child's pipe behind one running this long is taken back for
another child (or later): a long work never holds a short one hostage."""
PREFETCH_WINDOW_S = 0.05
"""Works are leased ahead of a free slot only while the works run this fast on average,
and at most this long of them: short works then never wait on a round trip, long works
are never held back from other workers."""


class Feeding:
    """The fetch and heartbeat threads of `Worker` (a mixin: `Worker` holds the state)."""

    # -- fetch thread -------------------------------------------------------------------

    def _lives_left(self) -> int:
        return -1 if self.lives < 0 else self.lives - self._taken

    def _free(self) -> int:
        """Works to lease now: free slots, plus the prefetch, less what is being leased."""
        free = (self.concurrency + self._prefetch() - len(self._busy) - len(self._pending)
                - self._reserved)  # fmt: skip
        return free if self.lives < 0 else min(free, self._lives_left())

    def _slots(self) -> int:
        """(Lock held.) Works that would start at once if leased now; more are ahead."""
        return max(0, self.concurrency - len(self._busy) - len(self._pending) - self._reserved)

    def _prefetch(self) -> int:
        """Works leased ahead of a free slot: none until the works are known to be short,
        then about PREFETCH_WINDOW_S of them (at most BATCH_MAX)."""
        avg = self._runtime
        if avg is None or avg >= PREFETCH_WINDOW_S or self._longest_run() >= PREFETCH_WINDOW_S:
            return 0  # unknown or long works, or a long one running now (a surprise)
        return min(int(PREFETCH_WINDOW_S / max(avg, 1e-6)), BATCH_MAX)

    def _longest_run(self) -> float:
        """How long the longest-running work has run so far (0 if none runs)."""
        starts = [c.started for c in list(self._children) if c.work is not None]
        if self._running_since is not None:
            starts.append(self._running_since)
        return time.monotonic() - min(starts) if starts else 0.0

    def _give_back(self) -> None:
        """(Fetch thread.) Works leased ahead of a slot, stuck behind works that turned
        out long: hand them back to the queue for other workers."""
        with self._lock:
            if self._prefetch() or self._longest_run() < TAKE_BACK_S:
                return
            running = len(self._busy)
            excess = len(self._pending) - max(0, self.concurrency - running)
            back = [self._pending.pop() for _ in range(max(0, excess))]
            for work in back:
                self._held.pop(work.id, None)  # type: ignore[arg-type]
        if back:
            log.info("handing back %d works leased ahead: the running ones are long", len(back))
            with contextlib.suppress(WorkflowError):
                self.client.complete_many([(w, "release", None, False) for w in back])

    def _add_pending(self, works: list[Work]) -> None:
        """(Lock held.) Works just leased: to run, held, counted."""
        self._pending.extend(works)
        self._held.update((w.id, w) for w in works)  # type: ignore[misc]
        self._taken += len(works)

    def _fetch_thread(self) -> None:
        """The fetch loop; if it ever fails unexpectedly the worker stops (exit 1) rather
        than live on without taking works."""
        try:
            self._fetch_loop()
        except Exception:
            log.exception("the fetch thread failed; stopping the worker")
            self._failed = True
            self.stop()

    def _fetch_loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            with self._space:
                # Slots freed by finished works are filled by the main thread when it
                # records them (same round trip): wait while it has some to record.
                while (self._free() <= 0 or self._recording()) and self._lives_left() != 0 \
                        and not self._stop.is_set():  # fmt: skip
                    # In-process, the main thread may be inside a long work: record the
                    # works it finished before it, once they are FLUSH_S old.
                    late = self.in_process and self._running_since is not None \
                        and bool(self._completions)  # fmt: skip
                    wait_s = max(0.0, self._first_done + FLUSH_S - time.monotonic()) \
                        if late else 1.0  # fmt: skip
                    if self._space.wait(wait_s):
                        continue
                    self._space.release()  # (the lock is not held while Redis answers)
                    try:
                        if late and self._running_since is not None:
                            self._flush()
                        elif self._pending:
                            self._give_back()
                    finally:
                        self._space.acquire()
                free = self._free()
                ahead = max(0, free - self._slots())
                self._reserved += free
                nothing_held = not self._held
            if self._lives_left() == 0 or self._stop.is_set():
                with self._lock:
                    self._reserved -= free
                self._wake()
                return
            try:
                works = self.client.withdraw(
                    self.pipelines, count=free, timeout_s=0 if self.burst else self.sleep_s,
                    ahead=ahead, **self.filters,
                )  # fmt: skip
                delay = 0.1
            except (ConnectionError, ScriptError) as exc:  # e.g. READONLY after a failover
                with self._lock:
                    self._reserved -= free
                what = "unreachable" if isinstance(exc, ConnectionError) else "refused a withdraw"
                log.warning("Redis %s (%s); retrying in %.1f s", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            with self._lock:
                self._reserved -= free
                self._add_pending(works)
            if not works and self.burst and nothing_held and self._nothing_due():
                self._drained = True
            if works or self._drained:
                self._wake()
            if self._drained:
                return
            if not works and self.burst:
                time.sleep(0.05)

    def _recording(self) -> bool:
        """(Lock held.) The main thread holds finished works it has yet to record."""
        return self._unrecorded > 0

    def _nothing_due(self) -> bool:
        """Burst mode: none of our own failed works still waits for its retry."""
        with self._lock:
            mine = dict(self._retrying)
        if not mine:
            return True
        pipe = self.client.redis.pipeline(transaction=False)
        for work_id, pipeline in mine.items():
            pipe.hget(work_key(self.client.settings.prefix, pipeline, work_id), "status")
        statuses = self.client._io(pipe.execute, True)
        with self._lock:
            for work_id, status in zip(mine, statuses, strict=True):
                if status != b"queued":
                    self._retrying.pop(work_id, None)
            return not self._retrying

    # -- heartbeat thread ---------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = max(self.client.settings.lease_ms / 3000, 0.05)
        first = True
        while first or not self._finished.wait(interval):  # beats through the grace period
            first = False
            with self._lock:
                held = list(self._held.values())
            try:
                self._renew(held)
                self._beat(held, ttl_s=max(3 * interval, 10))
            except Exception as exc:  # never let this thread die: leases depend on it
                log.warning("heartbeat failed: %s", exc)

    def _renew(self, held: list[Work]) -> None:
        if not held:
            return
        for work, result in zip(held, self.client.renew(held), strict=True):
            with self._lock:
                current = self._held.get(work.id) is work  # type: ignore[arg-type]
            if result != "ok" and current:  # (a late answer about a finished attempt: ignore)
                log.warning("work=%s lease %s: stopping it", work.id, result)
                self._decide(work.id, "lost")  # type: ignore[arg-type]
                with self._lock:
                    child = self._busy.get(work.id)  # type: ignore[arg-type]
                    if work in self._pending:
                        self._pending.remove(work)
                        self._held.pop(work.id, None)  # type: ignore[arg-type]
                        self._verdicts.pop(work.id, None)  # type: ignore[arg-type]
                        self._space.notify()
                if child is not None and child.work is work:  # running: stop it
                    self._terminate(child)  # (one still in its pipe runs, then is dropped)
                    self._wake()

    def _beat(self, held: list[Work], ttl_s: float) -> None:
        self.info.beat = time.time()
        self.info.current = [w.id for w in held]  # type: ignore[misc]
        registry.publish(self.client, self.info, ttl_s)
