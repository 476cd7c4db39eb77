"""What the UI's buttons do: cancel, retry, pause / resume, run a deployment.

Each is what the HTTP API does for the same request, called in-process with the session's
tenant as the principal: cancel and retry are :mod:`runwright_server.run_control` (behind
``POST /flow_runs/{id}/cancel`` and ``/retry``); pause, resume and "Run" are the deployment
routes' own functions (``POST /deployments/{name}/pause``, ``/resume``, ``/runs``).
An action that does not apply (cancel a finished run, retry a running one) raises
:class:`ActionRefused` with the reason the page shows.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request
from pydantic import ValidationError
from sqlalchemy import Engine

from runwright_server import run_control
from runwright_server.auth import Principal
from runwright_server.deployment_schemas import DeploymentRunIn
from runwright_server.routes import deployments


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


def set_paused(request: Request, tenant: str, name: str, paused: bool) -> None:
    """Pause or resume (the API's ``POST /deployments/{name}/pause`` / ``resume``: pausing drops
    its untouched scheduled runs, resuming schedules from now on)."""
    route = deployments.pause_deployment if paused else deployments.resume_deployment
    try:
        route(name, request, Principal(tenant_id=tenant))
    except HTTPException as exc:
        raise _refusal(exc) from None


def run_deployment(request: Request, tenant: str, name: str, parameters: dict[str, Any]) -> str:
    """A new run of the deployment, due now, its parameters over the defaults (the API's
    ``POST /deployments/{name}/runs``, which also wakes waiting agents); the new run's id."""
    try:
        body = DeploymentRunIn(parameters=parameters)
    except ValidationError as exc:
        raise ActionRefused("the parameters are not valid: " + "; ".join(e["msg"] for e in exc.errors())[:300]) from None
    try:
        response = deployments.run_deployment(name, body, request, Principal(tenant_id=tenant))
    except HTTPException as exc:
        raise _refusal(exc) from None
    run_id: str = json.loads(bytes(response.body))["id"]
    return run_id


def _refusal(exc: HTTPException) -> Exception:
    if exc.status_code == 404:
        return NotFound("deployment not found")
    return ActionRefused(str(exc.detail))
