"""The failure policy: what happens when a Dask task of a flow run fails *outside* the task
runner (its worker died, or Dask could not run or return it).

* The executor decides nothing about retries. A lost task run is recorded through the
  normal task-run path, in this (the client) process: ``fn(..., lost=LostRun(reason))``
  (``FlowRunner.run_task``, or a mapped child's planned call) fires
  ``runwright_task_run_initialize``, the recorded transition (``runwright_task_state_change``),
  the core's ``check_for_retry`` and ``runwright_task_run_end``. A Retrying result that
  :func:`~runwright.engine.task_runner.in_process_retry_delay` runs again in this flow run
  is submitted again with that state; any other result is the run's final state.
* Only the culprit fails. When a worker dies, Dask reports every task it held as lost, the
  one that killed it and those that only shared it. So a run lost with its worker for the
  first time is not blamed: it is recorded as Retrying (counting no attempt) and run again
  *alone*, one such suspect at a time. A suspect lost again killed its worker itself: it is
  recorded as Failed, or Retrying as its retries allow, and later losses are its own too.
  Work that failed in Dask for another reason is blamed at once.
* A chunk of several mapped children that fails is run again child by child, one after
  the other, each a suspect: the child that killed its worker then fails (or retries)
  alone, and the others keep their own outcome.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from runwright.engine.executors import LostRun
from runwright.engine.state import Failed, Retrying, State
from runwright.engine.task_runner import in_process_retry_delay
from runwright_dask.submissions import Chunk, Submission, TaskRun

if TYPE_CHECKING:
    from distributed import Future

    from runwright_dask.worker import ChildCall

logger = logging.getLogger("runwright.dask")


def is_lost_worker(exc: BaseException | None) -> bool:
    """True for distributed's ``KilledWorker``: the task's worker died (too often)."""
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker)


def exception_of(future: Future) -> BaseException | None:
    """The exception a failed (or cancelled) Dask future ended with."""
    if future.status == "cancelled":
        from concurrent.futures import CancelledError

        return CancelledError(f"Dask task {future.key} was cancelled")
    try:
        return future.exception(timeout=30)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001
        return exc


def lost_run_of(exc: BaseException | None) -> LostRun:
    """How a Dask task that failed outside the task runner is described to the task runner."""
    if is_lost_worker(exc):
        return LostRun(f"its Dask worker died while running it ({exc})", exc)
    return LostRun(f"its Dask task failed outside the task runner: {exc!r}", exc)


def runs_again(state: State) -> bool:
    """True when a lost run's recorded state is to be submitted again in this flow run."""
    return isinstance(state, Retrying) and in_process_retry_delay(state) is not None


