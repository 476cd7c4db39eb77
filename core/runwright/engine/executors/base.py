"""The executor interface: what the flow runner asks of an executor, and what it promises.

A flow run hands an executor *task runs*: ``submit(fn, *args, upstream_states=..., **kwargs)``
for each task in topological order, ``map(fn, *iterables)`` for a mapped parent's children,
and ``wait(...)`` for the states it needs. The contract (checked by
:class:`runwright.testing.ExecutorContract`):

* **Upstream futures are named, never searched for.** ``upstream_states`` is the only
  argument that may hold futures of this executor: a mapping whose values are futures
  returned by this executor's ``submit`` or plain states. ``fn`` runs once every one of them
  is done, and receives ``upstream_states`` as a new dict with the same keys (same order)
  where each future is replaced by its final state (without ``upstream_states``, ``fn`` is
  called without it). Every other argument reaches ``fn`` as given: an executor never walks
  argument trees.
* **A future is done when its state is final.** When ``fn`` returns a ``Mapped`` state whose
  children are futures of this executor (a mapped parent run on a pool), its future is done
  only once every child is, and resolves to that Mapped state holding the children's states.
* **map's items hold no futures** (a mapped parent runs once its upstream is final), and
  ``map`` returns one future (or, for ``returns_futures = False``, one value) per item, in order.
* **wait** takes one future, a list/tuple of them, or a dict whose values are futures (one
  level, values that are not futures pass through) and returns the same shape with final states.
* **Work lost outside fn** (the process running it died) is recorded through the normal
  task-run path: the executor calls ``fn(*args, upstream_states=..., lost=LostRun(...), **kwargs)``
  in the submitting process (for a mapped child, the planned call with ``lost=``). ``fn`` (the
  task runner) then fires the usual task-run hooks and returns a Failed state, or a
  Retrying one as the task's retries allow (or, not ``blamed``, a Retrying state that counts
  no attempt): the executor submits it again with that state (the ``state`` keyword) when
  :func:`runwright.engine.task_runner.in_process_retry_delay` says it runs again in this
  flow run, and otherwise keeps it as the final state.
* **Finished runs, when the hooks fire elsewhere.** An executor whose task runs' hooks fire in
  other processes (``task_hooks_in_process = False``) says so from
  ``report_finished_runs(callback)`` (returns True) and then calls
  ``callback(task, state_type, map_count)`` in this process once for each task run submitted
  with a ``task`` keyword, as soon as its state is final (a mapped parent when it becomes
  Mapped, with ``map_count`` its number of children; otherwise ``map_count`` is None). This
  is how the flow runner's process (the CLI's progress display) learns of runs it cannot
  hear through hooks. It costs nothing when no callback is given. An executor whose hooks
  fire in this process returns False and never calls it: the hooks already tell.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.state import State
    from runwright.task import Task

#: ``callback(task, state_type, map_count)``: see "Finished runs" in the module docstring
FinishedRunCallback = Callable[["Task", "type[State]", "int | None"], None]


def run_with_timeout(fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """Call ``fn``; with a ``timeout`` (seconds) raise ``TimeoutError`` when it takes longer.

    The call runs in a daemon thread that receives a copy of the caller's context. Python
    cannot kill a thread: on timeout the call is abandoned, not stopped.
    """
    if timeout is None:
        return fn(*args, **kwargs)
    from runwright.context import context

    ctx = context.to_dict()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            with context(ctx):
                outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="runwright-timeout", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError("Execution timed out.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@dataclass(frozen=True)
class LostRun:
    """Why a task run's work was lost outside the task runner (its worker process died, or
    its executor task failed before the task runner could return a state).

    ``reason`` completes "Task 'name': ..." in the recorded state's message; ``error`` is the
    executor's exception, kept as the Failed state's result. ``blamed`` is False when the run
    may only have shared its worker with the work that killed it: the task runner then
    records a Retrying state that counts no attempt (the executor runs it again, alone),
    instead of Failed and the task's retry rule.
    """

    reason: str
    error: BaseException | None = None
    blamed: bool = True


class Executor:
    """Base class: ``start()`` a session, ``submit``/``map`` work, ``wait`` for results.

    See the module docstring for the contract every executor keeps.
    """

    #: True when ``submit`` returns futures rather than values. A task runner then leaves a
    #: mapped parent's children as futures (the flow runner waits for them) instead of
    #: blocking a worker.
    returns_futures = False

    #: True when the task-run hooks of the runs it executes fire in this process (in its
    #: threads included); False makes :meth:`report_finished_runs` report them instead.
    task_hooks_in_process = True

    def __init__(self) -> None:
        self.executor_id = f"{type(self).__name__}: {uuid.uuid4()}"

    @contextmanager
    def start(self) -> Iterator[None]:
        """The executor's session (a pool, a cluster connection); submit only inside it."""
        yield

    def submit(
        self, fn: Callable[..., Any], *args: Any, upstream_states: Mapping[Any, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, upstream_states=<final states>, **kwargs)`` once every future in
        ``upstream_states`` is done; return its future (or its value)."""
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        """``fn(*items)`` for each tuple of items (mapped children), in order."""
        raise NotImplementedError

    def wait(self, futures: Any) -> Any:
        """``futures`` (one, a list/tuple, or a dict's values) replaced by final states."""
        raise NotImplementedError

    def report_finished_runs(self, callback: FinishedRunCallback) -> bool:
        """Call ``callback(task, state_type, map_count)`` in this process as each task run
        ends, when its hooks fire elsewhere; return whether it will (see the module
        docstring). Here the hooks fire in this process: False, never called."""
        return False

    timeout_handler = staticmethod(run_with_timeout)
