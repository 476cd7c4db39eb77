"""What the UI's buttons do: cancel, retry, pause / resume, run a deployment.

Each follows the HTTP API's contract (docs/orchestration.md, "Run control" and
"Deployments") and writes through the same version-checked state writes as the API
(:func:`runwright_server.locking.write_state`), inside one transaction, scoped to the tenant
of the session. Every write wakes the tenant's waiters (agents' polls, event streams).
An action that does not apply (cancel a finished run, retry a running one) raises
:class:`ActionRefused` with the reason the page shows.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from runwright_server import models
from runwright_server.auth import utcnow
from runwright_server.db import write_tx
from runwright_server.locking import FLOW_RUNS, TASK_RUNS, write_state
from runwright_server.schemas import to_json_text
from runwright_server.state_rules import FINISHED_TYPES

#: a run in one of these has not started: cancelling it ends it at once
NOT_STARTED = ("Pending", "Scheduled", "Submitted", "Queued", "Paused", "Retrying", "Resume")
FAILED_OR_CANCELLED = ("Failed", "TriggerFailed", "TimedOut", "Aborted", "ClientFailed", "Cancelled")


class ActionRefused(Exception):
    """The action does not apply to the run as it is now (the message says why)."""


class NotFound(Exception):
    pass


def _run(conn: Connection, tenant: str, run_id: str) -> Any:
    fr = models.flow_runs
    row = conn.execute(
        select(fr.c.id, fr.c.version, fr.c.state_type).where(fr.c.id == run_id, fr.c.tenant_id == tenant)
    ).first()
    if row is None:
        raise NotFound("flow run not found")
    return row


def _set(conn: Connection, kind: Any, run_id: str, tenant: str, version: int, state: dict[str, Any]) -> None:
    outcome = write_state(conn, kind, run_id, tenant, version, to_json_text(state), state["type"], utcnow())
    if outcome.status != "ok":
        raise ActionRefused("the run changed meanwhile; reload and try again")


def _end_unfinished_tasks(conn: Connection, tenant: str, run_id: str, message: str) -> None:
    tr = models.task_runs
    rows = conn.execute(
        select(tr.c.id, tr.c.version).where(
            tr.c.flow_run_id == run_id, tr.c.tenant_id == tenant, tr.c.state_type.not_in(FINISHED_TYPES)
        )
    ).all()
    for task_id, version in rows:
        _set(conn, TASK_RUNS, task_id, tenant, version, {"type": "Cancelled", "message": message})


def cancel(engine: Engine, tenant: str, run_id: str) -> str:
    """Cancel the run: ended at once when it has not started, else asked to stop."""
    with write_tx(engine) as conn:
        row = _run(conn, tenant, run_id)
        if row.state_type in FINISHED_TYPES:
            raise ActionRefused(f"the run is already finished ({row.state_type})")
        if row.state_type in NOT_STARTED:
            message = "cancelled from the UI before it started"
            _set(conn, FLOW_RUNS, run_id, tenant, row.version, {"type": "Cancelled", "message": message})
            _end_unfinished_tasks(conn, tenant, run_id, message)
            return "cancelled"
        fr = models.flow_runs
        conn.execute(
            update(fr).where(fr.c.id == run_id, fr.c.tenant_id == tenant, fr.c.cancel_requested.is_(None)).values(
                cancel_requested=utcnow(), updated=utcnow()
            )
        )
        return "cancel requested"


def retry(engine: Engine, tenant: str, run_id: str) -> str:
    """A finished run goes back to Scheduled (due now); its failed and unfinished tasks to Pending."""
    now = utcnow()
    with write_tx(engine) as conn:
        row = _run(conn, tenant, run_id)
        if row.state_type not in FINISHED_TYPES:
            raise ActionRefused(f"only a finished run can be retried (this one is {row.state_type})")
        state = {"type": "Scheduled", "message": "retried from the UI", "start_time": now.replace(tzinfo=UTC).isoformat()}
        _set(conn, FLOW_RUNS, run_id, tenant, row.version, state)
        fr, tr = models.flow_runs, models.task_runs
        conn.execute(
            update(fr).where(fr.c.id == run_id).values(
                scheduled_start_time=now, cancel_requested=None, agent_id=None, claimed=None
            )
        )
        rows = conn.execute(
            select(tr.c.id, tr.c.version, tr.c.state_type).where(tr.c.flow_run_id == run_id, tr.c.tenant_id == tenant)
        ).all()
        for task_id, version, state_type in rows:
            if state_type in FAILED_OR_CANCELLED or state_type not in FINISHED_TYPES:
                _set(conn, TASK_RUNS, task_id, tenant, version, {"type": "Pending", "message": "retried from the UI"})
        return "retried"


def set_paused(engine: Engine, tenant: str, name: str, paused: bool) -> None:
    d = models.deployments
    with write_tx(engine) as conn:
        count = conn.execute(
            update(d).where(d.c.tenant_id == tenant, d.c.name == name).values(paused=paused, updated=utcnow())
        ).rowcount
    if count != 1:
        raise NotFound("deployment not found")


def run_deployment(engine: Engine, tenant: str, name: str, parameters: dict[str, Any]) -> str:
    """A new run of the deployment (Scheduled, due now, its parameters merged over the defaults)."""
    d, f = models.deployments, models.flows
    now = utcnow()
    with write_tx(engine) as conn:
        dep = conn.execute(select(d).where(d.c.tenant_id == tenant, d.c.name == name)).mappings().first()
        if dep is None:
            raise NotFound("deployment not found")
        tasks = json.loads(conn.execute(select(f.c.tasks).where(f.c.id == dep["flow_id"])).scalar() or "[]")
        merged = {**json.loads(dep["parameters"]), **parameters}
        run_id = str(uuid.uuid4())
        state = {"type": "Scheduled", "message": None, "start_time": now.replace(tzinfo=UTC).isoformat()}
        text = to_json_text(state)
        conn.execute(
            models.flow_runs.insert().values(
                id=run_id, tenant_id=tenant, flow_id=dep["flow_id"], parameters=to_json_text(merged),
                context=to_json_text({}), scheduled_start_time=now, state=text, state_type="Scheduled",
                version=0, heartbeat=None, created=now, updated=now, deployment_id=dep["id"], queue=dep["queue"],
            )
        )
        conn.execute(
            models.flow_run_states.insert().values(flow_run_id=run_id, version=0, state=text, state_type="Scheduled", timestamp=now)
        )
        pending = to_json_text({"type": "Pending", "message": None})
        rows = [
            {
                "id": str(uuid.uuid4()), "tenant_id": tenant, "flow_run_id": run_id, "task_slug": t["slug"],
                "map_index": -1, "state": pending, "state_type": "Pending", "version": 0, "heartbeat": None,
                "created": now, "updated": now,
            }
            for t in tasks
        ]
        if rows:
            conn.execute(models.task_runs.insert(), rows)
            history = [{"task_run_id": r["id"], "version": 0, "state": pending, "state_type": "Pending", "timestamp": now} for r in rows]
            conn.execute(models.task_run_states.insert(), history)
    return run_id
