"""Task run ids named by the client: UUIDs of version 7 (RFC 9562) in creation order.

A fresh map's children are created on the server by their first state writes, under the ids
this module draws (see :class:`runwright_cloud.reporting.reports.ChildRuns`). The layout is
the server's own: a 48-bit millisecond timestamp, a 42-bit sequence (monotonic within this
process) and 32 random bits, so ids drawn one after the other keep the server's indexes
keyed by task run id growing at their right edge. The random bits come from the operating
system, drawn a few kilobytes at a time; a forked child process starts a pool of its own.
"""

from __future__ import annotations

import os
import threading
import time

_SEQUENCE_BITS = 42
_lock = threading.Lock()
#: [the last id's millisecond, its sequence number]
_last = [0, -1]
_random = bytearray()


def new_id() -> str:
    """A new task run id (a lowercase UUID string with hyphens)."""
    with _lock:
        millis = max(time.time_ns() // 1_000_000, _last[0])
        sequence = _last[1] + 1 if millis == _last[0] else 0
        if sequence >= 1 << _SEQUENCE_BITS:  # this millisecond's sequence is used up: borrow the next
            millis, sequence = millis + 1, 0
        _last[0], _last[1] = millis, sequence
        if not _random:
            _random.extend(os.urandom(4096))
        noise = int.from_bytes(_random[-4:], "big")
        del _random[-4:]
    value = (
        (millis << 80)
        | (0x7 << 76)  # version 7
        | ((sequence >> 30) << 64)  # the sequence's high 12 bits (rand_a)
        | (0b10 << 62)  # the RFC 9562 variant
        | ((sequence & ((1 << 30) - 1)) << 32)
        | noise
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _after_fork() -> None:
    _random.clear()  # never the parent's random bits twice
    _last[0], _last[1] = 0, -1


os.register_at_fork(after_in_child=_after_fork)
