"""Deployments: a flow, where its code is, its schedule, parameters and queue, by name.

``POST /deployments`` registers or updates one (the same spec again changes nothing);
``GET`` lists or reads them with their next starts; ``pause`` / ``resume`` / ``DELETE``;
``POST /deployments/{name}/runs`` creates a run due now. A change of the schedule, the
parameters, the queue or the flow drops the runs the scheduler created that nothing touched
yet and schedules anew (:mod:`runwright_server.scheduler`). Everything is the tenant's own:
another tenant's deployment of the same name is another deployment.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Connection, RowMapping, delete, select, update
from sqlalchemy.exc import IntegrityError

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.bodies import GuardedRoute
from runwright_server.common import AUTH_RESPONSES, NOT_FOUND, aware, engine_of, json_response, not_found
from runwright_server.db import read_tx, write_tx
from runwright_server.deployment_schemas import (
    NEXT_STARTS,
    DeploymentDeletedOut,
    DeploymentIn,
    DeploymentOut,
    DeploymentRunIn,
    DeploymentWriteOut,
    parse_schedule,
)
from runwright_server.locking import FLOW_RUNS, write_state
from runwright_server.routes.flow_runs import _get_run, flow_run_out, late_before
from runwright_server.run_rows import PENDING, delete_unstarted_runs, insert_flow_run, scheduled_state
from runwright_server.scheduler import SchedulingLimits, schedule_deployment
from runwright_server.schemas import FlowRunOut, to_json_text

router = APIRouter(tags=["deployments"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
#: the fields whose change makes the scheduler's untouched runs stale
_RESCHEDULING_FIELDS = ("schedule", "parameters", "queue", "flow_id", "flow_name")


def _spec(body: DeploymentIn) -> dict[str, Any]:
    return body.model_dump(exclude={"name"})


def spec_hash(spec: dict[str, Any]) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def next_starts(row: RowMapping | dict[str, Any], now: datetime) -> list[datetime]:
    """The schedule's next start times after ``now`` (naive UTC); none while paused."""
    if row["paused"] or row["schedule"] is None:
        return []
    try:
        schedule = parse_schedule(json.loads(row["schedule"]))
        return [start.astimezone(UTC) for start in schedule.next(NEXT_STARTS, after=now.replace(tzinfo=UTC))]
    except (ValueError, OverflowError, ArithmeticError):  # past the calendar's end, or a stricter rule
        return []


def deployment_out(row: RowMapping | dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "flow_id": row["flow_id"],
        "flow_name": row["flow_name"],
        "storage": row["storage"],
        "storage_ref": json.loads(row["storage_ref"]),
        "schedule": json.loads(row["schedule"]) if row["schedule"] is not None else None,
        "parameters": json.loads(row["parameters"]),
        "queue": row["queue"],
        "executor": row["executor"],
        "concurrency_limit": row["concurrency_limit"],
        "paused": bool(row["paused"]),
        "version": row["version"],
        "next_starts": next_starts(row, now or utcnow()),
        "created": aware(row["created"]),
        "updated": aware(row["updated"]),
    }


def _limits(request: Request) -> SchedulingLimits:
    return SchedulingLimits.of(request.app.state.settings)


def _notify(request: Request, tenant_id: str) -> None:
    request.app.state.wakeups.notify(tenant_id)


