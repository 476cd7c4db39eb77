"""Record hook calls, for tests that assert which hooks fired and in what order.

The recorder is a call monitor of the manager's dispatcher, the one code path of every hook
call: recording wraps the same loop that runs when nothing records.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from runwright.plugins import RunwrightPluginManager


@dataclass
class HookCall:
    name: str
    kwargs: dict[str, Any]


class HookRecorder:
    """Records every hook call made through ``pm`` until :meth:`close` (thread-safe; closing
    twice is harmless)."""

    def __init__(self, pm: RunwrightPluginManager) -> None:
        self.calls: list[HookCall] = []
        self._lock = threading.Lock()

        def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            with self._lock:
                self.calls.append(HookCall(hook_name, dict(kwargs)))

        def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            pass

        self._undo = pm.add_hookcall_monitoring(before, after)  # type: ignore[arg-type]

    def close(self) -> None:
        self._undo()

    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    def calls_of(self, name: str) -> list[HookCall]:
        return [call for call in self.calls if call.name == name]
