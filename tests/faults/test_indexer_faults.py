"""The results indexer thread of a worker must never die: a race between indexers over
the completion stream, or any unexpected error, is survived and indexing goes on.

Found by the kill test: with a second consumer group on the done stream, an indexer
whose XINFO GROUPS saw entries pending that another indexer acknowledged before its
XPENDING crashed on the empty reply, and its thread died with a traceback."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from workflow import Client, Results, Work
from workflow.indexer import Indexer
from workflow.query import GROUP

from ..helpers import keys, wait_until

P = "faults-index"


def _finish(client: Client, n: int) -> None:
    client.deposit([Work(pipeline=P, id=f"i{i}") for i in range(n)])
    for work in client.withdraw(P, count=n):
        client.complete(work, "success")


def test_trim_survives_entries_acknowledged_between_its_two_reads(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _finish(client, 3)
    stream = keys(client, P).done
    mine = Indexer(client, [P], consumer="a")
    mine._ensure_group(P)
    client.redis.xgroup_create(stream, "another-reader", id="$")  # read everything
    client.redis.xreadgroup(GROUP, "b", {stream: ">"}, count=10)  # pending for "b"

    def acknowledged_meanwhile(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"pending": 0, "min": None, "max": None, "consumers": []}

    monkeypatch.setattr(client.redis, "xpending", acknowledged_meanwhile)
    mine._trim(P)  # raised AttributeError before the fix
    monkeypatch.undo()
    # Trimmed to the last entry both groups have read (XTRIM MINID keeps that one).
    assert client.redis.xlen(stream) == 1


def test_the_index_loop_survives_an_unexpected_error(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer = Indexer(client, [P], consumer="a")
    real = indexer.run_once
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug")
        return real()

    monkeypatch.setattr(indexer, "run_once", flaky)
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stop, 0.05), daemon=True)
    thread.start()
    _finish(client, 5)
    try:
        wait_until(lambda: Results(client).count(P, status="success", tags=None) == 5
                   and indexer.indexed == 5, 10, 0.05, what="the works to be indexed")  # fmt: skip
        assert thread.is_alive() and calls["n"] > 1
    finally:
        stop.set()
        thread.join(5)
