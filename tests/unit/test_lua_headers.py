"""Every Lua script has its header in fixed order, and callers pass exactly its KEYS."""

from __future__ import annotations

import re

import pytest

from workflow import core, keys, query
from workflow.scripting import SCRIPT_NAMES, load
from workflow.settings import Settings
from workflow.work import Failure, Work

S = Settings(url="redis://unused")
WORK = Work(pipeline="p", id="w1")
CALLS: dict[str, core.Call] = {
    "deposit": core.deposit_call(S, "p", [WORK]),
    "withdraw": core.withdraw_call(S, "p", 1, core.Filters(), "tok", 0.5),
    "renew": core.renew_call(S, "p", [("w1", "tok:1")]),
    "complete": core.complete_call(S, "p", "w1", "tok:1", "success", 0.5),
    "update": core.update_call(S, WORK, "", "queued"),
    "cancel": core.cancel_call(S, "p", "w1", Failure(kind="cancelled")),
    "delete": core.delete_call(S, "p", "w1"),
    "requeue_expired": core.requeue_expired_call(S, "p", 0.5),
    "retry": core.retry_call(S, "p", "w1"),
    "index": query.index_call(S, "p", [("1-0", "w1")]),
    "expire": query.expire_call(S, "p", 10),
    "find": query.find_call(
        S, "p", query.Query.make(event=[1, 2], tags=["a", "b"], user="u", site="s", group="g")
    ),
}


def header(name: str) -> list[str]:
    lines = load(name).source.splitlines()
    out = []
    for line in lines:
        if not line.startswith("--"):
            break
        out.append(line)
    return out


def test_every_script_file_is_listed_and_has_a_caller() -> None:
    from importlib import resources

    files = {p.name[:-4] for p in resources.files("workflow").joinpath("lua").iterdir()
             if p.name.endswith(".lua")}  # fmt: skip
    assert files == set(SCRIPT_NAMES) == set(CALLS)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_header_order(name: str) -> None:
    text = "\n".join(header(name))
    assert text.startswith(f"-- {name}: "), "first line: '-- <name>: <purpose>'"
    first_key = "-- KEYS[1..n]" if load(name).n_keys == -1 else "-- KEYS[1]"
    positions = [
        text.find(marker) for marker in (first_key, "-- ARGV[1]", "-- Returns:", "-- Errors:")
    ]
    assert all(p >= 0 for p in positions), f"{name}: header lacks KEYS/ARGV/Returns/Errors"
    assert positions == sorted(positions), f"{name}: header out of order"


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_keys_numbered_and_match_caller(name: str) -> None:
    numbers = [int(n) for n in re.findall(r"^-- KEYS\[(\d+)\]", "\n".join(header(name)), re.M)]
    if load(name).n_keys == -1:  # variadic: KEYS[1..n], every key of one pipeline
        assert numbers == [] and len(CALLS[name].keys) > 1
        return
    assert numbers == list(range(1, len(numbers) + 1))
    assert load(name).n_keys == len(numbers) == len(CALLS[name].keys)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_keys_single_slot(name: str) -> None:
    tags = {re.search(r"\{[^}]*\}", k).group(0) for k in CALLS[name].keys}  # type: ignore[union-attr]
    assert tags == {"{p}"}, f"{name}: keys span several hash tags"
    assert all(k.startswith(keys.DEFAULT_PREFIX + ":") for k in CALLS[name].keys)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_keys_bound_to_names_before_use(name: str) -> None:
    """`local x = KEYS[i]` at the top: no KEYS[...] indexing after the bindings."""
    lines = load(name).source.splitlines()
    first_code = next(i for i, line in enumerate(lines) if not line.startswith("--"))
    uses = [i for i, line in enumerate(lines) if "KEYS[" in line and not line.startswith("--")]
    assert all(i < first_code + 6 for i in uses) or name == "delete" or load(name).n_keys == -1


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_includes_resolved(name: str) -> None:
    assert "--@include" not in load(name).source
