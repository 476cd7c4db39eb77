"""Task runs: race-safe get-or-create by (flow run, task slug, map index), state writes."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.exc import IntegrityError

from runwright_cloud.server import models
from runwright_cloud.server.auth import Principal, require_principal, utcnow
from runwright_cloud.server.common import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    aware,
    check_id,
    engine_of,
    not_found,
)
from runwright_cloud.server.db import read_tx, write_tx
from runwright_cloud.server.locking import TASK_RUNS, write_state
from runwright_cloud.server.routes import _states
from runwright_cloud.server.schemas import (
    BatchWriteIn,
    BatchWriteOut,
    HeartbeatOut,
    StateHistoryItem,
    StateWriteIn,
    StateWriteOut,
    TaskRunIn,
    TaskRunOut,
    to_json_text,
)

router = APIRouter(tags=["task runs"], responses=AUTH_RESPONSES)
Auth = Annotated[Principal, Depends(require_principal)]

PENDING_TEXT = to_json_text({"type": "Pending", "message": None})


def task_run_out(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "flow_run_id": row["flow_run_id"],
        "task_slug": row["task_slug"],
        "map_index": row["map_index"],
        "state": json.loads(row["state"]),
        "version": row["version"],
        "heartbeat": aware(row["heartbeat"]),
        "created": aware(row["created"]),
        "updated": aware(row["updated"]),
    }


def _find(conn: Connection, tenant_id: str, flow_run_id: str, slug: str, map_index: int) -> RowMapping | None:
    tr = models.task_runs
    return (
        conn.execute(
            select(tr).where(
                tr.c.flow_run_id == flow_run_id,
                tr.c.task_slug == slug,
                tr.c.map_index == map_index,
                tr.c.tenant_id == tenant_id,
            )
        )
        .mappings()
        .first()
    )


@router.post(
    "/task_runs",
    response_model=TaskRunOut,
    status_code=201,
    responses={**NOT_FOUND, 200: {"model": TaskRunOut, "description": "The task run already existed"}},
)
def get_or_create_task_run(body: TaskRunIn, request: Request, response: Response, principal: Auth) -> dict[str, Any]:
    """Get the task run of (flow run, task slug, map index), creating it if missing.

    The slug must be a task of the flow (its parent run, map index -1, exists).
    """
    tenant = principal.tenant_id
    with write_tx(engine_of(request)) as conn:
        row = _find(conn, tenant, body.flow_run_id, body.task_slug, body.map_index)
        if row is not None:
            response.status_code = 200
            return task_run_out(row)
        if body.map_index == -1 or _find(conn, tenant, body.flow_run_id, body.task_slug, -1) is None:
            # parent task runs are created with their flow run: unknown run, slug or tenant
            raise not_found("flow run or task slug")
        now = utcnow()
        values = {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant,
            "flow_run_id": body.flow_run_id,
            "task_slug": body.task_slug,
            "map_index": body.map_index,
            "state": PENDING_TEXT,
            "state_type": "Pending",
            "version": 0,
            "heartbeat": None,
            "created": now,
            "updated": now,
        }
        try:
            with conn.begin_nested():
                conn.execute(models.task_runs.insert().values(**values))
                conn.execute(
                    models.task_run_states.insert().values(
                        task_run_id=values["id"], version=0, state=PENDING_TEXT, state_type="Pending", timestamp=now
                    )
                )
        except IntegrityError:  # a concurrent get-or-create inserted it first
            row = _find(conn, tenant, body.flow_run_id, body.task_slug, body.map_index)
            if row is None:
                raise
            response.status_code = 200
            return task_run_out(row)
    return task_run_out(values)


@router.get("/task_runs/{task_run_id}", response_model=TaskRunOut, responses=NOT_FOUND)
def get_task_run(task_run_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    check_id(task_run_id, "task run")
    tr = models.task_runs
    with read_tx(engine_of(request)) as conn:
        row = (
            conn.execute(select(tr).where(tr.c.id == task_run_id, tr.c.tenant_id == principal.tenant_id))
            .mappings()
            .first()
        )
    if row is None:
        raise not_found("task run")
    return task_run_out(row)


@router.post(
    "/task_runs/{task_run_id}/state",
    response_model=StateWriteOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def set_task_run_state(
    task_run_id: str, body: StateWriteIn, request: Request, principal: Auth
) -> dict[str, Any] | JSONResponse:
    return _states.set_state(request, principal, TASK_RUNS, task_run_id, body, "task run")


@router.get("/task_runs/{task_run_id}/states", response_model=list[StateHistoryItem], responses=NOT_FOUND)
def get_task_run_states(task_run_id: str, request: Request, principal: Auth) -> list[dict[str, Any]]:
    return _states.state_history(request, principal, TASK_RUNS, task_run_id, "task run")


@router.post("/task_runs/{task_run_id}/heartbeat", response_model=HeartbeatOut, responses=NOT_FOUND)
def task_run_heartbeat(task_run_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    return _states.heartbeat(request, principal, TASK_RUNS, task_run_id, "task run")


@router.post("/task_run_states", response_model=BatchWriteOut)
def set_task_run_states(body: BatchWriteIn, request: Request, principal: Auth) -> dict[str, Any]:
    """Apply many version-checked task-run state writes in one transaction, each on its own."""
    now = utcnow()
    results = []
    with write_tx(engine_of(request)) as conn:
        for item in body.writes:
            outcome = write_state(
                conn,
                TASK_RUNS,
                item.task_run_id,
                principal.tenant_id,
                item.version,
                to_json_text(item.state),
                item.state["type"],
                now,
            )
            result: dict[str, Any] = {"task_run_id": item.task_run_id, "status": outcome.status, "version": outcome.version}
            if outcome.status == "conflict":
                result["current_state"] = outcome.current_state
            results.append(result)
    return {"results": results}
