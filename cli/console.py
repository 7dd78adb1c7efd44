"""What every command shares: the consoles, the theme, error handling, the client."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.theme import Theme

from workflow import Client, Settings, WorkflowError

__all__ = ["THEME", "client_from", "err", "handle_errors", "out"]

THEME = Theme(
    {
        "status.created": "dim",
        "status.queued": "cyan",
        "status.delayed": "blue",
        "status.running": "yellow",
        "status.success": "green",
        "status.failure": "bold red",
        "status.cancelled": "magenta",
        "status.paused": "bold yellow",
        "status.stale": "bold red",
        "error": "bold red",
    }
)
out = Console(theme=THEME)
err = Console(theme=THEME, stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Expected errors become one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WorkflowError as exc:
            one_line = " ".join(str(exc).split())  # e.g. a server log tail: still one line
            err.print(f"[error]error:[/] {escape(one_line)}", highlight=False)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def client_from(ctx: click.Context) -> Client:
    """The Client for the options of the root command."""
    obj = ctx.find_root().obj or {}
    prefix = obj.get("prefix")
    return Client(Settings(url=obj.get("url"), prefix="workflow" if prefix is None else prefix))
