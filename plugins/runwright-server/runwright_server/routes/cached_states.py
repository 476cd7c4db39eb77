"""``GET /cached_states``: the Cached states of a task, across runs of flows with that name."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from runwright_server import models
from runwright_server.auth import Principal, require_principal
from runwright_server.common import AUTH_RESPONSES, aware, engine_of
from runwright_server.db import read_tx
from runwright_server.schemas import CachedStateOut, MapIndex, Name, UtcDatetime

router = APIRouter(tags=["cached states"], responses=AUTH_RESPONSES)
Auth = Annotated[Principal, Depends(require_principal)]


@router.get("/cached_states", response_model=list[CachedStateOut])
def cached_states(
    request: Request,
    principal: Auth,
    flow_name: Annotated[Name, Query()],
    task_slug: Annotated[Name, Query()],
    created_after: Annotated[UtcDatetime | None, Query()] = None,
    map_index: Annotated[MapIndex | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Every history row with state type "Cached" of that task, newest first."""
    trs, tr, fr, f = models.task_run_states, models.task_runs, models.flow_runs, models.flows
    stmt = (
        select(trs.c.task_run_id, tr.c.flow_run_id, tr.c.map_index, trs.c.state, trs.c.timestamp)
        .join(tr, tr.c.id == trs.c.task_run_id)
        .join(fr, fr.c.id == tr.c.flow_run_id)
        .join(f, f.c.id == fr.c.flow_id)
        .where(
            trs.c.state_type == "Cached",
            tr.c.tenant_id == principal.tenant_id,
            tr.c.task_slug == task_slug,
            f.c.name == flow_name,
        )
    )
    if created_after is not None:
        stmt = stmt.where(trs.c.timestamp >= created_after)
    if map_index is not None:
        stmt = stmt.where(tr.c.map_index == map_index)
    stmt = stmt.order_by(trs.c.timestamp.desc(), trs.c.id.desc()).limit(limit)
    with read_tx(engine_of(request)) as conn:
        rows = conn.execute(stmt).all()
    return [
        {
            "task_run_id": r.task_run_id,
            "flow_run_id": r.flow_run_id,
            "map_index": r.map_index,
            "state": json.loads(r.state),
            "created": aware(r.timestamp),
        }
        for r in rows
    ]


