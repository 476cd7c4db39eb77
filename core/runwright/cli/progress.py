"""Live progress of a flow run: a rich display on a terminal, plain lines otherwise.

It is a plugin registered on the plugin manager for the duration of one ``runwright run``:
it only counts transitions, so it costs a few dict operations per task state change. Task
runs whose hooks fire in other processes (Dask worker processes) reach it through their
executor's ``report_finished_runs`` instead.
"""

from __future__ import annotations

import threading
from typing import Any

import click

from runwright.engine.state import Failed, Finished, State
from runwright.hookspecs import hookimpl


class ProgressReporter:
    """Counts each task once, when it first reaches a finished state (a task that succeeds
    and is then cached, or retries, is still one task); a mapped parent is counted and shown
    when it becomes Mapped, with its number of children, and its children are not counted."""

    def __init__(self, total: int, live: bool) -> None:
        self.total = total
        self.live = live
        self.finished: set[str] = set()
        self.failed = 0
        self.running: set[str] = set()
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task_id: Any = None

    @property
    def done(self) -> int:
        return len(self.finished)

    def __enter__(self) -> ProgressReporter:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._progress.start()
            self._task_id = self._progress.add_task("tasks", total=self.total, detail="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()

    def _refresh(self) -> None:
        detail = f"running {len(self.running)}  failed {self.failed}"
        self._progress.update(self._task_id, completed=self.done, detail=detail)

    @hookimpl
    def runwright_task_state_change(self, runner: Any, task: Any, old_state: State, new_state: State) -> None:
        from runwright.context import context

        if context.get("map_index") is not None:
            return  # count tasks, not mapped children
        name = context.get("task_full_name") or task.name
        if new_state.is_running():
            with self._lock:
                self.running.add(name)
                if self._progress is not None:
                    self._refresh()
        elif new_state.is_finished():
            children = len(new_state.map_states) if new_state.is_mapped() else None  # type: ignore[attr-defined]
            self._finished(name, type(new_state), children)

    def task_finished(self, task: Any, state_type: type[State], map_count: int | None) -> None:
        """An executor's report of a task run that finished where this process's hooks do
        not fire (Dask worker processes): see ``Executor.report_finished_runs``."""
        if issubclass(state_type, Finished):
            self._finished(task.name, state_type, map_count)

    def _finished(self, name: str, state_type: type[State], children: int | None) -> None:
        with self._lock:
            if name in self.finished:
                return
            self.running.discard(name)
            self.finished.add(name)
            if issubclass(state_type, Failed):
                self.failed += 1
            if self._progress is not None:
                self._refresh()
                return
            line = f"[{self.done}/{self.total}] {name}: {state_type.__name__}"
            if children is not None:
                line += f" ({children} children)"
            click.echo(line)  # under the lock: lines print in the order they are counted
