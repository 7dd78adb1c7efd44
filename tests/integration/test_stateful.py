"""The queue against a pure-Python model of it, driven by random operations.

Every step is one client call on the real Redis scripts and the same change to the model;
after every step the whole Redis state is read back and compared with the model:
every id in exactly the set its state says (or nowhere once deleted), the queued set in
priority-then-FIFO order, attempts, status fields, counts, lifetime stats, the completion
stream, the results index (exactly the finished works indexed so far), and terminal works
never moving again.

Lease expiry is made deterministic by moving a running work's lease score to 0; backoff
is 0 (the `settings` fixture), so a retried work sits in `delayed` until the next
withdraw (or sweep) of its pipeline promotes it, behind the queued works of its priority.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from workflow import Client, InvalidTransition, LeaseLost, Settings, Work, WorkNotFound
from workflow.indexer import Indexer
from workflow.keys import index_key, pipeline_keys, work_key

PIPELINES = ("p1", "p2")
ID_POOL = tuple(f"w{i}" for i in range(8))
"""Caller-supplied ids: drawn again and again, so deposits hit existing and deleted ids."""
SETS = ("queued", "delayed", "running", "success", "failure", "cancelled")
TERMINAL = ("success", "failure", "cancelled")
STATUS_FIELD = {"delayed": "queued"}
"""The record's `status` for a model state (a work waiting for its retry is `queued`)."""
DISTINCT_MS_S = 0.0015
"""Sleep after a call that parks work in `delayed`: due times then differ between calls,
so promotion order is call order (ties at one ms would be broken by id)."""

STEPS: Counter[str] = Counter()
"""Examples and invariant checks (one after `__init__`, one after each step) run."""


@dataclass
class Model:
    """What the model knows about one work."""

    pipeline: str
    id: str
    priority: int
    retries: int
    state: str = "queued"  # one of SETS, or "deleted"
    attempt: int = 0
    seq: int = 0  # FIFO place while queued
    due: int = 0  # the call that parked it, while delayed
    expired: bool = False  # lease score moved to the past, while running
    token: str | None = None  # the current lease token, once withdrawn
    last: str | None = None  # `token/outcome` of the completion that ended an attempt
    indexed: bool = False  # in the results index (finished, and an index step ran since)

    @property
    def key(self) -> tuple[str, str]:
        return (self.pipeline, self.id)


def token_of(work: Work) -> str:
    """The lease token a withdrawn Work object holds ('' once its attempt is over)."""
    return getattr(work, "_token", "")


deposits = st.tuples(
    st.sampled_from(PIPELINES),
    st.none() | st.sampled_from(ID_POOL),  # None: a fresh id
    st.integers(1, 5),  # priority
    st.integers(0, 2),  # retries
)


