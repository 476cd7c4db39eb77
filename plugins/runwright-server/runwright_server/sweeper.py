"""The zombie sweeper: fails Running runs whose heartbeat is too old, and gives the runs of
vanished agents to other agents.

A background thread wakes every ``interval`` seconds. A flow run or task run in state
``Running`` whose last heartbeat (or last state write, if it never sent one) is older than
``timeout`` seconds is moved to ``{"type": "Failed", "message": "no heartbeat for N s"}``
through the same version-checked write as any client, so a runner that comes back later
gets a 409 and stops, and the transition is in the history.

Runs of deployments are not failed: a ``Running`` one goes back to ``Scheduled`` (due now)
for another agent, which resumes it (finished task runs are kept), and so does a
``Submitted`` one whose agent was unseen for ``timeout`` (:func:`claims.requeue_zombies`).
Each sweep that moved runs wakes the tenants' waiting agents (``wakeups``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, Select, func, select

from runwright_server import claims
from runwright_server.auth import utcnow
from runwright_server.db import write_tx
from runwright_server.locking import FLOW_RUNS, TASK_RUNS, RunKind, write_state
from runwright_server.models import RUNNING
from runwright_server.periodic import Periodic
from runwright_server.schemas import to_json_text

log = logging.getLogger(__name__)
BATCH = 500


def failed_state(timeout: float) -> dict[str, object]:
    return {"type": "Failed", "message": f"no heartbeat for {timeout:g} s"}


def zombies(kind: RunKind, cutoff: datetime) -> Select[tuple[str, str, int]]:
    """The runs of ``kind`` that are Running with no heartbeat (or state write) since
    ``cutoff``, as ``(id, tenant_id, version)``; on task runs the query reads only the
    partial index of Running task runs."""
    runs = kind.runs
    query = select(runs.c.id, runs.c.tenant_id, runs.c.version).where(
        runs.c.state_type == RUNNING, func.coalesce(runs.c.heartbeat, runs.c.updated) < cutoff
    )
    if kind is FLOW_RUNS:
        query = query.where(runs.c.deployment_id.is_(None))  # those go to another agent instead
    return query


def sweep_kind(engine: Engine, kind: RunKind, timeout: float, now: datetime | None = None) -> int:
    """Fail the zombies of one kind; return how many were failed."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout)
    state_text = to_json_text(failed_state(timeout))
    failed = 0
    with write_tx(engine) as conn:
        rows = conn.execute(zombies(kind, cutoff).limit(BATCH)).all()
        for row in rows:
            outcome = write_state(conn, kind, row.id, row.tenant_id, row.version, state_text, "Failed", now)
            failed += outcome.status == "ok"
    return failed


def sweep_once(engine: Engine, timeout: float, now: datetime | None = None) -> int:
    """One sweep over flow runs, task runs and the runs of vanished agents."""
    requeued = claims.requeue_zombies(engine, timeout, now)
    return requeued + sweep_kind(engine, FLOW_RUNS, timeout, now) + sweep_kind(engine, TASK_RUNS, timeout, now)


class ZombieSweeper(Periodic):
    """Runs :func:`sweep_once` every ``interval`` seconds on a daemon thread until stopped."""

    thread_name = "runwright-zombie-sweeper"

    def __init__(self, engine: Engine, timeout: float, interval: float, on_change: Callable[[], None] | None = None) -> None:
        super().__init__(interval)
        self.engine = engine
        #: called after a sweep that changed runs (the app wakes every waiting agent)
        self.on_change = on_change
        self.timeout = timeout

    def tick(self) -> None:
        count = sweep_once(self.engine, self.timeout)
        if count:
            log.warning("swept %d run(s): no heartbeat (or agent) for %g s", count, self.timeout)
            if self.on_change is not None:
                self.on_change()
