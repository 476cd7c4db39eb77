"""Cancel and retry flow runs (the database side of ``routes/run_control.py``).

Every state change here is a version-checked write with its history row, like any client's:
a runner that writes after a cancel or a retry gets a 409. On PostgreSQL a write that loses a
race (the runner moved the run meanwhile) reads the run again and decides anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Engine, func, select, update

from runwright_server import models
from runwright_server.auth import utcnow
from runwright_server.claims import reschedule
from runwright_server.db import write_tx
from runwright_server.locking import FLOW_RUNS, TASK_RUNS, write_state
from runwright_server.schemas import to_json_text
from runwright_server.state_rules import FINISHED_TYPES

#: task-run states a retry keeps (the work they stand for is done)
KEPT_BY_RETRY = frozenset({"Success", "Cached", "Skipped", "Mapped"})
ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    status: Literal["cancelled", "requested", "retried", "finished", "unfinished", "not_requested", "not_found"]
    state_type: str | None = None
    #: the run's work queue (a retried run of a deployment waits there for an agent)
    queue: str | None = None


def _cancelled_text(message: str) -> str:
    return to_json_text({"type": "Cancelled", "message": message})


def _read(conn: Connection, tenant_id: str, run_id: str) -> object | None:
    fr = models.flow_runs
    return conn.execute(
        select(fr.c.version, fr.c.state_type, fr.c.cancel_requested, fr.c.queue).where(fr.c.id == run_id, fr.c.tenant_id == tenant_id)
    ).first()


def cancel_task_runs(conn: Connection, tenant_id: str, run_id: str, message: str, now: datetime) -> int:
    """Every unfinished task run of the flow run to Cancelled; return how many."""
    tr = models.task_runs
    rows = conn.execute(
        select(tr.c.id, tr.c.version).where(tr.c.flow_run_id == run_id, tr.c.state_type.not_in(FINISHED_TYPES))
    ).all()
    text = _cancelled_text(message)
    return sum(
        write_state(conn, TASK_RUNS, row.id, tenant_id, row.version, text, "Cancelled", now).status == "ok" for row in rows
    )


def _write_cancelled(conn: Connection, tenant_id: str, run_id: str, version: int, message: str, now: datetime) -> bool:
    fr = models.flow_runs
    if write_state(conn, FLOW_RUNS, run_id, tenant_id, version, _cancelled_text(message), "Cancelled", now).status != "ok":
        return False
    conn.execute(
        update(fr)
        .where(fr.c.id == run_id)
        .values(lease=None, lease_holder=None, cancel_requested=func.coalesce(fr.c.cancel_requested, now))
    )
    cancel_task_runs(conn, tenant_id, run_id, message, now)
    return True


def cancel(engine: Engine, tenant_id: str, run_id: str) -> Outcome:
    """Cancel a run: an unstarted one ends Cancelled now; a Running one is asked to stop."""
    fr = models.flow_runs
    for _ in range(ATTEMPTS):
        now = utcnow()
        with write_tx(engine) as conn:
            row = _read(conn, tenant_id, run_id)
            if row is None:
                return Outcome("not_found")
            state_type = row.state_type  # type: ignore[attr-defined]
            if state_type in FINISHED_TYPES:
                return Outcome("finished", state_type)
            if state_type == "Running":
                conn.execute(
                    update(fr)
                    .where(fr.c.id == run_id, fr.c.cancel_requested.is_(None))
                    .values(cancel_requested=now)
                )
                return Outcome("requested", state_type)
            message = "Cancelled before it started (runwright runs cancel)"
            if _write_cancelled(conn, tenant_id, run_id, row.version, message, now):  # type: ignore[attr-defined]
                return Outcome("cancelled", "Cancelled")
    return Outcome("unfinished", None)


def mark_cancelled(engine: Engine, tenant_id: str, run_id: str, message: str | None) -> Outcome:
    """``POST /cancelled``: whoever stopped a run whose cancel was requested records it."""
    for _ in range(ATTEMPTS):
        now = utcnow()
        with write_tx(engine) as conn:
            row = _read(conn, tenant_id, run_id)
            if row is None:
                return Outcome("not_found")
            state_type = row.state_type  # type: ignore[attr-defined]
            if state_type == "Cancelled":
                cancel_task_runs(conn, tenant_id, run_id, message or "Cancelled (runwright runs cancel)", now)
                return Outcome("cancelled", state_type)
            if row.cancel_requested is None:  # type: ignore[attr-defined]
                return Outcome("not_requested", state_type)
            if state_type in FINISHED_TYPES:
                return Outcome("finished", state_type)
            text = message or "Cancelled while running (runwright runs cancel)"
            if _write_cancelled(conn, tenant_id, run_id, row.version, text, now):  # type: ignore[attr-defined]
                return Outcome("cancelled", "Cancelled")
    return Outcome("unfinished", None)


def retry(engine: Engine, tenant_id: str, run_id: str) -> Outcome:
    """A finished run back to Scheduled (due now), its task runs that did not succeed Pending."""
    fr, tr = models.flow_runs, models.task_runs
    pending = to_json_text({"type": "Pending", "message": "Pending again (runwright runs retry)"})
    for _ in range(ATTEMPTS):
        now = utcnow()
        with write_tx(engine) as conn:
            row = _read(conn, tenant_id, run_id)
            if row is None:
                return Outcome("not_found")
            state_type = row.state_type  # type: ignore[attr-defined]
            if state_type not in FINISHED_TYPES:
                return Outcome("unfinished", state_type)
            if not reschedule(conn, run_id, tenant_id, row.version, "Scheduled again (runwright runs retry)", now):  # type: ignore[attr-defined]
                continue
            conn.execute(update(fr).where(fr.c.id == run_id).values(cancel_requested=None))
            tasks = conn.execute(
                select(tr.c.id, tr.c.version).where(tr.c.flow_run_id == run_id, tr.c.state_type.not_in(KEPT_BY_RETRY))
            ).all()
            for task in tasks:
                write_state(conn, TASK_RUNS, task.id, tenant_id, task.version, pending, "Pending", now)
            return Outcome("retried", "Scheduled", row.queue)  # type: ignore[attr-defined]
    return Outcome("unfinished", None)