class FailurePolicy:
    """Applies the policy above for one :class:`~runwright_dask.executor.DaskExecutor`.

    :param resubmit_run: dispatch a task run again (its ``kwargs["state"]`` updated);
    :param settle_run: a task run's final state is known;
    :param dispatch_chunk: dispatch a chunk of mapped children;
    :param chunk_settled: a chunk's states are known.
    """

    def __init__(
        self,
        resubmit_run: Callable[[TaskRun], None],
        settle_run: Callable[[TaskRun], None],
        dispatch_chunk: Callable[[Chunk], None],
        chunk_settled: Callable[[Chunk], None],
    ) -> None:
        self.resubmit_run = resubmit_run
        self.settle_run = settle_run
        self.dispatch_chunk = dispatch_chunk
        self.chunk_settled = chunk_settled
        self._lock = threading.Lock()
        #: the suspect running alone, and the suspects waiting for their turn
        self._alone: Submission | None = None
        self._waiting: deque[tuple[Submission, Callable[[], None]]] = deque()

    # -- suspects ----------------------------------------------------------------------------
    def _run_alone(self, sub: Submission, dispatch: Callable[[], None]) -> None:
        sub.suspect = True
        with self._lock:
            go = self._alone is None
            if go:
                self._alone = sub
            else:
                self._waiting.append((sub, dispatch))
        if go:
            dispatch()

    def release(self, sub: Submission) -> bool:
        """``sub``'s Dask task ended (any outcome): True when it was a suspect; the next
        waiting suspect, if any, then starts."""
        if not sub.suspect:
            return False
        sub.suspect = False
        with self._lock:
            if self._alone is not sub:
                return True
            following = self._waiting.popleft() if self._waiting else None
            self._alone = following[0] if following is not None else None
        if following is not None:
            following[1]()
        return True

    def _blamed(self, sub: Submission, lost: LostRun) -> bool:
        """Whether ``sub``'s loss is its own (see the module docstring); releases a suspect."""
        was_suspect = self.release(sub)
        if was_suspect or sub.blamed or not is_lost_worker(lost.error):
            sub.blamed = True
            return True
        return False

    # -- task runs ------------------------------------------------------------------------
    def run_lost(self, run: TaskRun, lost: LostRun) -> None:
        """``run``'s work was lost outside the task runner: record it, then submit it again
        or settle it."""
        blamed = self._blamed(run, lost)
        state = self.record_run(run, lost if blamed else _as_bystander(lost))
        if runs_again(state):
            run.kwargs = {**run.kwargs, "state": state}
            if blamed:
                self.resubmit_run(run)
            else:
                self._run_alone(run, lambda: self.resubmit_run(run))
            return
        run.states = [state]
        self.settle_run(run)

    @staticmethod
    def record_run(run: TaskRun, lost: LostRun) -> State:
        """Record through the task runner, in this process, that ``run``'s work was lost."""
        if run.task is None:  # not a task run of a flow: nothing to record it through
            return Failed(f"Dask task {run.name!r}: {lost.reason}", result=lost.error)
        try:
            state: State = run.fn(*run.args, upstream_states={}, lost=lost, **run.kwargs)
        except Exception as exc:
            logger.exception("runwright-dask: could not record the lost task run %r", run)
            state = Failed(f"Task '{run.name}': {lost.reason} (and recording it failed: {exc!r})", result=lost.error)
        return state

    # -- chunks of mapped children -----------------------------------------------------------
    def chunk_lost(self, chunk: Chunk, lost: LostRun, replace: Callable[[Chunk, list[Chunk]], None]) -> None:
        """A chunk's work was lost outside the task runner: several children are run again
        one by one (``replace`` swaps the chunk for them in its parent); a single child is
        recorded as lost, then submitted again or settled."""
        if len(chunk.calls) > 1:
            singles = [Chunk(chunk.parent, [call]) for call in chunk.calls]
            for single, following in itertools.pairwise(singles):
                single.following = following
            for single in singles:
                single.suspect = True  # run one after the other: each is as good as alone
            singles[-1].following = chunk.following
            replace(chunk, singles)
            self.dispatch_chunk(singles[0])
            return
        blamed = self._blamed(chunk, lost)
        call = chunk.calls[0]
        state = record_child(chunk, call, lost if blamed else _as_bystander(lost))
        if runs_again(state):
            chunk.calls = [call.with_state(state)]
            if blamed:
                self.dispatch_chunk(chunk)
            else:
                self._run_alone(chunk, lambda: self.dispatch_chunk(chunk))
            return
        chunk.states = [state]
        self.chunk_settled(chunk)


def record_child(chunk: Chunk, call: ChildCall, lost: LostRun) -> State:
    """Record through the task runner, in this process, that a mapped child's work was lost."""
    try:
        return call.record_lost(lost)
    except Exception as exc:
        logger.exception("runwright-dask: could not record a lost mapped child of %r", chunk.parent)
        return Failed(f"Task '{chunk.parent.name}[{call.index}]': {lost.reason} ({exc!r})", result=lost.error)


def _as_bystander(lost: LostRun) -> LostRun:
    return dataclasses.replace(lost, reason=f"{lost.reason}, which another task may have killed", blamed=False)
