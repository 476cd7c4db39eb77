"""Which of the hooks a task run fires have anything to call.

A task run fires ``runwright_task_run_initialize``, ``runwright_task_state_change`` (once
per transition) and ``runwright_task_run_end``. When no installed plugin implements one of
them and no call monitor (the ``hook_recorder`` fixture) watches, a call would do nothing:
the task runner then skips it, and what it would have built for it (the ``TaskRunSetup``).
The answers are computed once per plugin set: the flow runner computes them once per flow
run and hands them to every task runner; a task runner checks with one identity comparison
that the plugin set has not changed since (a plugin registered during a run is called from
the next transition on).
"""

from __future__ import annotations

from typing import Any

INITIALIZE = "runwright_task_run_initialize"
STATE_CHANGE = "runwright_task_state_change"
RUN_END = "runwright_task_run_end"


class TaskRunHooks:
    """``initialize``, ``state_change``, ``run_end``: True when that hook has a caller."""

    __slots__ = ("initialize", "run_end", "state_change", "table")

    def __init__(self, pm: Any) -> None:
        self.table = pm.dispatch_table
        self.initialize = not pm.hook_is_idle(INITIALIZE)
        self.state_change = not pm.hook_is_idle(STATE_CHANGE)
        self.run_end = not pm.hook_is_idle(RUN_END)

    def holds_for(self, pm: Any) -> bool:
        """True while ``pm``'s plugin set and monitors are those these answers were made for."""
        return self.table is pm.dispatch_table
