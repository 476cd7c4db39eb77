"""Fewer cyclic-garbage collections while a flow is built or run.

Building or running a wide flow makes container objects (tasks, edges, states, dicts) fast
and keeps nearly all of them: with the interpreter's default thresholds (a young collection
every 700 new objects) the collector walks them again and again for nothing. Inside
``with spaced_collections():`` (used by ``with Flow(...)`` and by every flow run) a young
collection comes every 100,000 new objects instead; the thresholds the process had are put
back on exit. Garbage is still collected during the block, only in larger batches: at most
about 100,000 objects wait for it. Measured with callgrind: about 5,000 fewer instructions
per task when building a chain of 10,000 to 30,000 tasks (72k instead of 77k).

Nested and concurrent blocks change the thresholds once (the outermost); a process whose
collector is disabled, or whose first threshold is already larger, is left as it is.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: new container objects between two young collections inside the block
YOUNG_THRESHOLD = 100_000

_lock = threading.Lock()
_depth = 0
#: the thresholds to put back when the outermost block ends (None: they were left as they were)
_saved: tuple[int, ...] | None = None


@contextmanager
def spaced_collections() -> Iterator[None]:
    """Space young collections out for the duration of the block (see the module docstring)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            current = gc.get_threshold()
            if gc.isenabled() and 0 < current[0] < YOUNG_THRESHOLD:
                _saved = current
                gc.set_threshold(YOUNG_THRESHOLD, *current[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
