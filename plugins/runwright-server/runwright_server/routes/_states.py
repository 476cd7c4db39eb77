"""State writes, state history and heartbeats: the same contract for flow runs and task runs."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, update

from runwright_server.auth import Principal, utcnow
from runwright_server.common import aware, check_id, engine_of, not_found
from runwright_server.db import read_tx, write_tx
from runwright_server.locking import (
    FLOW_RUNS,
    RunKind,
    WriteOutcome,
    current,
    set_lease,
    task_run_lease,
    write_state,
)
from runwright_server.schemas import StateWriteIn, state_text
from runwright_server.state_rules import REFUSED_DETAIL


def set_state(
    request: Request, principal: Principal, kind: RunKind, run_id: str, body: StateWriteIn, what: str
) -> dict[str, Any] | JSONResponse:
    check_id(run_id, what)
    text = state_text(body.state)
    tenant = principal.tenant_id
    lease_lost = False
    with write_tx(engine_of(request)) as conn:
        if kind is not FLOW_RUNS and body.lease is not None:
            # a leased task-run write: only while the token is its flow run's lease
            found = task_run_lease(conn, run_id, tenant)
            lease_lost = found is not None and found[1] != body.lease
        if lease_lost:
            outcome = current(conn, kind, run_id, tenant)
        else:
            outcome = write_state(conn, kind, run_id, tenant, body.version, text, body.state["type"], utcnow())
            if kind is FLOW_RUNS and outcome.status == "ok":
                # the lease lives while the flow run is Running; any other state clears it
                running = body.state["type"] == "Running"
                set_lease(conn, run_id, body.lease if running else None, body.lease_holder if running else None)
    if outcome.status == "ok" and not lease_lost:
        request.app.state.wakeups.notify(tenant)  # event streams (and agents) look again at once
    if lease_lost:
        return _conflict(f"the flow run of this task run is leased by another runner (current version {outcome.version})", outcome)
    if outcome.status == "not_found":
        raise not_found(what)
    if outcome.status == "conflict":
        return _conflict(f"version conflict: expected {body.version}, current is {outcome.version}", outcome)
    if outcome.status == "refused":
        return _conflict(f"{body.state['type']} refused: {REFUSED_DETAIL}", outcome)
    return {"id": run_id, "version": outcome.version}


def _conflict(detail: str, outcome: WriteOutcome) -> JSONResponse:
    return JSONResponse(
        status_code=409,
        content={"detail": detail, "current_version": outcome.version, "current_state": outcome.current_state},
    )


def state_history(request: Request, principal: Principal, kind: RunKind, run_id: str, what: str) -> list[dict[str, Any]]:
    check_id(run_id, what)
    runs, hist = kind.runs, kind.history
    fk = hist.c[kind.history_fk]
    with read_tx(engine_of(request)) as conn:
        owner = conn.execute(
            select(runs.c.id).where(runs.c.id == run_id, runs.c.tenant_id == principal.tenant_id)
        ).scalar()
        if owner is None:
            raise not_found(what)
        rows = conn.execute(
            select(hist.c.version, hist.c.state, hist.c.timestamp).where(fk == run_id).order_by(hist.c.version)
        ).all()
    return [{"version": r.version, "state": json.loads(r.state), "timestamp": aware(r.timestamp)} for r in rows]


def heartbeat(request: Request, principal: Principal, kind: RunKind, run_id: str, what: str) -> dict[str, Any]:
    check_id(run_id, what)
    runs, now = kind.runs, utcnow()
    with write_tx(engine_of(request)) as conn:
        count = conn.execute(
            update(runs).where(runs.c.id == run_id, runs.c.tenant_id == principal.tenant_id).values(heartbeat=now)
        ).rowcount
        cancel = kind is FLOW_RUNS and count == 1 and conn.execute(
            select(runs.c.cancel_requested).where(runs.c.id == run_id)
        ).scalar() is not None
    if count != 1:
        raise not_found(what)
    return {"id": run_id, "heartbeat": aware(now), "cancel": cancel}
