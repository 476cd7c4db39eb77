"""Logs, written in batches and read per flow run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from runwright_server import models
from runwright_server.auth import Principal, require_principal
from runwright_server.bodies import GuardedRoute
from runwright_server.common import (
    AUTH_RESPONSES,
    NOT_FOUND,
    aware,
    check_id,
    engine_of,
    not_found,
)
from runwright_server.db import read_tx, write_tx
from runwright_server.schemas import LogOut, LogsIn, LogsOut

router = APIRouter(tags=["logs"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]


@router.post("/logs", response_model=LogsOut, status_code=201, responses=NOT_FOUND)
def write_logs(body: LogsIn, request: Request, principal: Auth) -> dict[str, int]:
    """Append a batch of log records; every flow run (and task run) named must be the tenant's."""
    fr, tr = models.flow_runs, models.task_runs
    run_ids = {log.flow_run_id for log in body.logs}
    task_ids = {log.task_run_id for log in body.logs if log.task_run_id is not None}
    with write_tx(engine_of(request)) as conn:
        if run_ids:
            found = set(
                conn.execute(select(fr.c.id).where(fr.c.id.in_(run_ids), fr.c.tenant_id == principal.tenant_id)).scalars()
            )
            if found != run_ids:
                raise not_found("flow run")
        if task_ids:
            owners = dict(
                conn.execute(
                    select(tr.c.id, tr.c.flow_run_id).where(tr.c.id.in_(task_ids), tr.c.tenant_id == principal.tenant_id)
                ).all()
            )
            if any(log.task_run_id is not None and owners.get(log.task_run_id) != log.flow_run_id for log in body.logs):
                raise not_found("task run")
        if body.logs:
            conn.execute(
                models.logs.insert(),
                [{**log.model_dump(), "tenant_id": principal.tenant_id} for log in body.logs],
            )
    return {"count": len(body.logs)}


@router.get("/flow_runs/{flow_run_id}/logs", response_model=list[LogOut], responses=NOT_FOUND)
def read_logs(
    flow_run_id: str,
    request: Request,
    principal: Auth,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[dict[str, Any]]:
    """The run's log records, oldest first."""
    check_id(flow_run_id, "flow run")
    fr, lg = models.flow_runs, models.logs
    with read_tx(engine_of(request)) as conn:
        owner = conn.execute(
            select(fr.c.id).where(fr.c.id == flow_run_id, fr.c.tenant_id == principal.tenant_id)
        ).scalar()
        if owner is None:
            raise not_found("flow run")
        rows = conn.execute(
            select(lg)
            .where(lg.c.flow_run_id == flow_run_id)
            .order_by(lg.c.timestamp, lg.c.id)
            .limit(limit)
            .offset(offset)
        ).mappings()
        return [
            {
                "id": r["id"],
                "flow_run_id": r["flow_run_id"],
                "task_run_id": r["task_run_id"],
                "timestamp": aware(r["timestamp"]),
                "level": r["level"],
                "name": r["name"],
                "message": r["message"],
            }
            for r in rows
        ]
