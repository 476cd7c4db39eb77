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
* A suspect runs *alone*: its turn starts once no other Dask task of the flow run is in
  flight (every finished one's value fetched into this process), and nothing else is sent
  to Dask until it ends. So a suspect that kills its worker again takes nothing else with
  it, and the blame is right. A blamed run that is retried runs alone the same way.
* A chunk of several mapped children that fails is recorded child by child as lost, not
  blamed (a backend holding a child's finished state gives it back); the others are run
  again one by one, each a suspect: the child that killed its worker then fails (or
  retries) alone, and the others keep their own outcome.
"""

from __future__ import annotations

import dataclasses
import functools
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
        self._cond = threading.Condition()
        #: the suspect running alone (or waiting for the cluster to be quiet), and the
        #: suspects waiting for their turn
        self._alone: Submission | None = None
        self._waiting: deque[tuple[Submission, Callable[[], None]]] = deque()
        #: keys of the Dask tasks in flight (sent, and not ended or not yet kept)
        self._in_flight: set[str] = set()
        #: dispatches held back while a suspect has its turn
        self._held: list[Callable[[], None]] = []
        self._closed = False

    # -- what is in flight ---------------------------------------------------------------------
    def started(self, key: str) -> None:
        """A Dask task was sent (before its completion callback is added)."""
        with self._cond:
            self._in_flight.add(key)

    def ended(self, key: str) -> None:
        """A Dask task ended: it failed, or it finished and its value is kept (or lost)."""
        with self._cond:
            self._in_flight.discard(key)
            if not self._in_flight:
                self._cond.notify_all()

    def holds(self, sub: Submission, dispatch: Callable[[], None]) -> bool:
        """True (and ``dispatch`` is kept for later) while a suspect other than ``sub`` has
        its turn: nothing else goes to Dask until that suspect's Dask task ended."""
        with self._cond:
            if self._alone is None or self._alone is sub or self._closed:
                return False
            self._held.append(dispatch)
            return True

    def close(self) -> None:
        """The session is over: a suspect waiting for its turn is not dispatched."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- suspects ----------------------------------------------------------------------------
    def _run_alone(self, sub: Submission, dispatch: Callable[[], None]) -> None:
        sub.suspect = True
        with self._cond:
            go = self._alone is None
            if go:
                self._alone = sub
            else:
                self._waiting.append((sub, dispatch))
        if go:
            self._start_alone(dispatch)

    def _start_alone(self, dispatch: Callable[[], None]) -> None:
        """Dispatch the suspect whose turn it is once nothing else is in flight (on a thread
        of its own: completion callbacks and the keeper must go on meanwhile)."""

        def when_quiet() -> None:
            with self._cond:
                self._cond.wait_for(lambda: not self._in_flight or self._closed)
                if self._closed:
                    return
            dispatch()

        threading.Thread(target=when_quiet, name="runwright-dask-alone", daemon=True).start()

    def release(self, sub: Submission) -> bool:
        """``sub``'s Dask task ended (any outcome): True when it was a suspect; the next
        waiting suspect, if any, then has its turn, else the held dispatches go."""
        if not sub.suspect:
            return False
        sub.suspect = False
        held: list[Callable[[], None]] = []
        with self._cond:
            if self._alone is not sub:
                return True
            following = self._waiting.popleft() if self._waiting else None
            self._alone = following[0] if following is not None else None
            if following is None:
                held, self._held = self._held, []
        if following is not None:
            self._start_alone(following[1])
        for dispatch in held:
            dispatch()
        return True

    def _blamed(self, sub: Submission, lost: LostRun) -> bool:
        """Whether ``sub``'s loss is its own (see the module docstring); releases a suspect."""
        was_suspect = self.release(sub)
        if not lost.blamed:  # the caller knows it is not (e.g. its result was lost after it finished)
            return False
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
            # a suspect, or a blamed run retried: either may kill its worker, so it runs alone
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
            # each child recorded as lost, not blamed: one whose finished state a backend
            # holds ends with it; the others run again one by one, each alone
            self.release(chunk)
            bystander = _as_bystander(lost)
            singles = []
            for call in chunk.calls:
                state = record_child(chunk, call, bystander)
                single = Chunk(chunk.parent, [call.with_state(state)])
                if not runs_again(state):
                    single.states = [state]
                singles.append(single)
            replace(chunk, singles)
            for single in singles:
                if single.states is not None:
                    self.chunk_settled(single)
                else:
                    self._run_alone(single, functools.partial(self.dispatch_chunk, single))
            return
        blamed = self._blamed(chunk, lost)
        call = chunk.calls[0]
        state = record_child(chunk, call, lost if blamed else _as_bystander(lost))
        if runs_again(state):
            chunk.calls = [call.with_state(state)]
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
