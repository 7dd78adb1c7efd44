"""Load the Lua scripts shipped in `workflow/lua/` and describe them.

Each `workflow/lua/<name>.lua` is one state transition with a header (purpose, `KEYS[i]`,
`ARGV[i]`, `Returns:`, `Errors:`). A line `--@include NAME` splices in
`workflow/lua/include/NAME.lua` (shared functions), so logic is never written twice.
Scripts run through redis-py `Script` objects: EVALSHA, reloading on NOSCRIPT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["SCRIPT_NAMES", "LuaScript", "load"]

SCRIPT_NAMES: tuple[str, ...] = (
    "cancel",
    "complete",
    "delete",
    "deposit",
    "expire",
    "find",
    "index",
    "renew",
    "requeue_expired",
    "retry",
    "update",
    "withdraw",
)
"""Every transition script, by file name without `.lua`."""

_INCLUDE = re.compile(r"^--@include (\w+)$", re.MULTILINE)
_KEY_LINE = re.compile(r"^-- KEYS\[(\d+)\]", re.MULTILINE)
_VARIADIC = re.compile(r"^-- KEYS\[1\.\.n\]", re.MULTILINE)


@dataclass(frozen=True)
class LuaScript:
    """A script: its name, full source (includes resolved) and key count (-1: any
    number, declared as `KEYS[1..n]`)."""

    name: str
    source: str
    n_keys: int


def _read(*parts: str) -> str:
    return resources.files("workflow").joinpath("lua", *parts).read_text(encoding="utf-8")


@cache
def load(name: str) -> LuaScript:
    """The script `name`, with includes spliced in and its declared KEYS counted."""
    raw = _read(f"{name}.lua")
    source = _INCLUDE.sub(lambda m: _read("include", f"{m.group(1)}.lua"), raw)
    n_keys = max((int(n) for n in _KEY_LINE.findall(raw)), default=0)
    if _VARIADIC.search(raw):
        n_keys = -1
    return LuaScript(name=name, source=source, n_keys=n_keys)
