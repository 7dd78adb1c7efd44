"""Work ids: 26-character ULIDs (48-bit ms timestamp + 80 random bits, Crockford base32),
so ids sort by creation time and never collide in practice. Within one process they are
monotonic: an id made in the same millisecond as the last is that one plus 1, so ids
made one after another sort in that order (ties in stop times then list newest first)."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
"""The two base-32 digits of every 10-bit value."""
_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """A new time-sortable id, greater than every id this process made before."""
    global _last
    with _lock:
        value = (time.time_ns() // 1_000_000) << _RANDOM_BITS | int.from_bytes(
            os.urandom(10), "big"
        )
        if value <= _last:  # same ms (or the clock stepped back): keep increasing
            value = _last + 1
        _last = value
    # 26 base-32 digits are 130 bits: 13 pairs of digits, 10 bits each, from a table.
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