def _by_name(conn: Connection, tenant_id: str, name: str, lock: bool = False) -> RowMapping | None:
    d = models.deployments
    stmt = select(d).where(d.c.tenant_id == tenant_id, d.c.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return conn.execute(stmt).mappings().first()


def _checked_name(name: str) -> str:
    """A deployment name from a path; anything that cannot be one is simply not found."""
    if not _NAME.fullmatch(name):
        raise not_found(f"deployment {name[:200]!r}")
    return name


def _missing(name: str) -> Exception:
    return not_found(f"deployment {name!r}")


def _values(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored columns of a spec."""
    return {
        "flow_id": spec["flow_id"],
        "flow_name": spec["flow_name"],
        "storage": spec["storage"],
        "storage_ref": to_json_text(spec["storage_ref"]),
        "schedule": to_json_text(spec["schedule"]) if spec["schedule"] is not None else None,
        "parameters": to_json_text(spec["parameters"]),
        "queue": spec["queue"],
        "executor": spec["executor"],
        "concurrency_limit": spec["concurrency_limit"],
    }


def _differs(new: Any, stored: Any) -> bool:
    """Whether a column changes (JSON text compared as values: key order does not count)."""
    if isinstance(new, str) and isinstance(stored, str) and new[:1] in "{[" and stored[:1] in "{[":
        return bool(json.loads(new) != json.loads(stored))
    return bool(new != stored)


@router.post(
    "/deployments",
    response_model=DeploymentWriteOut,
    status_code=201,
    responses={**NOT_FOUND, 200: {"model": DeploymentWriteOut, "description": "Updated, or unchanged"}},
)
def put_deployment(body: DeploymentIn, request: Request, principal: Auth) -> Response:
    """Register the deployment ``name`` (201), or update it (200, ``changed``); the same spec
    again changes nothing (200, ``"changed": false``, the version kept)."""
    tenant = principal.tenant_id
    spec = _spec(body)
    digest = spec_hash(spec)
    values = _values(spec)
    now = utcnow()
    d, f = models.deployments, models.flows
    created_runs = 0
    with write_tx(engine_of(request)) as conn:
        flow = conn.execute(select(f.c.id).where(f.c.id == body.flow_id, f.c.tenant_id == tenant)).scalar()
        if flow is None:
            raise not_found("flow")
        existing = _by_name(conn, tenant, body.name, lock=True)
        status, changed = 200, True
        if existing is None:
            row = {
                "id": str(uuid.uuid4()),
                "tenant_id": tenant,
                "name": body.name,
                **values,
                "paused": False,
                "spec_hash": digest,
                "version": 1,
                "scheduled_until": None,
                "created": now,
                "updated": now,
            }
            try:
                with conn.begin_nested():
                    conn.execute(d.insert().values(**row))
                status = 201
            except IntegrityError:  # a concurrent deploy of the same name won: update it instead
                existing = _by_name(conn, tenant, body.name, lock=True)
                if existing is None:
                    raise
        if existing is not None:
            if existing["spec_hash"] == digest:
                changed = False
            else:
                reschedule = any(_differs(values[key], existing[key]) for key in _RESCHEDULING_FIELDS)
                changes: dict[str, Any] = {**values, "spec_hash": digest, "version": existing["version"] + 1, "updated": now}
                if reschedule:
                    delete_unstarted_runs(conn, existing["id"], scheduled_only=True)
                    changes["scheduled_until"] = None
                conn.execute(update(d).where(d.c.id == existing["id"]).values(**changes))
        stored = _by_name(conn, tenant, body.name)
        assert stored is not None
        if changed:
            created_runs = schedule_deployment(conn, stored, _limits(request), now)
            stored = _by_name(conn, tenant, body.name)
            assert stored is not None
    if created_runs:
        _notify(request, tenant)
    return json_response({**deployment_out(stored, now), "changed": changed}, status_code=status)


@router.get("/deployments", response_model=list[DeploymentOut])
def list_deployments(
    request: Request,
    principal: Auth,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    d = models.deployments
    stmt = select(d).where(d.c.tenant_id == principal.tenant_id).order_by(d.c.name).limit(limit).offset(offset)
    now = utcnow()
    with read_tx(engine_of(request)) as conn:
        rows = list(conn.execute(stmt).mappings())
    return json_response([deployment_out(row, now) for row in rows])


@router.get("/deployments/{name}", response_model=DeploymentOut, responses=NOT_FOUND)
def get_deployment(name: str, request: Request, principal: Auth) -> Response:
    _checked_name(name)
    with read_tx(engine_of(request)) as conn:
        row = _by_name(conn, principal.tenant_id, name)
    if row is None:
        raise _missing(name)
    return json_response(deployment_out(row))


def _set_paused(request: Request, principal: Auth, name: str, paused: bool) -> Response:
    _checked_name(name)
    tenant = principal.tenant_id
    d = models.deployments
    now = utcnow()
    created_runs = 0
    with write_tx(engine_of(request)) as conn:
        row = _by_name(conn, tenant, name, lock=True)
        if row is None:
            raise _missing(name)
        if bool(row["paused"]) != paused:
            if paused:  # its untouched scheduled runs go; resuming schedules from then on
                delete_unstarted_runs(conn, row["id"], scheduled_only=True)
            # resumed: from now on (a start missed while paused is not run)
            until = None if paused else now
            conn.execute(update(d).where(d.c.id == row["id"]).values(paused=paused, scheduled_until=until, updated=now))
            row = _by_name(conn, tenant, name)
            assert row is not None
            if not paused:
                created_runs = schedule_deployment(conn, row, _limits(request), now)
    if created_runs:
        _notify(request, tenant)
    return json_response(deployment_out(row, now))


@router.post("/deployments/{name}/pause", response_model=DeploymentOut, responses=NOT_FOUND)
def pause_deployment(name: str, request: Request, principal: Auth) -> Response:
    """No more scheduled runs; the ones the scheduler created and nothing touched yet go.
    ``deployments run`` still works."""
    return _set_paused(request, principal, name, True)


@router.post("/deployments/{name}/resume", response_model=DeploymentOut, responses=NOT_FOUND)
def resume_deployment(name: str, request: Request, principal: Auth) -> Response:
    """Scheduled runs again, from the next start on (starts missed while paused are not run)."""
    return _set_paused(request, principal, name, False)


@router.delete("/deployments/{name}", response_model=DeploymentDeletedOut, responses=NOT_FOUND)
def delete_deployment(name: str, request: Request, principal: Auth) -> dict[str, Any]:
    """Delete the deployment and its runs that never started (Scheduled, unclaimed,
    untouched); a Scheduled run of it that was released or retried ends ``Cancelled``;
    finished and running runs stay."""
    _checked_name(name)
    tenant = principal.tenant_id
    fr = models.flow_runs
    now = utcnow()
    with write_tx(engine_of(request)) as conn:
        row = _by_name(conn, tenant, name, lock=True)
        if row is None:
            raise _missing(name)
        dropped = delete_unstarted_runs(conn, row["id"], scheduled_only=False)
        leftovers = conn.execute(
            select(fr.c.id, fr.c.version).where(
                fr.c.deployment_id == row["id"], fr.c.state_type == "Scheduled", fr.c.agent_id.is_(None)
            )
        ).all()
        state = to_json_text({"type": "Cancelled", "message": f"its deployment {name!r} was deleted"})
        for leftover in leftovers:
            write_state(conn, FLOW_RUNS, leftover.id, tenant, leftover.version, state, "Cancelled", now)
        conn.execute(delete(models.deployments).where(models.deployments.c.id == row["id"]))
    return {"name": name, "dropped_runs": dropped, "cancelled_runs": len(leftovers)}


@router.post("/deployments/{name}/runs", response_model=FlowRunOut, status_code=201, responses=NOT_FOUND)
def run_deployment(name: str, body: DeploymentRunIn, request: Request, principal: Auth) -> Response:
    """A run of the deployment, Scheduled and due now, with the deployment's parameters and
    ``parameters`` over them; waiting agents are woken at once."""
    _checked_name(name)
    tenant = principal.tenant_id
    now = utcnow()
    run_id = str(uuid.uuid4())
    f = models.flows
    with write_tx(engine_of(request)) as conn:
        row = _by_name(conn, tenant, name)
        if row is None:
            raise _missing(name)
        tasks_text = conn.execute(select(f.c.tasks).where(f.c.id == row["flow_id"])).scalar()
        assert tasks_text is not None  # a foreign key
        task_runs = insert_flow_run(
            conn,
            run_id=run_id,
            tenant_id=tenant,
            flow_id=row["flow_id"],
            tasks_text=tasks_text,
            parameters={**json.loads(row["parameters"]), **body.parameters},
            context={},
            scheduled_start_time=now,
            state=scheduled_state(now),
            now=now,
            orchestration={"deployment_id": row["id"], "queue": row["queue"]},
        )
        run = _get_run(conn, run_id, tenant)
    assert run is not None
    _notify(request, tenant)
    out = flow_run_out(run, late_before(request))
    out["task_runs"] = [
        {"id": task_run_id, "task_slug": slug, "map_index": -1, "state": PENDING, "version": 0, "heartbeat": None}
        for task_run_id, slug in task_runs
    ]
    return json_response(out, status_code=201)
