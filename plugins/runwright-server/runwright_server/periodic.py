"""A server background job: :meth:`Periodic.tick` every ``interval`` seconds on a daemon
thread, from :meth:`start` until :meth:`stop`. A tick that raises is logged and the job goes
on (a locked or unreachable database is retried at the next tick)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Periodic:
    """Subclasses set :attr:`thread_name` and implement :meth:`tick`."""

    thread_name = "runwright-periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, join_timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(join_timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                log.exception("%s: a pass failed (retried at the next one)", self.thread_name)
