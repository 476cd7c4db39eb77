"""Run control: ``POST /flow_runs/{id}/cancel``, ``/cancelled`` and ``/retry``.

A cancel ends an unstarted run (Pending, Scheduled, Submitted) ``Cancelled`` at once, with
its unfinished task runs; a Running run gets ``cancel_requested`` (202) and is told through
its runner's heartbeat answer and its agent's poll, which are woken at once. Whoever stops it
records ``Cancelled`` with ``/cancelled``. A retry puts a finished run back to Scheduled (due
now) with the task runs that did not succeed Pending.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from runwright_server import run_control
from runwright_server.auth import Principal, require_principal
from runwright_server.bodies import GuardedRoute
from runwright_server.common import AUTH_RESPONSES, NOT_FOUND, check_id, engine_of, not_found
from runwright_server.schemas import ErrorOut, Message, _In

router = APIRouter(tags=["run control"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]
CONFLICT_409: dict[int | str, dict[str, Any]] = {409: {"model": ErrorOut, "description": "Not in a state that allows it"}}


class RunControlOut(BaseModel):
    id: str
    state: str = Field(description="The run's state type after the request.")
    cancel_requested: bool = False
    queue: str | None = Field(default=None, description="The run's work queue (none: no agent runs it).")


class CancelledIn(_In):
    message: Message | None = None


def _answer(request: Request, tenant: str, run_id: str, outcome: run_control.Outcome, what: str) -> Any:
    if outcome.status == "not_found":
        raise not_found("flow run")
    if outcome.status in ("cancelled", "retried"):
        request.app.state.wakeups.notify(tenant)
        return {"id": run_id, "state": outcome.state_type, "cancel_requested": outcome.status == "cancelled", "queue": outcome.queue}
    if outcome.status == "requested":
        request.app.state.wakeups.notify(tenant)
        return JSONResponse(status_code=202, content={"id": run_id, "state": outcome.state_type, "cancel_requested": True})
    details = {
        "finished": f"flow run {run_id} is already finished ({outcome.state_type}): nothing to {what}",
        "unfinished": f"flow run {run_id} is not finished ({outcome.state_type or 'it keeps changing'}): "
        f"only a finished run can be {what}ed; cancel it first",
        "not_requested": f"no cancel was requested for flow run {run_id}: `runwright runs cancel {run_id}` first",
    }
    return JSONResponse(status_code=409, content={"detail": details[outcome.status]})


@router.post(
    "/flow_runs/{flow_run_id}/cancel", response_model=RunControlOut, responses={**NOT_FOUND, **CONFLICT_409, 202: {"model": RunControlOut}}
)
def cancel_flow_run(flow_run_id: str, request: Request, principal: Auth) -> Any:
    """Cancel a flow run (200: Cancelled now; 202: a Running run is asked to stop; 409: finished)."""
    check_id(flow_run_id, "flow run")
    outcome = run_control.cancel(engine_of(request), principal.tenant_id, flow_run_id)
    return _answer(request, principal.tenant_id, flow_run_id, outcome, "cancel")


@router.post("/flow_runs/{flow_run_id}/cancelled", response_model=RunControlOut, responses={**NOT_FOUND, **CONFLICT_409})
def flow_run_cancelled(flow_run_id: str, body: CancelledIn, request: Request, principal: Auth) -> Any:
    """Record that a run whose cancel was requested stopped: it and its unfinished task runs
    end Cancelled (idempotent; 409 when no cancel was requested or it finished otherwise)."""
    check_id(flow_run_id, "flow run")
    outcome = run_control.mark_cancelled(engine_of(request), principal.tenant_id, flow_run_id, body.message)
    return _answer(request, principal.tenant_id, flow_run_id, outcome, "cancel")


@router.post("/flow_runs/{flow_run_id}/retry", response_model=RunControlOut, responses={**NOT_FOUND, **CONFLICT_409})
def retry_flow_run(flow_run_id: str, request: Request, principal: Auth) -> Any:
    """A finished run back to Scheduled (due now); its failed, cancelled and unfinished task
    runs Pending, its successful ones kept (409 for an unfinished run)."""
    check_id(flow_run_id, "flow run")
    outcome = run_control.retry(engine_of(request), principal.tenant_id, flow_run_id)
    return _answer(request, principal.tenant_id, flow_run_id, outcome, "retry")
