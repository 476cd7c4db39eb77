"""The UI's pages (GET) and its actions (POST), each scoped to the session's tenant."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, quote_plus

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from runwright_server.auth import utcnow
from runwright_server.common import check_id, engine_of
from runwright_server.db import read_tx
from runwright_server.ui import actions, queries
from runwright_server.ui.sessions import COOKIE_NAME, SESSION_SECONDS, UiSession, create_session, end_session
from runwright_server.ui.web import (
    base_path,
    checked_form,
    page_session,
    read_form,
    redirect,
    render,
    safe_next,
)

router = APIRouter(include_in_schema=False)
Session = Annotated[UiSession, Depends(page_session)]
MAX_TOKEN_CHARS = 200
STATE_CHOICES = (
    "Scheduled", "Submitted", "Running", "Success", "Failed", "Cancelled", "TriggerFailed", "TimedOut", "Pending", "Retrying", "Skipped", "Mapped", "Cached",
)


def _ctx(session: UiSession) -> dict[str, Any]:
    return {"session": session, "now": utcnow()}


# -- sign-in ---------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=safe_next(next), error=None, session=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    token = form.get("token", "").strip()
    target = safe_next(form.get("next"))
    if not token or len(token) > MAX_TOKEN_CHARS:
        session_id = None
    else:
        session_id = await run_in_threadpool(create_session, engine_of(request), token)
    if session_id is None:
        error = "That API token is unknown or revoked. Create one with `runwright server token create --name NAME --tenant TENANT` and paste it here."
        if not token:
            error = "Paste an API token (from `runwright server token create`)."
        return render(request, "login.html", status_code=401, next=target, error=error, session=None)
    response = redirect(request, target)
    response.set_cookie(
        COOKIE_NAME, session_id, max_age=SESSION_SECONDS, path=(base_path(request) or "/"), httponly=True,
        samesite="lax", secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: Session) -> Response:
    await checked_form(request, session)
    cookie = request.cookies.get(COOKIE_NAME, "")
    await run_in_threadpool(end_session, request.app, cookie)
    response = redirect(request, "/login")
    response.delete_cookie(COOKIE_NAME, path=(base_path(request) or "/"))
    return response


# -- dashboard -------------------------------------------------------------------------------
@router.get("/")
def dashboard(request: Request, session: Session) -> Response:
    now = utcnow()
    since = now - timedelta(hours=24)
    tenant = session.tenant_id
    with read_tx(engine_of(request)) as conn:
        counts = queries.counts_by_state(conn, tenant, since)
        failures = queries.recent_failures(conn, tenant, since)
        late = queries.late_runs(conn, tenant, now)
        agents = [a for a in queries.list_agents(conn, tenant, now) if a["online"]]
    return render(
        request, "dashboard.html", counts=counts, total=sum(counts.values()), failures=failures, late=late,
        agents=agents, **_ctx(session),
    )


# -- flow runs -------------------------------------------------------------------------------
def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone().replace(tzinfo=None)


@router.get("/flow-runs")
def flow_runs(
    request: Request,
    session: Session,
    flow: Annotated[str, Query(max_length=500)] = "",
    deployment: Annotated[str, Query(max_length=200)] = "",
    state: Annotated[str, Query(max_length=100)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[str, Query(max_length=120)] = "",
) -> Response:
    flt = queries.RunFilter(flow=flow, deployment=deployment, state=state, since=_parse_time(since), until=_parse_time(until))
    cursor = queries.decode_cursor(before) if before else None
    with read_tx(engine_of(request)) as conn:
        runs, next_cursor = queries.list_runs(conn, session.tenant_id, flt, cursor)
        choices = queries.filter_choices(conn, session.tenant_id)
    params = {"flow": flow, "deployment": deployment, "state": state, "since": since, "until": until}
    return render(
        request, "flow_runs.html", runs=runs, next_cursor=next_cursor, filters=params, choices=choices,
        states=STATE_CHOICES, paged=bool(before), **_ctx(session),
    )


def _run_or_404(request: Request, session: UiSession, run_id: str) -> dict[str, Any] | Response:
    check_id(run_id, "flow run")
    with read_tx(engine_of(request)) as conn:
        run = queries.get_run(conn, session.tenant_id, run_id)
    if run is None:
        return render(request, "not_found.html", status_code=404, what="flow run", **_ctx(session))
    return run


@router.get("/flow-runs/{run_id}")
def flow_run(request: Request, session: Session, run_id: str, notice: str = "") -> Response:
    run = _run_or_404(request, session, run_id)
    if isinstance(run, Response):
        return run
    return render(request, "flow_run.html", run=run, notice=notice[:200], task_run=None, **_tasks(request, session, run_id), **_ctx(session))


def _tasks(request: Request, session: UiSession, run_id: str) -> dict[str, Any]:
    """The run's task runs, in the page itself (no second round trip before the timeline
    shows), and the newest update they include: the page's event stream sends what changes
    from there on."""
    with read_tx(engine_of(request)) as conn:
        fingerprint = queries.run_fingerprint(conn, session.tenant_id, run_id)
        rows = queries.task_runs(conn, session.tenant_id, run_id)
    since = fingerprint[3] if fingerprint is not None else None
    text = json.dumps(rows, separators=(",", ":")).replace("</", "<\\/")
    return {"tasks_json": text, "tasks_since": since.isoformat() if since is not None else ""}


@router.get("/flow-runs/{run_id}/tasks/{task_run_id}")
def task_run(request: Request, session: Session, run_id: str, task_run_id: str) -> Response:
    check_id(task_run_id, "task run")
    run = _run_or_404(request, session, run_id)
    if isinstance(run, Response):
        return run
    with read_tx(engine_of(request)) as conn:
        detail = queries.task_run_detail(conn, session.tenant_id, run_id, task_run_id)
        logs = queries.logs(conn, session.tenant_id, run_id, task_run_id=task_run_id, limit=200) if detail else []
    if detail is None:
        return render(request, "not_found.html", status_code=404, what="task run", **_ctx(session))
    if request.headers.get("hx-request"):
        return render(request, "_task_panel.html", run=run, task=detail, logs=logs, **_ctx(session))
    return render(
        request, "flow_run.html", run=run, notice="", task_run=detail, task_logs=logs, **_tasks(request, session, run_id), **_ctx(session)
    )


@router.post("/flow-runs/{run_id}/cancel")
async def cancel(request: Request, session: Session, run_id: str) -> Response:
    await checked_form(request, session)
    return await _act(request, run_id, actions.cancel, session)


@router.post("/flow-runs/{run_id}/retry")
async def retry(request: Request, session: Session, run_id: str) -> Response:
    await checked_form(request, session)
    return await _act(request, run_id, actions.retry, session)


async def _act(request: Request, run_id: str, action: Any, session: UiSession) -> Response:
    check_id(run_id, "flow run")
    try:
        notice = await run_in_threadpool(action, engine_of(request), session.tenant_id, run_id)
    except actions.NotFound:
        return render(request, "not_found.html", status_code=404, what="flow run", **_ctx(session))
    except actions.ActionRefused as exc:
        notice = str(exc)
    request.app.state.wakeups.notify(session.tenant_id)
    return redirect(request, f"/flow-runs/{run_id}?notice=" + quote_plus(notice))


# -- flows, deployments, agents --------------------------------------------------------------
@router.get("/flows")
def flows(request: Request, session: Session) -> Response:
    with read_tx(engine_of(request)) as conn:
        rows = queries.list_flows(conn, session.tenant_id)
    return render(request, "flows.html", flows=rows, **_ctx(session))


@router.get("/deployments")
def deployments(request: Request, session: Session, notice: str = "") -> Response:
    with read_tx(engine_of(request)) as conn:
        rows = queries.list_deployments(conn, session.tenant_id, utcnow())
    return render(request, "deployments.html", deployments=rows, notice=notice[:200], **_ctx(session))


@router.get("/deployments/{name}/run")
def deployment_run_form(request: Request, session: Session, name: str, error: str = "") -> Response:
    with read_tx(engine_of(request)) as conn:
        dep = queries.get_deployment(conn, session.tenant_id, name[:200], utcnow())
    if dep is None:
        return render(request, "not_found.html", status_code=404, what="deployment", **_ctx(session))
    fields = [{"name": k, "value": json.dumps(v)} for k, v in sorted(dep["parameters"].items())]
    return render(request, "deployment_run.html", dep=dep, fields=fields, error=error[:300], **_ctx(session))


def _parse_parameters(form: dict[str, str]) -> dict[str, Any]:
    """Fields ``p.NAME`` hold JSON values; text that is not JSON is taken as a string."""
    out: dict[str, Any] = {}
    for key, text in form.items():
        if key.startswith("p.") and len(key) > 2:
            try:
                out[key[2:]] = json.loads(text)
            except ValueError:
                out[key[2:]] = text
    return out


@router.post("/deployments/{name}/run")
async def deployment_run(request: Request, session: Session, name: str) -> Response:
    form = await checked_form(request, session)
    try:
        run_id = await run_in_threadpool(actions.run_deployment, request, session.tenant_id, name[:200], _parse_parameters(form))
    except actions.NotFound:
        return render(request, "not_found.html", status_code=404, what="deployment", **_ctx(session))
    except actions.ActionRefused as exc:
        return redirect(request, f"/deployments/{quote(name[:200])}/run?error=" + quote_plus(str(exc)))
    return redirect(request, f"/flow-runs/{run_id}")


@router.post("/deployments/{name}/pause")
async def pause(request: Request, session: Session, name: str) -> Response:
    return await _pause(request, session, name, True)


@router.post("/deployments/{name}/resume")
async def resume(request: Request, session: Session, name: str) -> Response:
    return await _pause(request, session, name, False)


async def _pause(request: Request, session: Session, name: str, paused: bool) -> Response:
    await checked_form(request, session)
    try:
        await run_in_threadpool(actions.set_paused, request, session.tenant_id, name[:200], paused)
    except actions.NotFound:
        return render(request, "not_found.html", status_code=404, what="deployment", **_ctx(session))
    except actions.ActionRefused as exc:
        return redirect(request, "/deployments?notice=" + quote_plus(str(exc)))
    request.app.state.wakeups.notify(session.tenant_id)
    return redirect(request, "/deployments?notice=" + quote_plus(("paused " if paused else "resumed ") + name[:200]))


@router.get("/agents")
def agents(request: Request, session: Session) -> Response:
    with read_tx(engine_of(request)) as conn:
        rows = queries.list_agents(conn, session.tenant_id, utcnow())
    return render(request, "agents.html", agents=rows, **_ctx(session))
