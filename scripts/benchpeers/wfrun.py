"""`workflow run`, counting the client's round trips (run under py-spy by `profile.py`).

`python -m benchpeers.wfrun COUNTS_FILE -- <workflow CLI arguments>`: every
`send_packed_command` of redis-py is one request sent (a pipeline sends its commands in
one), counted per command name; the counts go to COUNTS_FILE as JSON at exit.
"""

from __future__ import annotations

import atexit
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from redis.connection import AbstractConnection

sent: Counter[str] = Counter()
_send = AbstractConnection.send_packed_command


def _counting_send(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
    """Count one request, named by its first command (`EVALSHA`, `BLPOP`, a pipeline...)."""
    first = command[0] if isinstance(command, list) and command else command
    head = bytes(first[:64]) if isinstance(first, bytes | bytearray | memoryview) else b""
    parts = head.split(b"\r\n")
    sent[parts[2].decode(errors="replace").upper() if len(parts) > 2 else "?"] += 1
    _send(self, command, check_health)


def main() -> None:
    counts_file = Path(sys.argv[1])
    args = sys.argv[sys.argv.index("--") + 1 :]
    AbstractConnection.send_packed_command = _counting_send  # type: ignore[method-assign]
    atexit.register(lambda: counts_file.write_text(json.dumps(dict(sent))))
    from workflow.cli.main import cli

    cli.main(args=args, prog_name="workflow")


if __name__ == "__main__":
    main()
