"""One heartbeat thread per cloud backend (so per process), beating for every running flow
run and task run.

The thread starts when the first run is added and exits as soon as the last one is removed
(an ``Event`` wakes it at once): the end of a run never waits for a heartbeat. It is a
daemon thread and is never joined. A failed heartbeat is logged as a warning once per run
and does not affect the run: the server's sweeper fails a run only after ``zombie_timeout``
seconds without one. A flow run's heartbeat answered ``cancel: true`` stops the process
(:mod:`runwright_cloud.cancelling`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from runwright_cloud.cancelling import stop_cancelled_run
from runwright_cloud.errors import ClientError

if TYPE_CHECKING:
    from runwright_cloud.client import Client

logger = logging.getLogger("runwright.cloud.heartbeat")


class Heartbeat:
    """The set of beating runs, and the thread that beats for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._flow_runs: dict[str, Client] = {}
        self._task_runs: dict[str, Client] = {}
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self.interval = 30.0
        #: called (on the heartbeat thread) for a flow run whose cancel was requested
        self.on_cancel: Callable[[str, Client], None] = stop_cancelled_run

    def add(self, kind: str, run_id: str, client: Client, interval: float) -> None:
        """Beat for the flow run (``kind="flow"``) or task run (``"task"``) ``run_id``."""
        with self._lock:
            (self._flow_runs if kind == "flow" else self._task_runs)[run_id] = client
            if interval < self.interval or self._thread is None:
                self.interval = interval
                self._changed.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="runwright-cloud-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, kind: str, run_id: str) -> None:
        runs = self._flow_runs if kind == "flow" else self._task_runs
        if run_id not in runs:
            return  # not beating (a task run's end removes it again): no lock to take
        with self._lock:
            if runs.pop(run_id, None) is not None and not (self._flow_runs or self._task_runs):
                self._changed.set()  # the thread exits now

    def beating(self) -> set[str]:
        with self._lock:
            return set(self._flow_runs) | set(self._task_runs)

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _loop(self) -> None:
        while True:
            woke = self._changed.wait(self.interval)
            with self._lock:
                self._changed.clear()
                if not (self._flow_runs or self._task_runs):
                    self._thread = None
                    return
                if woke:
                    continue
                flows = list(self._flow_runs.items())
                tasks = list(self._task_runs.items())
            for run_id, client in flows:
                if self._beat(client.update_flow_run_heartbeat, "flow run", run_id):
                    self.on_cancel(run_id, client)
            for run_id, client in tasks:
                self._beat(client.update_task_run_heartbeat, "task run", run_id)

    def _beat(self, send: object, what: str, run_id: str) -> bool:
        """Send one heartbeat; True when its answer asks the run to stop (a cancel)."""
        try:
            return bool(send(run_id))  # type: ignore[operator]
        except ClientError as exc:
            if run_id not in self._warned:
                self._warned.add(run_id)
                logger.warning("Heartbeat failed for %s %s: %s", what, run_id, exc)
            return False
