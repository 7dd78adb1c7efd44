"""Running one work: resolve what to run, call it, turn what it returns into an outcome.

Modes, in order of precedence:
1. a function given on the command line, else the work's own `function` (dotted path):
   - a Click command: invoked with arguments built from `parameters`;
   - a function whose first parameter is annotated `Work`: called with the whole work
     and returns it (whole-Work mode);
   - any other callable: called with `**parameters` (the pipeline interface) and returns
     a results dict, `(results, products, plots)`, or None;
2. the work's `command` (argv list): run as a subprocess; a non-zero exit is a failure.

Nothing here knows about Redis or processes: the worker's children call `execute()`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import subprocess
import time
import weakref
from collections.abc import Callable
from typing import Any

import msgspec

from workflow.errors import ValidationError
from workflow.work import Failure, Work

__all__ = ["Outcome", "click_args", "execute", "failure_from", "resolve"]

OUTPUT_TAIL = 4000
"""Characters of a command's stdout/stderr kept in its results."""
_json = msgspec.json.Encoder()


class Outcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one attempt produced: outputs on success, a failure record otherwise."""

    ok: bool
    results: Any = None
    products: list[str] | None = None
    plots: list[str] | None = None
    failure: Failure | None = None
    skipped: bool = False  # (pool) the work was taken back before it started: not run


_cache: dict[str, Callable[..., Any]] = {}
_whole_work: weakref.WeakKeyDictionary[Callable[..., Any], bool] = weakref.WeakKeyDictionary()


def resolve(path: str) -> Callable[..., Any]:
    """Import `module.sub.function` (cached). Raises `ValidationError` if it cannot."""
    if path in _cache:
        return _cache[path]
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValidationError("function", "must be a dotted path 'module.function'", path)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised at import
        raise ValidationError(
            "function", f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValidationError("function", f"module {module_name!r} has no {attr!r}", path)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValidationError("function", "must name a callable", path)
    _cache[path] = obj
    return obj


def click_args(parameters: dict[str, Any] | None) -> list[str]:
    """Command-line arguments for a Click command: `{"n_beams": 3, "fast": True,
    "files": ["a", "b"]}` -> `--n-beams 3 --fast --files a --files b`; False and None are
    left out."""
    args: list[str] = []
    for key, value in (parameters or {}).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list | tuple):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def execute(
    work: Work, function: str | None = None, max_result_bytes: int | None = None
) -> Outcome:
    """Run `work` once and report the outcome; never raises for user errors. Outputs
    larger than `max_result_bytes` (JSON of results + products + plots) are not kept:
    the attempt fails with kind `too-large`."""
    target = function or work.function
    try:
        if target:
            outcome = _call(resolve(target), work)
        elif work.command:
            outcome = _command(work.command)
        else:
            return Outcome(ok=False, failure=Failure(
                kind="config",
                message="nothing to run: no function given to the worker, and the work has "
                "neither `function` nor `command`",
            ))  # fmt: skip
    except Exception as exc:  # the user's code failed: that is a result, not a crash
        return Outcome(ok=False, failure=failure_from(exc))
    return _limited(outcome, max_result_bytes)


def _limited(outcome: Outcome, max_bytes: int | None) -> Outcome:
    """`outcome`, or a `too-large` failure (outputs dropped) if its outputs exceed `max_bytes`."""
    if max_bytes is None:
        return outcome
    size = sum(len(_json.encode(getattr(outcome, n))) for n in ("results", "products", "plots"))
    if size <= max_bytes:
        return outcome
    return Outcome(ok=False, failure=Failure(
        kind="too-large", time=time.time(),
        message=f"the work's output is {size} bytes of JSON (results, products and plots); "
        f"max_result_bytes is {max_bytes}",
    ))  # fmt: skip


def _call(fn: Callable[..., Any], work: Work) -> Outcome:
    import click

    if isinstance(fn, click.Command):
        returned = fn.main(args=click_args(work.parameters), standalone_mode=False)
        return _normalise(returned, fn.name or "command")
    if _wants_work(fn):
        returned = fn(work)
        if not isinstance(returned, Work):
            return _bad_return(fn, returned, "a Work (whole-Work mode)")
        if returned.status == "failure":
            return Outcome(ok=False, failure=returned.error or Failure(
                kind="exception", message="the function returned the work with status failure"
            ))  # fmt: skip
        return _checked(Outcome(ok=True, results=returned.results,
                                products=returned.products, plots=returned.plots), fn)  # fmt: skip
    return _normalise(fn(**(work.parameters or {})), fn)


def _wants_work(fn: Callable[..., Any]) -> bool:
    """Whether `fn` takes the whole Work (its first parameter is annotated `Work`);
    asked once per function (`inspect.signature` costs ~15 us a call)."""
    try:
        return _whole_work[fn]
    except (KeyError, TypeError):  # TypeError: an unhashable callable
        pass
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    wants = bool(params) and params[0].annotation in (Work, "Work")
    with contextlib.suppress(TypeError):
        _whole_work[fn] = wants
    return wants


def _normalise(returned: Any, fn: Any) -> Outcome:
    if returned is None or isinstance(returned, dict):
        return _checked(Outcome(ok=True, results=returned), fn)
    if isinstance(returned, tuple) and len(returned) == 3:
        results, products, plots = returned
        if (results is None or isinstance(results, dict)) and all(
            x is None or (isinstance(x, list) and all(isinstance(p, str) for p in x))
            for x in (products, plots)
        ):
            return _checked(Outcome(ok=True, results=results, products=products, plots=plots), fn)
    return _bad_return(fn, returned, "a results dict, (results, products, plots) or None")


def _checked(outcome: Outcome, fn: Any) -> Outcome:
    from workflow.codec import check_json

    try:
        for name in ("results", "products", "plots"):
            check_json(name, getattr(outcome, name))
    except ValidationError as exc:
        return Outcome(ok=False, failure=Failure(
            kind="bad-return", message=f"{_name(fn)} returned data that cannot be stored: {exc}"
        ))  # fmt: skip
    return outcome


def _bad_return(fn: Any, returned: Any, expected: str) -> Outcome:
    got = type(returned).__name__
    return Outcome(ok=False, failure=Failure(
        kind="bad-return", message=f"{_name(fn)} returned {got}: expected {expected}"
    ))  # fmt: skip


def _command(argv: list[str]) -> Outcome:
    from workflow.pool import die_with_parent

    proc = subprocess.run(
        argv, capture_output=True, text=True, errors="replace", check=False,
        preexec_fn=die_with_parent,  # a SIGKILLed worker leaves no command running
    )  # fmt: skip
    results = {
        "returncode": proc.returncode,
        "stdout": proc.stdout[-OUTPUT_TAIL:],
        "stderr": proc.stderr[-OUTPUT_TAIL:],
    }
    if proc.returncode == 0:
        return Outcome(ok=True, results=results)
    return Outcome(ok=False, results=results, failure=Failure(
        kind="exit", message=f"command {argv[0]!r} exited with code {proc.returncode}: "
        + (proc.stderr.strip().splitlines() or [""])[-1][:500],
    ))  # fmt: skip


def failure_from(exc: BaseException) -> Failure:
    """A failure record for an exception raised by user code: one line and the traceback."""
    import traceback

    first = (str(exc).splitlines() or [""])[0]
    return Failure(
        kind="exception",
        message=f"{type(exc).__name__}: {first}"[:1000],
        traceback="".join(traceback.format_exception(exc))[-20_000:],
        time=time.time(),
    )


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "name", None) or repr(fn)