class QueueMachine(RuleBasedStateMachine):
    settings_: ClassVar[Settings]

    def __init__(self) -> None:
        super().__init__()
        self.client = Client(self.settings_)
        self.client.redis.flushall()
        self.works: dict[tuple[str, str], Model] = {}
        self.handles: list[Work] = []  # every Work withdrawn, current and stale
        self.clock = 0  # model time: one tick per call
        self.seq = 0
        self.fresh = 0
        self.stats = {p: Counter() for p in PIPELINES}
        self.stream = Counter()
        self.frozen: dict[tuple[str, str], tuple[str, float, bytes]] = {}
        STEPS["examples"] += 1

    def teardown(self) -> None:
        self.client.redis.flushall()
        self.client.close()

    # -- model helpers --------------------------------------------------------------------

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def live(self, *states: str) -> list[Model]:
        return sorted((m for m in self.works.values() if m.state in states), key=lambda m: m.key)

    def finish(self, m: Model, state: str) -> None:
        m.state = state
        self.stream[m.pipeline] += 1
        self.stats[m.pipeline][state] += 1

    def fail_or_retry(self, m: Model, now: int) -> str:
        if m.attempt <= m.retries:
            m.state, m.due = "delayed", now
            self.stats[m.pipeline]["retried"] += 1
            return "queued"
        self.finish(m, "failure")
        return "failure"

    def sweep(self, pipeline: str, now: int) -> tuple[int, int]:
        """What every withdraw and requeue_expired does first: reclaim expired leases
        (in id order: their scores are all 0), then promote every due delayed work."""
        expired = [m for m in self.live("running") if m.pipeline == pipeline and m.expired]
        for m in sorted(expired, key=lambda m: m.id):
            m.expired = False
            self.fail_or_retry(m, now)
            self.stats[pipeline]["expired"] += 1
        delayed = [m for m in self.live("delayed") if m.pipeline == pipeline]
        for m in sorted(delayed, key=lambda m: (m.due, m.id)):
            m.state, m.seq = "queued", self.next_seq()
        return len(expired), len(delayed)

    def queue_order(self, pipeline: str) -> list[Model]:
        queued = [m for m in self.live("queued") if m.pipeline == pipeline]
        return sorted(queued, key=lambda m: (-m.priority, m.seq))

    def current(self, m: Model) -> Model | None:
        """The model of the record that exists now under this work's key."""
        found = self.works.get(m.key)
        return found if found is not None and found.state != "deleted" else None

    # -- rules ------------------------------------------------------------------------------

    @initialize(batch=st.lists(deposits, min_size=2, max_size=12))
    def first_deposit(self, batch: list[tuple[str, str | None, int, int]]) -> None:
        self.deposit(batch, via_work=False)

    @rule(batch=st.lists(deposits, min_size=1, max_size=4), via_work=st.booleans())
    def deposit(self, batch: list[tuple[str, str | None, int, int]], via_work: bool) -> None:
        self.tick()
        works = []
        for n, (p, i, prio, r) in enumerate(batch):
            if i is None:  # a fresh id; not a library one, whose order would be random
                self.fresh += 1
                i = f"n{self.fresh:05d}"
            works.append(Work(pipeline=p, id=i, priority=prio, retries=r, parameters={"n": n},
                              tags=["all"]))  # fmt: skip
        if via_work and len(works) == 1:
            created = [works[0].deposit(client=self.client)]
        else:
            created = self.client.deposit(works)
        for w, new in zip(works, created, strict=True):
            assert w.id is not None
            key = (w.pipeline, w.id)
            expected = key not in self.works or self.works[key].state == "deleted"
            assert new is expected, (key, self.works.get(key))
            if expected:
                self.works[key] = Model(w.pipeline, w.id, w.priority, w.retries)
                self.works[key].seq = self.next_seq()
                self.stats[w.pipeline]["deposited"] += 1
                assert w.status == "queued"

    @precondition(lambda self: any(m.state != "deleted" for m in self.works.values()))
    @rule(data=st.data(), priority=st.integers(1, 5))
    def redeposit_existing(self, data: st.DataObject, priority: int) -> None:
        """An id that exists already is left unchanged, whatever its state."""
        m = data.draw(st.sampled_from([m for m in self.works.values() if m.state != "deleted"]))
        self.tick()
        work = Work(pipeline=m.pipeline, id=m.id, priority=priority, retries=0)
        assert self.client.deposit([work]) == [False]

    def has_work_to_withdraw(self) -> bool:
        return any(m.state in ("queued", "delayed") or m.expired for m in self.works.values())

    @precondition(has_work_to_withdraw)
    @rule(count=st.integers(1, 3), pipeline=st.sampled_from(PIPELINES))
    def withdraw(self, count: int, pipeline: str) -> None:
        self._withdraw(count, (pipeline,), None)

    @rule(
        count=st.integers(1, 3),
        pipelines=st.sampled_from([("p1",), ("p2",), ("p1", "p2"), ("p2", "p1")]),
        priority=st.none() | st.integers(1, 5),
    )
    def withdraw_filtered(
        self, count: int, pipelines: tuple[str, ...], priority: int | None
    ) -> None:
        self._withdraw(count, pipelines, priority)

    def _withdraw(self, count: int, pipelines: tuple[str, ...], priority: int | None) -> None:
        now = self.tick()
        expected: list[Model] = []
        for p in pipelines:  # the client stops at the first pipelines that fill `count`
            self.sweep(p, now)
            order = [m for m in self.queue_order(p) if priority in (None, m.priority)]
            picked = order[: count - len(expected)]
            for m in picked:
                m.state, m.expired, m.attempt = "running", False, m.attempt + 1
            self.stats[p]["withdrawn"] += len(picked)
            expected += picked
            if len(expected) >= count:
                break
        works = self.client.withdraw(list(pipelines), count=count, priority=priority)
        assert [(w.pipeline, w.id) for w in works] == [m.key for m in expected]
        for w, m in zip(works, expected, strict=True):
            assert (w.status, w.attempt, w.priority) == ("running", m.attempt, m.priority)
            assert w.start is not None and w.stop is None
            token = token_of(w)
            assert token and token != m.token
            m.token = token
            self.handles.append(w)

    def _handle(self, data: st.DataObject) -> Work:
        current = [
            h
            for h in self.handles
            if (m := self.works.get((h.pipeline, h.id))) is not None  # type: ignore[arg-type]
            and m.state == "running"
            and m.token == token_of(h)
        ]
        if current and data.draw(st.integers(0, 9), label="fresh") < 8:
            return data.draw(st.sampled_from(current), label="handle")
        return data.draw(st.sampled_from(self.handles), label="stale handle")

    def has_running(self) -> bool:
        return any(m.state == "running" for m in self.works.values())

    @precondition(has_running)
    @rule(data=st.data())
    def complete_success(self, data: st.DataObject) -> None:
        self._complete(data, "success")

    @precondition(has_running)
    @rule(data=st.data())
    def complete_failure(self, data: st.DataObject) -> None:
        self._complete(data, "failure")

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), outcome=st.sampled_from(["release", "success", "failure"]))
    def complete(self, data: st.DataObject, outcome: str) -> None:
        self._complete(data, outcome)

    def _complete(self, data: st.DataObject, outcome: str) -> None:
        h = self._handle(data)
        now = self.tick()
        m = self.works.get((h.pipeline, h.id))  # type: ignore[arg-type]
        token = token_of(h)
        if not token:  # this object's attempt is over: refused without asking Redis
            with pytest.raises(LeaseLost):
                self.client.complete(h, outcome)  # type: ignore[arg-type]
            return
        if m is None or m.state == "deleted":
            with pytest.raises(WorkNotFound):
                self.client.complete(h, outcome)  # type: ignore[arg-type]
            return
        if m.token != token or (m.state != "running" and m.last != f"{token}/{outcome}"):
            with pytest.raises(LeaseLost):
                self.client.complete(h, outcome)  # type: ignore[arg-type]
            self.stats[m.pipeline]["rejected"] += 1
            return
        if m.state != "running":  # a repeat of the completion that ended this attempt
            status = self.client.complete(h, outcome)  # type: ignore[arg-type]
            assert status == STATUS_FIELD.get(m.state, m.state)
            return
        m.last, m.expired = f"{token}/{outcome}", False
        if outcome == "success":
            self.finish(m, "success")
            expected = "success"
        elif outcome == "release":
            m.state, m.attempt = "queued", m.attempt - 1  # back in its place (same seq)
            self.stats[m.pipeline]["released"] += 1
            expected = "queued"
        else:
            expected = self.fail_or_retry(m, now)
        assert self.client.complete(h, outcome) == expected  # type: ignore[arg-type]
        assert h.status == expected
        assert token_of(h) == "", "a finished attempt's object holds no lease"
        if m.state == "delayed":
            time.sleep(DISTINCT_MS_S)

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        handles = [self._handle(data) for _ in range(data.draw(st.integers(1, 3)))]
        self.tick()
        expected = []
        for h in handles:
            m = self.works.get((h.pipeline, h.id))  # type: ignore[arg-type]
            if m is None or m.state == "deleted":
                expected.append("missing")
            elif m.token != token_of(h):
                expected.append("lost")
            elif m.state == "cancelled":
                expected.append("cancelled")
            elif m.state != "running":
                expected.append("lost")
            else:
                m.expired = False  # a renewed lease is in the future again
                expected.append("ok")
        assert self.client.renew(handles) == expected

    @precondition(lambda self: any(m.state == "running" for m in self.works.values()))
    @rule(data=st.data(), sweep_now=st.booleans())
    def expire_lease(self, data: st.DataObject, sweep_now: bool) -> None:
        """The worker died: its lease runs out. Found by the next sweep or withdraw."""
        m = data.draw(st.sampled_from(self.live("running")))
        keys = pipeline_keys(self.settings_.prefix, m.pipeline)
        assert self.client.redis.zadd(keys.running, {m.id: 0}, xx=True) == 0
        m.expired = True
        if sweep_now:
            self.requeue_expired(m.pipeline)

    @rule(pipeline=st.sampled_from(PIPELINES))
    def requeue_expired(self, pipeline: str) -> None:
        now = self.tick()
        expected = self.sweep(pipeline, now)
        assert self.client.requeue_expired(pipeline) == expected

    def _any_work(self, data: st.DataObject) -> tuple[str, str]:
        known = sorted(self.works)
        if known and data.draw(st.integers(0, 9), label="known") < 9:
            return data.draw(st.sampled_from(known), label="work")
        return (data.draw(st.sampled_from(PIPELINES)), data.draw(st.sampled_from(ID_POOL)))

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        key = self._any_work(data)
        self.tick()
        m = self.works.get(key)
        if m is None or m.state == "deleted":
            with pytest.raises(WorkNotFound):
                self.client.cancel(key[1], pipeline=key[0])
        elif m.state in TERMINAL:
            with pytest.raises(InvalidTransition) as info:
                self.client.cancel(key[1], pipeline=key[0])
            assert info.value.status == m.state
        else:
            before = STATUS_FIELD.get(m.state, m.state)
            m.expired = False
            self.finish(m, "cancelled")
            assert self.client.cancel(key[1], pipeline=key[0]) == before

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = self._any_work(data)
        self.tick()
        m = self.works.get(key)
        existed = m is not None and m.state != "deleted"
        if existed:
            m.state, m.indexed = "deleted", False  # type: ignore[union-attr]
            self.stats[key[0]]["deleted"] += 1
            self.frozen.pop(key, None)
        assert self.client.delete(key[1], pipeline=key[0]) is existed

    @rule(pipeline=st.sampled_from(PIPELINES))
    def index(self, pipeline: str) -> None:
        """Index the pipeline's results: every finished work enters the index, the
        acknowledged stream entries are trimmed (the last delivered one stays)."""
        self.tick()
        Indexer(self.client, [pipeline], consumer="machine").drain()
        for m in self.works.values():
            if m.pipeline == pipeline and m.state in TERMINAL:
                m.indexed = True
        self.stream[pipeline] = min(self.stream[pipeline], 1)

    @precondition(lambda self: any(m.state != "deleted" for m in self.works.values()))
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        m = data.draw(st.sampled_from([m for m in self.works.values() if m.state != "deleted"]))
        self.tick()
        work = self.client.get(m.id, pipeline=m.pipeline)
        assert (work.pipeline, work.id, work.priority) == (m.pipeline, m.id, m.priority)
        assert (work.status, work.attempt) == (STATUS_FIELD.get(m.state, m.state), m.attempt)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def redis_matches_the_model(self) -> None:
        STEPS["checks"] += 1
        prefix = self.settings_.prefix
        pipe = self.client.redis.pipeline(transaction=False)
        for p in PIPELINES:
            k = pipeline_keys(prefix, p)
            for name in SETS:
                pipe.zrange(getattr(k, name), 0, -1, withscores=True)
            pipe.xlen(k.done)
            pipe.hgetall(k.stats)
            pipe.zrange(index_key(prefix, p, "tag", "all"), 0, -1, withscores=True)
        models = sorted(self.works.values(), key=lambda m: m.key)
        for m in models:
            pipe.hmget(work_key(prefix, m.pipeline, m.id), "status", "attempt", "stop")
        replies = iter(pipe.execute())

        where: dict[tuple[str, str], tuple[str, float]] = {}
        for p in PIPELINES:
            members: dict[str, dict[str, float]] = {}
            for name in SETS:
                members[name] = {i.decode(): score for i, score in next(replies)}
                for work_id, score in members[name].items():
                    assert (p, work_id) not in where, f"{work_id} in two sets"
                    where[(p, work_id)] = (name, score)
            # no work lost or duplicated: each id in exactly the set of its model state
            for name in SETS:
                expected = {m.id for m in models if m.pipeline == p and m.state == name}
                assert set(members[name]) == expected, (p, name)
            # priority, then FIFO: the queued set's order is the model's withdraw order
            assert list(members["queued"]) == [m.id for m in self.queue_order(p)], p
            assert next(replies) == self.stream[p], "one stream entry per finished work"
            stats = {key.decode(): int(v) for key, v in next(replies).items()}
            assert stats == {k: v for k, v in self.stats[p].items() if v}, p
            # the results index: exactly the finished works indexed since, at their stop
            index = {i.decode(): score for i, score in next(replies)}
            indexed = [m for m in models if m.pipeline == p and m.indexed]
            assert all(m.state in TERMINAL for m in indexed), "only finished works"
            assert index == {m.id: members[m.state][m.id] for m in indexed}, p
            counts = {name: len(members[name]) for name in SETS}
            assert self.client.counts(p) == counts

        for m in models:
            status, attempt, stop = next(replies)
            if m.state == "deleted":
                assert (status, attempt, stop) == (None, None, None), m
                assert m.key not in where, m
                continue
            assert status is not None, f"record of {m.key} lost"
            assert status.decode() == STATUS_FIELD.get(m.state, m.state), m
            assert int(attempt) == m.attempt, m
            if m.state in TERMINAL:
                # terminal works never move again: same set, score and stop time
                name, score = where[m.key]
                assert stop is not None and int(stop) == int(score), m
                snapshot = (name, score, stop)
                assert self.frozen.setdefault(m.key, snapshot) == snapshot, m


MACHINE_SETTINGS = hsettings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.timeout(600)  # passing takes ~15 s; shrinking a failure can take minutes
def test_queue_matches_its_model(settings: Settings) -> None:
    # Sweeps here reclaim and promote everything due at once, as the model does.
    QueueMachine.settings_ = settings.replace(recover_limit=10_000)
    STEPS.clear()
    started = time.monotonic()
    run_state_machine_as_test(QueueMachine, settings=MACHINE_SETTINGS)
    steps = STEPS["checks"] - STEPS["examples"]
    elapsed = time.monotonic() - started
    print(f"\nstateful: {steps} steps in {STEPS['examples']} examples, {elapsed:.1f} s")
    assert steps >= 1000, STEPS
