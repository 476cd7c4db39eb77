"""Flow runs: creation (with one task run per flow task), reads, state writes, heartbeats."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, RowMapping, select, update

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.bodies import GuardedRoute
from runwright_server.common import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    aware,
    check_id,
    engine_of,
    json_response,
    not_found,
)
from runwright_server.db import read_tx, write_tx
from runwright_server.locking import FLOW_RUNS
from runwright_server.routes import _states, run_filters
from runwright_server.routes.task_runs import task_run_out
from runwright_server.run_rows import PENDING, insert_flow_run
from runwright_server.schemas import (
    FlowRunIn,
    FlowRunOut,
    FlowRunSummary,
    HeartbeatOut,
    Id,
    Label,
    LeaseReleaseIn,
    LeaseReleaseOut,
    ShortLabel,
    StateHistoryItem,
    StateWriteIn,
    StateWriteOut,
    TaskRunOut,
)
from runwright_server.settings import DEFAULT_LATE_AFTER_SECONDS

router = APIRouter(tags=["flow runs"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]


def _summary_select() -> Any:
    fr, f = models.flow_runs, models.flows
    return select(fr, f.c.name.label("flow_name")).join(f, f.c.id == fr.c.flow_id)


def late_before(request: Request) -> datetime:
    """A ``Scheduled`` run whose start is before this is late (``[server] late_after_seconds`` ago)."""
    return utcnow() - timedelta(seconds=request.app.state.settings.late_after_seconds)


def flow_run_out(row: RowMapping, late_cutoff: datetime | None = None) -> dict[str, Any]:
    """A flow run as the API shows it; ``late`` when it is ``Scheduled`` with its start
    before ``late_cutoff`` (default: ``DEFAULT_LATE_AFTER_SECONDS`` ago)."""
    if late_cutoff is None:
        late_cutoff = utcnow() - timedelta(seconds=DEFAULT_LATE_AFTER_SECONDS)
    return {
        "id": row["id"],
        "flow_id": row["flow_id"],
        "flow_name": row["flow_name"],
        "parameters": json.loads(row["parameters"]),
        "context": json.loads(row["context"]),
        "scheduled_start_time": aware(row["scheduled_start_time"]),
        "state": json.loads(row["state"]),
        "version": row["version"],
        "heartbeat": aware(row["heartbeat"]),
        "created": aware(row["created"]),
        "updated": aware(row["updated"]),
        "leased": row["lease"] is not None,
        "lease_holder": row["lease_holder"] if row["lease"] is not None else None,
        "late": row["state_type"] == "Scheduled" and row["scheduled_start_time"] < late_cutoff,
        "agent_id": row["agent_id"],
    }


def _get_run(conn: Connection, run_id: str, tenant_id: str) -> RowMapping | None:
    fr = models.flow_runs
    stmt = _summary_select().where(fr.c.id == run_id, fr.c.tenant_id == tenant_id)
    return conn.execute(stmt).mappings().first()


@router.post("/flow_runs", response_model=FlowRunOut, status_code=201, responses=NOT_FOUND)
def create_flow_run(body: FlowRunIn, request: Request, principal: Auth) -> Response:
    now = utcnow()
    scheduled = body.scheduled_start_time or now
    state = body.state or {
        "type": "Scheduled",
        "message": None,
        "start_time": aware(scheduled).isoformat(),  # type: ignore[union-attr]
    }
    run_id = str(uuid.uuid4())
    tenant = principal.tenant_id
    f = models.flows
    with write_tx(engine_of(request)) as conn:
        # by id, or by content hash: a re-run finds its flow and creates its run in one request
        where = f.c.id == body.flow_id if body.flow_id is not None else f.c.content_hash == body.flow_hash
        found = conn.execute(select(f.c.id, f.c.tasks).where(where, f.c.tenant_id == tenant)).first()
        if found is None:
            raise not_found("flow")
        flow_id, tasks_text = found
        task_runs = insert_flow_run(
            conn,
            run_id=run_id,
            tenant_id=tenant,
            flow_id=flow_id,
            tasks_text=tasks_text,
            parameters=body.parameters,
            context=body.context,
            scheduled_start_time=scheduled,
            state=state,
            now=now,
        )
        row = _get_run(conn, run_id, tenant)
    assert row is not None
    request.app.state.wakeups.notify(tenant)
    out = flow_run_out(row, late_before(request))
    # built in the declared shape (TaskRunSummary) and sent without re-validating 1,000s of rows
    out["task_runs"] = [
        {"id": task_run_id, "task_slug": slug, "map_index": -1, "state": PENDING, "version": 0, "heartbeat": None}
        for task_run_id, slug in task_runs
    ]
    return json_response(out, status_code=201)


@router.get("/flow_runs", response_model=list[FlowRunSummary])
def list_flow_runs(
    request: Request,
    principal: Auth,
    flow_id: Annotated[Id | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    flow: Annotated[Label | None, Query(description="Only runs of the flow of this name (any version)")] = None,
    state: Annotated[ShortLabel | None, Query(description="Only runs in this state type or a subtype (Failed: TimedOut too)")] = None,
    deployment: Annotated[ShortLabel | None, Query(description="Only runs of the deployment of this name")] = None,
) -> list[dict[str, Any]]:
    fr = models.flow_runs
    stmt = _summary_select().where(fr.c.tenant_id == principal.tenant_id)
    if flow_id is not None:
        stmt = stmt.where(fr.c.flow_id == flow_id)
    stmt = run_filters.apply(stmt, principal.tenant_id, flow=flow, state=state, deployment=deployment)
    stmt = stmt.order_by(fr.c.created.desc(), fr.c.id.desc()).limit(limit).offset(offset)
    with read_tx(engine_of(request)) as conn:
        late_cutoff = late_before(request)
        return [flow_run_out(row, late_cutoff) for row in conn.execute(stmt).mappings()]


@router.get("/flow_runs/{flow_run_id}", response_model=FlowRunOut, responses=NOT_FOUND)
def get_flow_run(flow_run_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    check_id(flow_run_id, "flow run")
    tr = models.task_runs
    with read_tx(engine_of(request)) as conn:
        row = _get_run(conn, flow_run_id, principal.tenant_id)
        if row is None:
            raise not_found("flow run")
        task_rows = conn.execute(
            select(tr).where(tr.c.flow_run_id == flow_run_id, tr.c.map_index == -1).order_by(tr.c.created, tr.c.id)
        ).mappings()
        out = flow_run_out(row, late_before(request))
        out["task_runs"] = [task_run_out(r) for r in task_rows]
    return out


@router.get("/flow_runs/{flow_run_id}/task_runs", response_model=list[TaskRunOut], responses=NOT_FOUND)
def get_flow_run_task_runs(flow_run_id: str, request: Request, principal: Auth) -> list[dict[str, Any]]:
    check_id(flow_run_id, "flow run")
    fr, tr = models.flow_runs, models.task_runs
    with read_tx(engine_of(request)) as conn:
        owner = conn.execute(
            select(fr.c.id).where(fr.c.id == flow_run_id, fr.c.tenant_id == principal.tenant_id)
        ).scalar()
        if owner is None:
            raise not_found("flow run")
        rows = conn.execute(
            select(tr).where(tr.c.flow_run_id == flow_run_id).order_by(tr.c.task_slug, tr.c.map_index)
        ).mappings()
        return [task_run_out(r) for r in rows]


@router.post(
    "/flow_runs/{flow_run_id}/state",
    response_model=StateWriteOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def set_flow_run_state(
    flow_run_id: str, body: StateWriteIn, request: Request, principal: Auth
) -> dict[str, Any] | JSONResponse:
    return _states.set_state(request, principal, FLOW_RUNS, flow_run_id, body, "flow run")


@router.get("/flow_runs/{flow_run_id}/states", response_model=list[StateHistoryItem], responses=NOT_FOUND)
def get_flow_run_states(flow_run_id: str, request: Request, principal: Auth) -> list[dict[str, Any]]:
    return _states.state_history(request, principal, FLOW_RUNS, flow_run_id, "flow run")


@router.post("/flow_runs/{flow_run_id}/heartbeat", response_model=HeartbeatOut, responses=NOT_FOUND)
def flow_run_heartbeat(flow_run_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    return _states.heartbeat(request, principal, FLOW_RUNS, flow_run_id, "flow run")


@router.post("/flow_runs/{flow_run_id}/lease/release", response_model=LeaseReleaseOut, responses=NOT_FOUND)
def release_flow_run_lease(flow_run_id: str, body: LeaseReleaseIn, request: Request, principal: Auth) -> dict[str, Any]:
    """Clear the flow run's lease if ``lease`` is still it (a runner ending without a final
    state lets the next runner start at once). Releasing a lease one does not hold does nothing."""
    check_id(flow_run_id, "flow run")
    fr = models.flow_runs
    with write_tx(engine_of(request)) as conn:
        count = conn.execute(
            update(fr)
            .where(fr.c.id == flow_run_id, fr.c.tenant_id == principal.tenant_id, fr.c.lease == body.lease)
            .values(lease=None, lease_holder=None)
        ).rowcount
        if count == 0 and _get_run(conn, flow_run_id, principal.tenant_id) is None:
            raise not_found("flow run")
    return {"released": count == 1}
