"""Work ids: 26-character ULIDs (48-bit ms timestamp + 80 random bits, Crockford base32),
so ids sort by creation time and never collide in practice. Within one process they are
monotonic: an id made in the same millisecond as the last is that one plus 1, so ids
made one after another sort in that order (ties in stop times then list newest first)."""

from __future__ import annotations

import base64
import os
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
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
    # 26 base-32 digits are 130 bits: shifted left by 6, the 128-bit value fills 17 bytes,
    # whose RFC 4648 base 32 starts with exactly those 26 digits (done in C, ~1 us).
    digits = base64.b32encode((value << 6).to_bytes(17, "big"))[:26]
    return digits.translate(_TO_CROCKFORD).decode()
