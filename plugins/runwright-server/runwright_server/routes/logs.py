"""Logs, written in batches and read per flow run."""

from __future__ import annotations

import json
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
    invalid_query,
    not_found,
)
from runwright_server.db import read_tx, write_tx
from runwright_server.schemas import Label, LogOut, LogsIn, LogsOut

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


#: the levels a ``level`` filter accepts, and the stored level names at or above each
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_AT_OR_ABOVE = {name: LEVELS[i:] for i, name in enumerate(LEVELS)}


@router.get("/flow_runs/{flow_run_id}/logs", response_model=list[LogOut], responses=NOT_FOUND)
def read_logs(
    flow_run_id: str,
    request: Request,
    principal: Auth,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    after_id: Annotated[int | None, Query(ge=0, le=2**62, description="Only records stored after this one, in the order stored")] = None,
    task: Annotated[Label | None, Query(description="Only the records of this task (its name or slug), mapped children included")] = None,
    level: Annotated[str | None, Query(max_length=20, description="Only records at this level or above: " + ", ".join(LEVELS))] = None,
) -> list[dict[str, Any]]:
    """The run's log records, oldest first (with ``after_id``: in the order they were stored,
    so a reader that passes the last id it saw gets every record exactly once)."""
    check_id(flow_run_id, "flow run")
    levels = None
    if level is not None:
        levels = _AT_OR_ABOVE.get(level.upper())
        if levels is None:
            raise invalid_query("level", f"level {level!r} is not a log level; use one of {', '.join(LEVELS)}")
    fr, f, tr, lg = models.flow_runs, models.flows, models.task_runs, models.logs
    with read_tx(engine_of(request)) as conn:
        owner = conn.execute(
            select(fr.c.id, f.c.tasks)
            .join(f, f.c.id == fr.c.flow_id)
            .where(fr.c.id == flow_run_id, fr.c.tenant_id == principal.tenant_id)
        ).first()
        if owner is None:
            raise not_found("flow run")
        stmt = select(lg).where(lg.c.flow_run_id == flow_run_id)
        if task is not None:
            slugs = {t["slug"] for t in json.loads(owner.tasks) if task in (t["slug"], t["name"])}
            task_runs = select(tr.c.id).where(tr.c.flow_run_id == flow_run_id, tr.c.task_slug.in_(slugs))
            stmt = stmt.where(lg.c.task_run_id.in_(task_runs))
        if levels is not None:
            stmt = stmt.where(lg.c.level.in_(levels))
        if after_id is not None:
            stmt = stmt.where(lg.c.id > after_id).order_by(lg.c.id)
        else:
            stmt = stmt.order_by(lg.c.timestamp, lg.c.id)
        rows = conn.execute(stmt.limit(limit).offset(offset)).mappings()
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
