"""Client-side bookkeeping: one record per Dask task, a task run or a chunk of mapped children.

A :class:`TaskRun` is what :meth:`DaskExecutor.submit` returns (the flow runner's "future").
It knows the upstream runs named in its ``upstream_states``, the runs waiting for it, and,
for a mapped parent, the plan its worker returned and the chunks running its children.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runwright.engine.state import Mapped, State

if TYPE_CHECKING:
    from distributed import Future

    from runwright.task import Task
    from runwright_dask.worker import ChildCall


class Submission:
    """Client-side record of one Dask task: a task run, or a chunk of mapped children."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.future: Future | None = None
        #: set when the outcome is known on the client (an infrastructure failure)
        self.states: list[State] | None = None
        #: running again after it was lost with a worker that other work may have killed:
        #: lost again, it is to blame (see ``failures.py``)
        self.suspect = False
        #: lost with its worker while it was a suspect: every later loss is its own
        self.blamed = False
        #: the finished Dask task's value fetched into this process (``keeping.py``): a
        #: state, or a chunk's list of states; ``kept_event`` is set once it is here
        self.kept: Any = None
        self.kept_event = threading.Event()
        #: run again because its worker died before its state arrived: keep it for this one
        self.kept_for: Submission | None = None
        #: how often its outcome was recovered after its result was lost before it arrived
        self.recoveries = 0


class TaskRun(Submission):
    """A task run submitted by the flow runner."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        upstream_states: Mapping[Any, Any] | None,
    ) -> None:
        task = kwargs.get("task")
        super().__init__(str(getattr(task, "name", None) or getattr(fn, "__name__", "task-run")))
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.upstream_states = upstream_states
        self.task: Task | None = task
        self.maps_children = any(getattr(edge, "mapped", False) for edge in upstream_states or ())
        self.done = threading.Event()
        self.waiters: list[Callable[[], None]] = []
        self.blockers = 0
        #: upstream runs passed by their (then unfinished) future, and that future
        self.bound: list[tuple[TaskRun, Future]] = []
        #: the future of the flow runner its Dask task was given (see ``DaskExecutor._runner_of``)
        self.runner: Future | None = None
        #: how often its Dask task never ran because that future was lost (bounded)
        self.runner_losses = 0
        #: a mapped parent's returned Mapped state, children stripped, and its chunks
        self.plan: Mapped | None = None
        self.chunks: list[Chunk] = []
        self.open_chunks = 0

    def upstream_runs(self) -> list[TaskRun]:
        """The runs named in ``upstream_states`` (one level: the contract's only futures)."""
        return [value for value in (self.upstream_states or {}).values() if isinstance(value, TaskRun)]

    def __repr__(self) -> str:
        return f"<dask task run {self.name!r}{' (done)' if self.done.is_set() else ''}>"


class Chunk(Submission):
    """Consecutive mapped children run as one Dask task."""

    def __init__(self, parent: TaskRun, calls: list[ChildCall]) -> None:
        super().__init__(f"{parent.name}-children")
        self.parent = parent
        self.calls = calls


def input_of(run: TaskRun, bound: list[tuple[TaskRun, Future]]) -> tuple[str, Any]:
    """How an upstream run reaches a worker: its future while its result is on the cluster
    (worker to worker), else its state kept or recorded on the client; for a mapped parent,
    its state without children plus each chunk's future or states."""
    if run.states is not None and not _usable(run.future):
        return ("value", run.states[0])
    if run.plan is not None:
        parent = copy.copy(run.plan)
        parent.map_states = []
        parts = [chunk.future if _usable(chunk.future) else _client_side(chunk) for chunk in run.chunks]
        return ("mapped", (parent, parts))
    if run.kept_event.is_set() and not _usable(run.future):
        return ("value", run.kept)
    assert run.future is not None
    if not run.done.is_set():
        bound.append((run, run.future))
    return ("value", run.future)


def _usable(future: Future | None) -> bool:
    """True while a finished Dask task's result is on the cluster, as far as the client knows."""
    return future is not None and future.status == "finished"


def lost_input(run: TaskRun, key: str | None, already_ran: bool) -> bool:
    """True when a result of ``run`` that a downstream Dask task needed is gone from the
    cluster (its worker died; Dask was refused to compute it again, or the recomputation
    was lost too): ``key`` is the Dask task the downstream one failed for (``lost_key``),
    and ``already_ran`` says it failed with ``AlreadyRan``. The downstream run is then
    submitted again with the states kept on the client."""
    futures = [run.future] if run.plan is None else [chunk.future for chunk in run.chunks]
    if key is not None and any(f is not None and f.key == key for f in futures):
        return True
    return already_ran and any(f is not None and f.status in ("error", "cancelled", "lost") for f in futures)


def _client_side(chunk: Chunk) -> Any:
    return chunk.states if chunk.states is not None else chunk.kept


def is_kept(run: TaskRun) -> bool:
    """True when the values of ``run`` (its chunks', for a mapped parent) are here."""
    return all(sub.states is not None or sub.kept_event.is_set() for sub in (run.chunks if run.plan is not None else [run]))


def wait_until_kept(run: TaskRun, timeout: float = 60.0) -> None:
    """Wait until the values of ``run`` (its chunks', for a mapped parent) are kept here."""
    for sub in run.chunks if run.plan is not None else [run]:
        if sub.states is None:
            sub.kept_event.wait(timeout)
