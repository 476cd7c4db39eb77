"""The process-wide plugin manager: built on first use (never at import), replaceable by
tests. Code that has a runner or a manager at hand uses that; this is for the entry points
(``flow.run()``, ``runwright.read_uri``, the CLI) and for executor workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from runwright.engine import result as _result
from runwright.plugins.manager import RunwrightPluginManager, build_plugin_manager
from runwright.plugins.results import ResultStore

_pm: RunwrightPluginManager | None = None
_pm_lock = threading.Lock()


def get_plugin_manager() -> RunwrightPluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    pm = _pm
    if pm is None:
        with _pm_lock:
            if _pm is None:
                _pm = build_plugin_manager()
            pm = _pm
    return pm


def set_plugin_manager(pm: RunwrightPluginManager | None) -> None:
    """Replace the process-wide manager (None: rebuild on next use)."""
    global _pm
    _pm = pm


@contextmanager
def use_plugin_manager(pm: RunwrightPluginManager) -> Iterator[RunwrightPluginManager]:
    """Use ``pm`` as the process-wide manager inside a ``with`` block."""
    global _pm
    previous = _pm
    _pm = pm
    try:
        yield pm
    finally:
        _pm = previous


def _process_result_store() -> ResultStore:
    return get_plugin_manager().results


# Results are plain data; their convenience methods (``to_result()``, ``store_safe_value()``
# without a store) and State.serialize() use the process-wide manager's store.
_result.set_default_result_store(_process_result_store)
