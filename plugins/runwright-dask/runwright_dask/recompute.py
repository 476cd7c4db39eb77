"""A finished task run never runs twice: what stops Dask from computing it again.

When a worker dies, the scheduler computes again every finished task whose only copy of
the result was on it and that something still needs (a downstream task, or the client's
future). For a task run that would run its body a second time. So:

* :class:`RecomputeGuard`, a scheduler plugin registered once per session, marks every
  task whose result leaves memory (``ts.annotations[RECOMPUTED] = True``); the mark travels
  to the worker with the task if the scheduler sends it again;
* on the worker, :func:`refuse_if_recomputed` (called first by the trampolines in
  ``worker.py``) raises :class:`AlreadyRan` for a marked task: its Dask task errs, and so do
  the Dask tasks waiting for it;
* the client has kept each run's final state (fetched as soon as it finished, see
  ``executor.py``), so it submits the waiting runs again with those states. The error's
  ``key`` says whose result was lost: a run's completion callback can come after Dask
  already sent its own key again, and that refusal is then not the run's failure but an
  outcome lost on the way (recovered as for a state the keeper could not fetch).

The mark is a dict lookup on the worker, no message. Importing this module does not import
``distributed``; :func:`register_guard` does.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger("runwright.dask")

#: the annotation that marks a task computed before whose result was lost
RECOMPUTED = "runwright-recomputed"
GUARD_NAME = "runwright-recompute-guard"


class AlreadyRan(RuntimeError):
    """A Dask task of a task run (or a chunk of mapped children) that finished before was
    sent again after its result was lost with its worker; it does not run twice.

    ``key`` is that Dask task's key. Dask hands the same exception to every Dask task that
    was waiting for it, so the client tells "my own result was lost" (the key is the run's)
    from "an input's result was lost" (the key is an upstream run's)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)  # pickled by its args: the key alone
        self.key = key

    def __str__(self) -> str:
        return (
            f"Dask task {self.key} finished before and its result was lost with its worker; "
            "runwright does not run a finished task again (the client has its state)"
        )


def refuse_if_recomputed() -> None:
    """Raise :class:`AlreadyRan` when the current Dask task is a recomputation."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    key = worker.get_current_task()
    ts = worker.state.tasks.get(key) if key is not None else None
    annotations = getattr(ts, "annotations", None)
    if annotations and annotations.get(RECOMPUTED):
        raise AlreadyRan(str(key))


def lost_key(exc: BaseException | None) -> str | None:
    """The Dask task whose loss ``exc`` reports: an :class:`AlreadyRan`'s key, or the task
    a ``KilledWorker`` names; None for any other error."""
    if isinstance(exc, AlreadyRan):
        return exc.key
    if type(exc).__name__ == "KilledWorker":
        task = getattr(exc, "task", None)
        return None if task is None else str(task)
    return None


def lost_after_finishing(error: BaseException | None) -> str:
    """The message of a run that finished on a worker that died before its state reached
    the client, and whose run again (see ``DaskExecutor._run_again_for_state``) was lost too."""
    return (
        "finished on a Dask worker that died before its state reached the flow runner; it is not "
        f"run again ({error!r})"
    )


@functools.cache
def _guard_class() -> type:
    from distributed.diagnostics.plugin import SchedulerPlugin

    class RecomputeGuard(SchedulerPlugin):  # type: ignore[misc]
        """Marks tasks whose result leaves the scheduler's memory (see the module docstring)."""

        idempotent = True
        name = GUARD_NAME

        def __init__(self) -> None:
            self.scheduler: Any = None

        async def start(self, scheduler: Any) -> None:
            self.scheduler = scheduler

        def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
            if start != "memory" or self.scheduler is None:
                return
            ts = self.scheduler.tasks.get(key)
            if ts is not None:
                ts.annotations = {**(ts.annotations or {}), RECOMPUTED: True}

    return RecomputeGuard


def register_guard(client: Client) -> bool:
    """Register the guard on ``client``'s scheduler (once; idempotent). False, with a
    warning, when the scheduler cannot load it (runwright-dask not installed there)."""
    try:
        client.register_plugin(_guard_class()(), name=GUARD_NAME)
    except Exception as exc:  # noqa: BLE001 - the run goes on, without the guard
        logger.warning(
            "runwright-dask: the scheduler could not load the recompute guard (%s); a task whose "
            "worker dies after it finished may run again. Install runwright-dask where the scheduler runs.",
            exc,
        )
        return False
    return True
