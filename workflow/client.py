"""The synchronous client: a few lines per operation over `core` and one Redis call each."""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from workflow import codec, core
from workflow.connection import AnyRedis, WakeWaiter, blocking_client, connect
from workflow.errors import (
    ConnectionError,
    CorruptWork,
    InvalidTransition,
    LeaseLost,
    ScriptError,
    ValidationError,
    WorkflowError,
    WorkNotFound,
)
from workflow.ids import new_id
from workflow.keys import (
    pipeline_keys,
    pipelines_key,
)
from workflow.operations import Operations
from workflow.scripting import SCRIPT_NAMES, load
from workflow.settings import Settings
from workflow.work import Failure, Work

__all__ = ["Client", "Completion", "default_client", "set_default_client"]

log = logging.getLogger("workflow")
T = TypeVar("T")

Completion = tuple[Work, core.Outcome, Failure | None, bool]
"""One attempt to finish: the work, its outcome, the failure (or None), terminal."""
DEPOSIT_CHUNK = 500
"""Works per deposit script call: keeps each call short so Redis stays responsive."""
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Waits between re-sends of a retry-safe call after a connection error."""


class Client(Operations):
    """A connection to one workflow deployment (a Redis server and a key prefix).

    `Client()` reads `WORKFLOW_REDIS_URL` / `WORKFLOW_PREFIX`; with no URL it uses the
    embedded local server, starting it if needed.
    """

    def __init__(self, settings: Settings | None = None, *, url: str | None = None) -> None:
        settings = settings or Settings.from_env()
        if url is not None:
            settings = settings.replace(url=url)
        if settings.url is None:
            from workflow.server import ensure_embedded

            settings = settings.replace(url=ensure_embedded())
        self.settings = settings
        self._redis: AnyRedis | None = None  # connected on first use: see `redis`
        self._connect_lock = threading.Lock()
        self._blocking: redis.Redis | None = None
        self._waiter: WakeWaiter | None = None
        self._scripts: dict[str, Any] = {}
        self._registered: set[str] = set()
        self._loaded: set[str] = set()  # scripts loaded once, before their first pipelining

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this client's connections."""
        for conn in (self._redis, self._blocking, self._waiter):
            if conn is not None:
                conn.close()

    @property
    def redis(self) -> AnyRedis:
        """The redis-py client: a `RedisCluster` when the URL names a cluster node
        (detected on first use), else a `Redis`. Raises `ConnectionError` if unreachable."""
        if self._redis is None:
            self._io(lambda: None, retry_safe=False)  # connects
        return self._redis  # type: ignore[return-value]

    @property
    def cluster(self) -> bool:
        """True when connected to a Redis Cluster."""
        return isinstance(self.redis, RedisCluster)

    def _connect(self) -> None:
        with self._connect_lock:
            if self._redis is None:
                r = connect(self.settings.url)  # type: ignore[arg-type]
                self._scripts = {n: r.register_script(load(n).source) for n in SCRIPT_NAMES}
                self._redis = r

    # -- plumbing -----------------------------------------------------------------------

    def _io(self, fn: Callable[[], T], retry_safe: bool) -> T:
        """Run one Redis operation, translating errors; re-send only retry-safe ones."""
        delays = RETRY_DELAYS_S if retry_safe else ()
        for attempt in range(len(delays) + 1):
            try:
                if self._redis is None:
                    self._connect()
                return fn()
            except redis.AuthenticationError as exc:  # no use trying again
                raise ConnectionError(f"Redis refused the credentials: {exc}") from exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == len(delays):
                    raise ConnectionError(f"cannot reach Redis: {exc}") from exc
                time.sleep(delays[attempt])
            except redis.ResponseError as exc:
                raise ScriptError(f"Redis refused the operation: {exc}") from exc
        raise AssertionError("unreachable")

    def _run(self, call: core.Call) -> Any:
        def run() -> Any:
            return self._scripts[call.script](keys=call.keys, args=call.args)

        return self._io(run, call.retry_safe)

    def _run_many(self, calls: list[core.Call]) -> list[Any]:
        """Several script calls in one round trip (a pipeline of EVALSHA; scripts Redis
        lost, e.g. after a restart, are loaded again and only their calls re-sent). A
        call Redis refused has its exception as its reply."""

        def send(todo: list[core.Call]) -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for call in todo:
                sha = self._scripts[call.script].sha
                pipe.execute_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)
            return pipe.execute(raise_on_error=False)

        for name in sorted({c.script for c in calls} - self._loaded):
            # Loaded first: a NOSCRIPT re-send would run after the calls behind it.
            script = self._scripts[name]
            self._io(lambda s=script: self.redis.script_load(s.script), True)  # type: ignore[misc]
            self._loaded.add(name)
        safe = all(c.retry_safe for c in calls)
        replies = self._io(lambda: send(calls), safe)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for name in sorted({calls[i].script for i in missing}):
                script = self._scripts[name]
                self._io(lambda s=script: self.redis.script_load(s.script), True)  # type: ignore[misc]
            again = self._io(lambda: send([calls[i] for i in missing]), safe)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    def _register(self, pipeline: str) -> None:
        # The global pipelines set lives outside every pipeline's slot: written apart,
        # idempotently, once per client and pipeline.
        if pipeline not in self._registered:
            self._io(lambda: self.redis.sadd(pipelines_key(self.settings.prefix), pipeline), True)
            self._registered.add(pipeline)

    # -- transitions --------------------------------------------------------------------

    def deposit(self, works: Iterable[Work], *, delay_s: float = 0) -> list[bool]:
        """Queue works (any pipelines). Ids are assigned where missing; an id that exists
        already is left unchanged (False in the result), so re-depositing is harmless.
        Every work is validated and encoded before anything is sent: an invalid one
        raises `ValidationError` and none of the batch is deposited."""
        works = list(works)
        if (
            isinstance(delay_s, bool)
            or not isinstance(delay_s, int | float)
            or not 0 <= delay_s < 1e9
        ):
            raise ValidationError("delay_s", "must be a finite number of seconds >= 0", delay_s)
        for w in works:
            if not isinstance(w, Work):
                raise ValidationError("work", "must be a Work", w)
            w.validate()
        by_pipeline: dict[str, list[Work]] = {}
        for w in works:
            by_pipeline.setdefault(w.pipeline, []).append(w)
        assigned = [w for w in works if w.id is None]
        for w in assigned:
            w.id = new_id()
        try:
            calls = [
                (group[i : i + DEPOSIT_CHUNK], core.deposit_call(
                    self.settings, pipeline, group[i : i + DEPOSIT_CHUNK], int(delay_s * 1000)
                ))
                for pipeline, group in by_pipeline.items()
                for i in range(0, len(group), DEPOSIT_CHUNK)
            ]  # fmt: skip
        except ValidationError:
            for w in assigned:
                w.id = None
            raise
        for pipeline in by_pipeline:
            self._register(pipeline)
        created: dict[int, bool] = {}
        for chunk, call in calls:
            for w, new in zip(chunk, self._run(call), strict=True):
                created[id(w)] = bool(new)
                if new:
                    w.status, w.attempt = "queued", 0
        return [created[id(w)] for w in works]

    def withdraw(
        self,
        pipelines: str | list[str],
        *,
        count: int = 1,
        timeout_s: float = 0,
        event: int | list[int] | None = None,
        site: str | None = None,
        user: str | None = None,
        tags: list[str] | None = None,
        tags_mode: str = "any",
        priority: int | None = None,
        parent: str | None = None,
        ahead: int = 0,
    ) -> list[Work]:
        """Lease up to `count` works from the pipelines, in the order given, highest
        priority first then oldest. Waits up to `timeout_s` for work to arrive, woken by
        deposits within milliseconds. Filters as in the original API; see `Filters`.

        `ahead`: how many of them are leased ahead of a free slot (a worker's prefetch):
        their attempt is counted when they are completed, and if their lease runs out they
        go back to the queue uncounted (at most 3 times), since they may never have run."""
        names = [pipelines] if isinstance(pipelines, str) else pipelines
        if not isinstance(names, list | tuple) or not names:
            raise ValidationError("pipeline", "give a pipeline name or a list of them", pipelines)
        for name in names:
            core.check_pipeline(name)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationError("count", "must be an integer >= 1", count)
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not (0 <= timeout_s < 1e9)
        ):
            raise ValidationError("timeout_s", "must be a finite number of seconds >= 0", timeout_s)
        if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= count:
            raise ValidationError("ahead", "must be an integer from 0 to count", ahead)
        start = min(count, self.settings.scan_limit) - ahead
        count = min(count, self.settings.scan_limit)
        f = core.Filters.make(event=event, site=site, user=user, tags=tags,
                              tags_mode=tags_mode, priority=priority, parent=parent)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        works, wait_ms = self._withdraw_all(names, count, f, start)
        while not works:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(remaining, self.settings.idle_wait_s)
            if wait_ms > 0:
                wait = min(wait, wait_ms / 1000)
            if len(names) == 1 and not self.cluster and wait >= 0.001:
                works, wait_ms = self._wait_then_withdraw(names[0], count, f, wait, start)
            else:
                self._wait_for_wake(names, wait)
                works, wait_ms = self._withdraw_all(names, count, f, start)
        return works

    def _withdraw_all(
        self, names: list[str], count: int, f: core.Filters, start: int
    ) -> tuple[list[Work], int]:
        """Lease up to `count` works from the pipelines in order (the first `start` to
        start now, the rest ahead), and the shortest wait hint (ms until something
        delayed or leased is due; -1: none)."""
        works: list[Work] = []
        wait_ms = -1
        for name in names:
            while len(works) < count:
                try:
                    got, hint, corrupt = self._withdraw_one(
                        name, count - len(works), f, max(0, start - len(works))
                    )
                except WorkflowError:
                    if not works:
                        raise
                    return works, wait_ms  # leased from earlier pipelines: never drop them
                works += got
                if hint > 0:
                    wait_ms = hint if wait_ms < 0 else min(wait_ms, hint)
                if not corrupt:  # corrupt records took places: ask again for them
                    break
        return works, wait_ms

    def _wait_then_withdraw(
        self, pipeline: str, count: int, f: core.Filters, wait_s: float, start: int
    ) -> tuple[list[Work], int]:
        """Wait for a wake-up and withdraw right after, in one round trip: BLPOP and the
        withdraw script pipelined on the blocking connection (Redis runs the script the
        moment the BLPOP returns). Standalone servers; one pipeline."""
        if self._blocking is None:
            url, longest = self.settings.url, self.settings.idle_wait_s
            self._blocking = blocking_client(url, longest)  # type: ignore[arg-type]
        call = core.withdraw_call(
            self.settings, pipeline, count, f, secrets.token_hex(8), random.random(), start
        )
        sha = self._scripts[call.script].sha
        blocking = self._blocking

        def send() -> list[Any]:
            pipe = blocking.pipeline(transaction=False)
            pipe.blpop([pipeline_keys(self.settings.prefix, pipeline).wake],
                       timeout=round(wait_s, 3))  # fmt: skip
            pipe.execute_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)
            return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

        reply = self._io(send, retry_safe=False)[1]
        if isinstance(reply, NoScriptError):  # not run: load the scripts, withdraw plainly
            self._io(lambda: self.redis.script_load(self._scripts[call.script].script), True)
            return self._withdraw_all([pipeline], count, f, start)
        if isinstance(reply, Exception):
            raise ScriptError(f"Redis refused the operation: {reply}") from reply
        works, wait_ms, corrupt = self._leased(pipeline, reply)
        if corrupt and not works:
            return self._withdraw_all([pipeline], count, f, start)
        return works, wait_ms

    def _withdraw_one(
        self, pipeline: str, count: int, f: core.Filters, start: int
    ) -> tuple[list[Work], int, int]:
        call = core.withdraw_call(
            self.settings, pipeline, count, f, secrets.token_hex(8), random.random(), start
        )
        return self._leased(pipeline, self._run(call))

    def _leased(self, pipeline: str, reply: Any) -> tuple[list[Work], int, int]:
        """The works a withdraw reply leased, its wait hint, and how many records were
        corrupt (failed terminally, never handed out)."""
        records, wait_ms = core.decode_withdraw(reply)
        works = []
        for work_id, record in records:
            token = record.get("token", b"").decode()
            try:
                work = codec.decode_record(work_id, record)
            except CorruptWork as exc:
                self._fail_corrupt(pipeline, work_id, token, exc)
                continue
            work._token = token  # type: ignore[attr-defined]
            work._error_at_start = work.error  # type: ignore[attr-defined]
            work._ahead = record.get("ahead") == b"1"  # type: ignore[attr-defined]
            works.append(work)
        return works, wait_ms, len(records) - len(works)

    def _fail_corrupt(self, pipeline: str, work_id: str, token: str, exc: CorruptWork) -> None:
        """A record that cannot be decoded can never run: fail it terminally, keep going."""
        log.error("work %s: %s; marking it failed", work_id, exc)
        failure = Failure(kind="corrupt", message=str(exc), time=time.time())
        call = core.complete_call(
            self.settings, pipeline, work_id, token, "failure", random.random(), terminal=True,
            changes=("", ["error", codec.encode_failure(failure)]),
        )  # fmt: skip
        self._run(call)

    def _wait_for_wake(self, pipelines: list[str], wait_s: float) -> None:
        if wait_s < 0.001:
            return
        wake = [pipeline_keys(self.settings.prefix, p).wake for p in pipelines]
        r = self.redis
        if isinstance(r, RedisCluster):  # one BLPOP per slot, in parallel
            if self._waiter is None:
                url, longest = self.settings.url, self.settings.idle_wait_s
                self._waiter = WakeWaiter(r, url, longest)  # type: ignore[arg-type]
            waiter = self._waiter
            self._io(lambda: waiter.wait(wake, wait_s), retry_safe=True)
            return
        if self._blocking is None:
            url, longest = self.settings.url, self.settings.idle_wait_s
            self._blocking = blocking_client(url, longest)  # type: ignore[arg-type]
        blocking = self._blocking
        self._io(lambda: blocking.blpop(wake, timeout=round(wait_s, 3)), retry_safe=True)

    def renew(self, works: list[Work]) -> list[core.RenewResult]:
        """Extend the leases of withdrawn works: per work ok, lost, cancelled or missing."""
        results: dict[int, core.RenewResult] = {}
        by_pipeline: dict[str, list[Work]] = {}
        for w in works:
            by_pipeline.setdefault(w.pipeline, []).append(w)
        for pipeline, group in by_pipeline.items():
            leases = [(w.id, getattr(w, "_token", "")) for w in group]
            codes = core.decode_renew(self._run(core.renew_call(self.settings, pipeline, leases)))  # type: ignore[arg-type]
            results.update({id(w): c for w, c in zip(group, codes, strict=True)})
        return [results[id(w)] for w in works]

    def complete(
        self, work: Work, outcome: core.Outcome, *, failure: Failure | None = None,
        terminal: bool = False,
    ) -> str:  # fmt: skip
        """Finish a withdrawn work's attempt: success, failure (retried while attempts
        remain) or release (handed back). Returns the new status and sets it on `work`."""
        item = self._finishing(work, outcome, failure, terminal, data_only=False)
        [reply] = self._run(core.complete_batch_call(self.settings, work.pipeline, [item]))
        status = core.decode_status(reply, work.id, "complete")  # type: ignore[arg-type]
        self._completed(work, outcome, status)
        return status

    def complete_many(
        self, items: list[Completion], *,
        refill: tuple[str, int, core.Filters, int] | None = None,
    ) -> tuple[list[str], list[Work]]:
        """Finish several attempts (as a worker does: only `results`, `products`, `plots`
        and the error are stored; one script call per pipeline) and, with
        `refill=(pipeline, count, filters, ahead)`, lease up to `count` more works of
        `pipeline` (`ahead` of them leased ahead, as in `withdraw`)
        without waiting: all in one round trip. Returns each item's new status
        ("rejected" when its lease was lost or the work is gone) and the works leased. On a
        connection error only the completions are re-sent (they are idempotent); works the
        lost refill may have leased come back when their lease expires."""
        by_pipeline: dict[str, list[int]] = {}
        for i, (work, _, _, _) in enumerate(items):
            by_pipeline.setdefault(work.pipeline, []).append(i)
        finishing = [self._finishing(w, o, f, t, data_only=True) for w, o, f, t in items]
        calls = [core.complete_batch_call(self.settings, name, [finishing[i] for i in group])
                 for name, group in by_pipeline.items()]  # fmt: skip
        refill_call = None
        if refill is not None and refill[1] > 0:
            pipeline, count, f, ahead = refill
            count = min(count, self.settings.scan_limit)
            refill_call = core.withdraw_call(
                self.settings, pipeline, count, f, secrets.token_hex(8), random.random(),
                max(0, count - ahead),
            )  # fmt: skip
        try:
            replies = self._run_many([*calls, *([refill_call] if refill_call else [])])
        except ConnectionError:
            if refill_call is None:
                raise
            replies, refill_call = self._run_many(calls), None
        statuses = [""] * len(items)
        for group, reply in zip(by_pipeline.values(), replies, strict=False):
            if isinstance(reply, Exception):
                raise ScriptError(f"Redis refused the operation: {reply}") from reply
            for i, code in zip(group, reply, strict=True):
                work, outcome = items[i][0], items[i][1]
                try:
                    statuses[i] = core.decode_status(code, work.id, "complete")  # type: ignore[arg-type]
                except (LeaseLost, WorkNotFound):
                    statuses[i] = "rejected"
                self._completed(work, outcome, statuses[i])
        leased: list[Work] = []
        if refill_call is not None:
            reply = replies[-1]
            if isinstance(reply, Exception):
                raise ScriptError(f"Redis refused the operation: {reply}") from reply
            leased, _, _ = self._leased(refill[0], reply)  # type: ignore[index]
        return statuses, leased

    def _finishing(
        self, work: Work, outcome: core.Outcome, failure: Failure | None, terminal: bool,
        data_only: bool,
    ) -> core.Finishing:  # fmt: skip
        if not data_only:  # (a worker's outputs were checked when its function returned)
            work.validate()
        if outcome not in ("success", "failure", "release"):
            raise ValidationError("outcome", "must be 'success', 'failure' or 'release'", outcome)
        if outcome == "failure" and failure is None:
            # The work's own error if it was set during this attempt (the record may
            # still hold an older attempt's or run's error), else a plain record.
            e = work.error
            failure = (
                e
                if e is not None
                and e != getattr(work, "_error_at_start", None)
                and e.attempt in (0, work.attempt)
                else Failure(message="marked failure without an error record")
            )
        if failure is not None:
            failure.attempt = failure.attempt or work.attempt
            failure.time = failure.time or time.time()
        if outcome == "failure":
            work.error = failure
        changes = core.completion_fields(work, outcome, failure, data_only=data_only)
        return (work.id, _token(work), outcome, terminal, random.random(), changes)  # type: ignore[return-value]

    @staticmethod
    def _completed(work: Work, outcome: str, status: str) -> None:
        if status != "rejected":
            work.status = status
        work._token = ""  # type: ignore[attr-defined]  # the attempt is over

    def update(self, work: Work) -> None:
        """`work.update()`: finish, save progress, or edit in place (see `Work.update`)."""
        work.validate()
        if work.id is None:
            raise ValidationError("id", "the work has not been deposited (no id)")
        token = getattr(work, "_token", "")
        if token and work.status in ("success", "failure"):
            self.complete(work, work.status)  # type: ignore[arg-type]
            return
        call = core.update_call(self.settings, work, token, work.status)
        reply = self._run(call)
        if reply == core.ErrorCode.BAD_STATUS:
            stored = self.get(work.id, pipeline=work.pipeline).status
            raise InvalidTransition(
                work.id, stored, f"update (the work says {work.status!r}; only a worker "
                "holding its lease can change its status)",
            )  # fmt: skip
        core.decode_status(reply, work.id, "update")


def _token(work: Work) -> str:
    token = getattr(work, "_token", "")
    if not token:
        raise LeaseLost(str(work.id), "this Work object was not withdrawn by this process")
    return token


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client used by `Work` methods, made from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_default_client(client: Client | None) -> None:
    """Make `client` the one `Work` methods use (None: build from the environment again)."""
    global _default
    with _default_lock:
        _default = client
