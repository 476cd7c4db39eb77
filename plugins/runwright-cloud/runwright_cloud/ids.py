"""Task run ids named by the client: UUIDs of version 7 (RFC 9562) in creation order.

A fresh map's children are created on the server by their first state writes, under the ids
this module draws (see :class:`runwright_cloud.reporting.reports.ChildRuns`). The layout is
the server's own: a 48-bit millisecond timestamp, a 42-bit sequence (monotonic within this
process) and 32 random bits, so ids drawn one after the other keep the server's indexes
keyed by task run id growing at their right edge. Ids are made 256 at a time (one clock read,
one system call for the random bits); a forked child process starts a pool of its own.
"""

from __future__ import annotations

import os
import threading
import time

_SEQUENCE_BITS = 42
#: ids made at a time (one clock read and one system call for random bits per block)
_BLOCK = 256
_lock = threading.Lock()
#: [the last block's millisecond, the last sequence number used in it]
_last = [0, -1]
#: ids made and not handed out yet, the next one last
_pool: list[str] = []


def new_id() -> str:
    """A new task run id (a lowercase UUID string with hyphens), greater than the ones this
    process drew before."""
    with _lock:
        if not _pool:
            _refill()
        return _pool.pop()


def _refill() -> None:
    millis = max(time.time_ns() // 1_000_000, _last[0])
    first = _last[1] + 1 if millis == _last[0] else 0
    if first + _BLOCK > 1 << _SEQUENCE_BITS:  # this millisecond's sequence is used up: borrow the next
        millis, first = millis + 1, 0
    _last[0], _last[1] = millis, first + _BLOCK - 1
    noise = os.urandom(4 * _BLOCK).hex()
    stamp = f"{millis:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"  # the timestamp, then version 7
    ids = []
    for i in range(_BLOCK):
        sequence = first + i
        low = sequence & ((1 << 30) - 1)
        # rand_a: the sequence's high 12 bits; then the RFC 9562 variant (0b10) and its low
        # 30 bits; then 32 random bits
        ids.append(
            f"{head}{sequence >> 30:03x}-{0x8000 | (low >> 16):04x}-{low & 0xFFFF:04x}{noise[8 * i : 8 * i + 8]}"
        )
    ids.reverse()
    _pool[:] = ids


def _after_fork() -> None:
    _pool.clear()  # never the parent's ids (or random bits) twice
    _last[0], _last[1] = 0, -1


os.register_at_fork(after_in_child=_after_fork)
