"""What the UI's buttons do: cancel, retry, pause / resume, run a deployment.

Cancel and retry are the API's own functions (:mod:`runwright_server.run_control`, behind
``POST /flow_runs/{id}/cancel`` and ``/retry``). Pause / resume and "Run" follow the
deployments contract (docs/orchestration.md, "Deployments"), scoped to the tenant of the
session; the caller wakes the tenant's waiters (agents' polls, event streams).
An action that does not apply (cancel a finished run, retry a running one) raises
:class:`ActionRefused` with the reason the page shows.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from typing import Any

from sqlalchemy import Engine, select, update

from runwright_server import models, run_control
from runwright_server.auth import utcnow
from runwright_server.db import write_tx
from runwright_server.schemas import to_json_text


class ActionRefused(Exception):
    """The action does not apply to the run as it is now (the message says why)."""


class NotFound(Exception):
    pass


def cancel(engine: Engine, tenant: str, run_id: str) -> str:
    """Cancel the run (:func:`runwright_server.run_control.cancel`, as ``POST .../cancel``)."""
    outcome = run_control.cancel(engine, tenant, run_id)
    return _notice(outcome, "cancel", {"cancelled": "cancelled", "requested": "cancel requested: the run stops at its next heartbeat"})


def retry(engine: Engine, tenant: str, run_id: str) -> str:
    """Retry the finished run (:func:`runwright_server.run_control.retry`, as ``POST .../retry``)."""
    outcome = run_control.retry(engine, tenant, run_id)
    return _notice(outcome, "retry", {"retried": "retried: the run is scheduled again, due now"})


def _notice(outcome: run_control.Outcome, what: str, done: dict[str, str]) -> str:
    if outcome.status == "not_found":
        raise NotFound("flow run not found")
    if outcome.status in done:
        return done[outcome.status]
    if outcome.status == "finished":
        raise ActionRefused(f"nothing to {what}: the run is already finished ({outcome.state_type})")
    if outcome.status == "unfinished":
        raise ActionRefused(f"only a finished run can be retried (this one is {outcome.state_type}); cancel it first")
    raise ActionRefused(f"cannot {what} the run now ({outcome.status}); reload and try again")


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
