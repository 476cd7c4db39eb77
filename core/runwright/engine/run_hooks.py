"""Which implementations of the hooks a task run fires are called, for one task.

A task run fires ``runwright_task_run_initialize``, ``runwright_task_state_change`` (once
per transition) and ``runwright_task_run_end``. :class:`TaskRunHooks` holds, for each, the
dispatch entry to call, or None when a call would do nothing: no installed plugin
implements the hook, or every implementation is scoped away from this task with
:func:`runwright.hookspecs.for_tasks` (runwright-cache watches only tasks with
``cache_for``), and no call monitor (the ``hook_recorder`` fixture) watches. The task runner
then skips the call, and what it would have built for it (the ``TaskRunSetup``).

The answers are computed once per plugin set and task: the flow runner computes the
unscoped ones once per flow run and hands them to every task runner, which narrows them to
its task (:meth:`TaskRunHooks.for_task`, a predicate call per scoped implementation) when
its first run starts; mapped children share their parent's. A task runner checks with one
identity comparison, at the start of each task run, that the plugin set has not changed
since. The hooks a task run calls are those of the plugin set when it started, for all its
transitions: a plugin registered (or unregistered) during a task run is called (or no
longer called) from the next task run on, whatever else is installed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from runwright.hookspecs import TASK_RUN_HOOKS

if TYPE_CHECKING:
    from runwright.plugins.dispatch import DispatchEntry

INITIALIZE, STATE_CHANGE, RUN_END = TASK_RUN_HOOKS

logger = logging.getLogger("runwright.plugins")


_SLOTS = ("initialize", "state_change", "run_end")


class TaskRunHooks:
    """``initialize``, ``state_change``, ``run_end``: the entry to call, or None (no call)."""

    __slots__ = ("_narrowed", "_scopes", "initialize", "run_end", "scoped", "state_change", "table")

    def __init__(self, pm: Any) -> None:
        self.table = pm.dispatch_table
        entries = [pm.dispatch_entry(name) for name in TASK_RUN_HOOKS]
        self.initialize, self.state_change, self.run_end = (None if entry.idle else entry for entry in entries)
        #: (predicate, plugin, hook) of every scoped implementation, entry by entry
        self._scopes = tuple(
            (impl.scope, impl.plugin, name) for name, entry in zip(TASK_RUN_HOOKS, entries, strict=True) for impl in entry.scopes
        )
        #: some implementation is scoped to tasks: :meth:`for_task` narrows these entries
        self.scoped = bool(self._scopes)
        #: the narrowed hooks, by the predicates' answers
        self._narrowed: dict[tuple[bool, ...], TaskRunHooks] = {}

    def holds_for(self, pm: Any) -> bool:
        """True while ``pm``'s plugin set and monitors are those these answers were made for."""
        return self.table is pm.dispatch_table

    def for_task(self, task: Any) -> TaskRunHooks:
        """These hooks as the runs of ``task`` see them (self when nothing is scoped): one
        call of each scope's predicate, then a lookup."""
        if not self.scoped:
            return self
        scopes = self._scopes
        key: tuple[bool, ...]
        if len(scopes) == 1:  # one scoped implementation (runwright-cache's): no list to build
            predicate, plugin, name = scopes[0]
            try:
                key = (True,) if predicate(task) else (False,)
            except Exception as exc:  # noqa: BLE001 - a broken scope must not hide runs from its plugin
                _scope_raised(plugin, name, task, exc)
                key = (True,)
        else:
            answers = []
            for predicate, plugin, name in scopes:
                try:
                    answers.append(bool(predicate(task)))
                except Exception as exc:  # noqa: BLE001 - as above
                    _scope_raised(plugin, name, task, exc)
                    answers.append(True)
            key = tuple(answers)
        narrowed = self._narrowed.get(key)
        if narrowed is None:
            narrowed = self._narrowed[key] = self._narrow(key)
        return narrowed

    def _narrow(self, answers: tuple[bool, ...]) -> TaskRunHooks:
        narrowed = TaskRunHooks.__new__(TaskRunHooks)
        narrowed.table = self.table
        narrowed.scoped = False
        narrowed._scopes = ()
        narrowed._narrowed = {}
        start = 0
        for slot in _SLOTS:
            entry: DispatchEntry | None = getattr(self, slot)
            if entry is not None and entry.scoped:
                count = len(entry.scopes)
                entry = entry.narrowed(answers[start : start + count])
                start += count
                if entry.idle:
                    entry = None
            setattr(narrowed, slot, entry)
        return narrowed


def _scope_raised(plugin: Any, name: str, task: Any, exc: Exception) -> None:
    logger.error(
        "Plugin '%s': the for_tasks() scope of its %s raised for task '%s': %r; the "
        "implementation is called for this task as if it had no scope. Fix the predicate "
        "(it receives the task).",
        plugin,
        name,
        getattr(task, "name", task),
        exc,
    )
