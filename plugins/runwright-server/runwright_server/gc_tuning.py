"""The server process's cyclic garbage collector: started objects frozen, young collections spaced out.

A server process holds a few hundred thousand long-lived container objects once it has
started (FastAPI's routes and schemas, pydantic's validators, SQLAlchemy's compiled
statements, the warm-up's caches), and every request makes thousands of short-lived ones
(a batch of 500 state writes: its parsed body, the validated items, the rows for the
driver), nearly all freed by reference counting. With the interpreter's default thresholds
(a young collection every 700 new objects) a batch triggers several collections, each
walking the batch's live objects again, and the older generations' collections walk the
started objects: about a fifth of the server's CPU in a large map's run (perf, N = 30,000).

:func:`settle` (called by ``runwright-server start`` once the app has started, before it
serves) moves every object alive then out of the collector's reach (``gc.freeze``: they are
never collected, as a server never frees them anyway) and makes a young collection come every
:data:`YOUNG_THRESHOLD` new objects, as the engine does while it runs a flow
(:mod:`runwright.gc_quiet`). Cyclic garbage is still collected, in larger batches: at most
about that many objects wait for it. A process whose collector is disabled, or whose first
threshold is already larger, keeps its thresholds.
"""

from __future__ import annotations

import gc

#: new container objects between two young collections in a started server
YOUNG_THRESHOLD = 50_000


def settle() -> None:
    """Freeze the objects alive now and space young collections out (see the module docstring)."""
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if gc.isenabled() and 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, *older)
