"""The background writer: task-run state writes that need no answer, sent in batches.

A task run's claim to ``Running`` (and a mapped parent's ``Mapped``) is written at once and
version-checked, because a conflict must stop the task. Every other task-run state (Success,
Failed, Retrying, Cached, ...) is queued here: a daemon thread stores the state's results
(checkpointing, cached results and cached inputs), serializes the state and sends up to
``batch_size`` queued writes in one ``set_task_run_states`` request, in queue order.

The flow runner flushes the queue before it writes the flow run's final state and at the end
of the run; a task run on another process (a Dask worker) waits for its own writes when it
ends. What a crash can lose is the unflushed queue: those task runs still show their earlier
state on the server (``Running``) and run again when the flow run is resumed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runwright_cloud.errors import ClientError

if TYPE_CHECKING:
    from runwright.engine.state import State
    from runwright_cloud.client import Client
    from runwright_cloud.reporting import TaskRunReport

logger = logging.getLogger("runwright.cloud.writer")


@dataclass
class _Write:
    report: TaskRunReport
    version: int
    state: State
    checkpoint: bool


def store_results(state: State, checkpoint: bool) -> None:
    """Store what a state needs on the server before it is serialized.

    A Cached state's result and the ``cached_inputs`` of Pending, Retrying, TimedOut and
    Cached states are always stored; a Success's result when ``checkpoint`` is set. Only the
    :class:`~runwright.engine.result.Result` objects gain their stored location: the state
    itself is never replaced or changed (unlike the seed's ``prepare_state_for_cloud``).
    """
    from runwright.engine.result import Result
    from runwright.engine.state import Cached, Mapped, Success

    result = state._result
    if isinstance(result, Result) and (
        isinstance(state, Cached) or (checkpoint and isinstance(state, Success) and not isinstance(state, Mapped))
    ):
        result.store_safe_value()
    inputs = getattr(state, "cached_inputs", None)
    if inputs:
        for value in inputs.values():
            if isinstance(value, Result):
                value.store_safe_value()


def serialize_for_server(state: State, checkpoint: bool, what: str) -> dict[str, Any]:
    """The state as the server stores it, its results stored first; a result that cannot be
    stored is logged and the state goes without it (resume then re-runs the task)."""
    try:
        store_results(state, checkpoint)
    except Exception as exc:  # noqa: BLE001 - reporting must not break the run
        logger.warning("Could not store the result of %s (%s); its %s state is recorded without it", what, exc, type(state).__name__)
    return state.serialize()


class StateWriter:
    """A queue of task-run state writes and the daemon thread that sends them in batches."""

    def __init__(self, client: Client, batch_size: int = 500) -> None:
        self.client = client
        self.batch_size = batch_size
        self._cond = threading.Condition()
        self._queue: deque[_Write] = deque()
        self._unfinished = 0
        self._thread: threading.Thread | None = None
        #: writes that did not land (server unreachable, or refused), per flow run id
        self._lost: dict[str, int] = {}

    def enqueue(self, report: TaskRunReport, state: State, checkpoint: bool) -> None:
        """Queue ``state`` for the task run, expecting its current version (then +1)."""
        with self._cond:
            self._queue.append(_Write(report, report.version, state, checkpoint))
            report.version += 1
            report.pending += 1
            self._unfinished += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="runwright-cloud-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every queued write was sent (or failed, which is logged)."""
        with self._cond:
            while self._unfinished:
                self._cond.wait()

    def lost(self, flow_run_id: str) -> int:
        """How many queued task-run states of ``flow_run_id`` the server did not record."""
        with self._cond:
            return self._lost.get(flow_run_id, 0)

    def _record_lost(self, report: TaskRunReport) -> None:
        report.refused = True
        with self._cond:
            self._lost[report.flow_run_id] = self._lost.get(report.flow_run_id, 0) + 1

    def wait_for(self, report: TaskRunReport) -> None:
        """Wait until the queued writes of one task run were sent."""
        if not report.pending:
            return
        with self._cond:
            while report.pending:
                self._cond.wait()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            try:
                self._send(batch)
            finally:
                with self._cond:
                    for write in batch:
                        write.report.pending -= 1
                    self._unfinished -= len(batch)
                    self._cond.notify_all()

    def _send(self, batch: list[_Write]) -> None:
        items = []
        for write in batch:
            report = write.report
            if report.refused:
                self._record_lost(report)
                continue  # an earlier write of this task run was refused: later versions cannot match
            state = serialize_for_server(write.state, write.checkpoint, report.describe())
            items.append((write, {"task_run_id": report.id, "version": write.version, "state": state}))
        if not items:
            return
        try:
            results = self.client.set_task_run_states([body for _, body in items])
        except ClientError as exc:
            logger.error("Could not record %d task run state(s) on the runwright server: %s", len(items), exc)
            for write, _ in items:
                self._record_lost(write.report)
            return
        for (write, _), outcome in zip(items, results, strict=True):
            if outcome.get("status") != "ok":
                self._record_lost(write.report)
                logger.warning(
                    "The runwright server refused the %s state of %s (%s; its version is now %s): another "
                    "runner wrote to it",
                    type(write.state).__name__,
                    write.report.describe(),
                    outcome.get("status"),
                    outcome.get("version"),
                )


_writers: dict[int, StateWriter] = {}
_writers_lock = threading.Lock()


def writer_for(client: Client, batch_size: int) -> StateWriter:
    """The process's writer for ``client``."""
    writer = _writers.get(id(client))
    if writer is None:
        with _writers_lock:
            writer = _writers.get(id(client))
            if writer is None:
                writer = _writers[id(client)] = StateWriter(client, batch_size)
    return writer
