"""Live progress of a flow run: a rich display on a terminal, plain lines otherwise.

It is a plugin registered on the plugin manager for the duration of one ``runwright run``:
it only counts transitions, so it costs a few dict operations per task state change.
"""

from __future__ import annotations

import threading
from typing import Any

import click

from runwright.engine.state import State
from runwright.hookspecs import hookimpl


class ProgressReporter:
    def __init__(self, total: int, live: bool) -> None:
        self.total = total
        self.live = live
        self.done = 0
        self.failed = 0
        self.running: set[str] = set()
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task_id: Any = None

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

        name = context.get("task_full_name") or task.name
        if context.get("map_index") is not None:
            return  # count tasks, not mapped children
        with self._lock:
            if new_state.is_running():
                self.running.add(name)
            elif new_state.is_finished():
                self.running.discard(name)
                self.done += 1
                if new_state.is_failed():
                    self.failed += 1
            if self._progress is not None:
                self._refresh()
            elif new_state.is_finished() and not new_state.is_mapped():
                click.echo(f"[{self.done}/{self.total}] {name}: {type(new_state).__name__}")
