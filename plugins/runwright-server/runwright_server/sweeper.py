"""The zombie sweeper: fails Running runs whose heartbeat is too old.

A background thread wakes every ``interval`` seconds. A flow run or task run in state
``Running`` whose last heartbeat (or last state write, if it never sent one) is older than
``timeout`` seconds is moved to ``{"type": "Failed", "message": "no heartbeat for N s"}``
through the same version-checked write as any client, so a runner that comes back later
gets a 409 and stops, and the transition is in the history.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from runwright_server.auth import utcnow
from runwright_server.db import write_tx
from runwright_server.locking import FLOW_RUNS, TASK_RUNS, RunKind, write_state
from runwright_server.schemas import to_json_text

log = logging.getLogger(__name__)
BATCH = 500


def failed_state(timeout: float) -> dict[str, object]:
    return {"type": "Failed", "message": f"no heartbeat for {timeout:g} s"}


def sweep_kind(engine: Engine, kind: RunKind, timeout: float, now: datetime | None = None) -> int:
    """Fail the zombies of one kind; return how many were failed."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout)
    runs = kind.runs
    state_text = to_json_text(failed_state(timeout))
    failed = 0
    with write_tx(engine) as conn:
        rows = conn.execute(
            select(runs.c.id, runs.c.tenant_id, runs.c.version)
            .where(runs.c.state_type == "Running", func.coalesce(runs.c.heartbeat, runs.c.updated) < cutoff)
            .limit(BATCH)
        ).all()
        for row in rows:
            outcome = write_state(conn, kind, row.id, row.tenant_id, row.version, state_text, "Failed", now)
            failed += outcome.status == "ok"
    return failed


def sweep_once(engine: Engine, timeout: float, now: datetime | None = None) -> int:
    """One sweep over flow runs and task runs."""
    return sweep_kind(engine, FLOW_RUNS, timeout, now) + sweep_kind(engine, TASK_RUNS, timeout, now)


class ZombieSweeper:
    """Runs :func:`sweep_once` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, engine: Engine, timeout: float, interval: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="runwright-zombie-sweeper", daemon=True)
        self._thread.start()

    def stop(self, join_timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(join_timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                count = sweep_once(self.engine, self.timeout)
            except Exception:  # keep sweeping: a locked or unreachable DB is retried next time
                log.exception("zombie sweep failed")
                continue
            if count:
                log.warning("marked %d run(s) Failed: no heartbeat for %g s", count, self.timeout)
