"""The interpreter's thread switch interval while a cloud flow run reports.

A reporting flow run has two background threads (the writer's serializer and sender) that
wait on the network most of the time and then need the GIL for a moment, while the engine's
thread runs task after task without blocking. With CPython's default switch interval
(5 ms) each of their turns can wait up to 5 ms for the engine to let go; a map of 100,000
children took ~8% longer so. While at least one cloud flow run of the process is reporting,
the interval is at most :data:`REPORTING_SWITCH_INTERVAL`; the value found before is put
back when the last one ends (unless something else changed it meanwhile).
"""

from __future__ import annotations

import sys
import threading

#: seconds: the switch interval while a cloud flow run reports
REPORTING_SWITCH_INTERVAL = 0.0005

_lock = threading.Lock()
_reporting = 0
_saved: float | None = None


def enter() -> None:
    """A flow run starts reporting: lower the interval to :data:`REPORTING_SWITCH_INTERVAL`."""
    global _reporting, _saved
    with _lock:
        if _reporting == 0:
            current = sys.getswitchinterval()
            if current > REPORTING_SWITCH_INTERVAL:
                _saved = current
                sys.setswitchinterval(REPORTING_SWITCH_INTERVAL)
        _reporting += 1


def leave() -> None:
    """A flow run stopped reporting: the last one puts the interval found before back."""
    global _reporting, _saved
    with _lock:
        _reporting = max(0, _reporting - 1)
        if _reporting == 0 and _saved is not None:
            if sys.getswitchinterval() == REPORTING_SWITCH_INTERVAL:
                sys.setswitchinterval(_saved)
            _saved = None
