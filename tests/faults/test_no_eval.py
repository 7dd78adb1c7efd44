"""User payloads are never unpickled or evaluated: no module of the package (the library
and the CLI) imports a pickling module or calls eval/exec/compile/__import__, reads a
multiprocessing pipe with `recv()` (which unpickles; children speak msgspec JSON through
`recv_bytes`), or loads YAML unsafely; no Lua script compiles code from data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "workflow").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve",
                  "jsonpickle"}  # fmt: skip
BANNED_CALLS = {"eval", "exec", "compile", "__import__", "literal_eval"}
BANNED_METHODS = {"recv", "loads", "load", "unsafe_load", "full_load", "eval", "exec",
                  "literal_eval", "__import__"}  # fmt: skip
"""`recv` unpickles; `loads`/`load` are the pickle/marshal/yaml entry points (msgspec is
used through Decoder objects and `msgspec.json.decode`). (`re.compile` is fine.)"""


def test_the_sources_are_found() -> None:
    names = {p.name for p in SOURCES}
    assert {"codec.py", "pool.py", "worker.py", "works.py", "main.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle_no_eval(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = {a.name.split(".")[0] for a in node.names} & BANNED_MODULES
            assert not found, f"{path}:{node.lineno} imports {found}"
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in BANNED_MODULES, (path, node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id not in BANNED_CALLS, f"{path}:{node.lineno} calls {func.id}"
            elif isinstance(func, ast.Attribute):
                assert func.attr not in BANNED_METHODS, (
                    f"{path}:{node.lineno} calls .{func.attr}()"
                )


@pytest.mark.parametrize("path", sorted((ROOT / "workflow" / "lua").rglob("*.lua")),
                         ids=lambda p: p.name)  # fmt: skip
def test_no_lua_script_compiles_code(path: Path) -> None:
    text = path.read_text()
    for banned in ("loadstring", "load(", "dofile", "require"):
        assert banned not in text, f"{path.name} uses {banned}"
