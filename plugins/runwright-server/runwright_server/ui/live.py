"""Live data of the UI: the run page's task runs and logs as JSON, and server-sent events.

``GET /flow-runs/{id}/task-runs.json`` — every task run, compact (see
:func:`queries.task_runs`); ``GET /flow-runs/{id}/logs.json?after_id=N``.

``GET /flow-runs/{id}/live`` (``text/event-stream``): ``run`` (the run's state, when it
changes), ``tasks`` (the task runs changed since the last event), ``logs`` (new lines), and
``end`` once the run is finished and everything was sent. ``GET /live`` (any page): a
``changed`` event whenever one of the tenant's flow runs changes state.

A stream is async and holds no thread while it waits: it waits on the tenant's wake-ups
(:class:`runwright_server.wakeups.Wakeups`) or ``POLL_SECONDS``, whichever comes first, then
looks at the database (a few index reads, in the thread pool). The timer covers writers that
do not notify and other server processes, so a change shows within ``POLL_SECONDS`` plus a
query. Each stream ends after ``STREAM_SECONDS``; EventSource reconnects on its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from runwright_server import models
from runwright_server.common import check_id, engine_of, json_response
from runwright_server.db import read_tx
from runwright_server.state_rules import FINISHED_TYPES
from runwright_server.ui import queries
from runwright_server.ui.sessions import UiSession
from runwright_server.ui.web import page_session

router = APIRouter(include_in_schema=False)
Session = Annotated[UiSession, Depends(page_session)]
POLL_SECONDS = 0.25
STREAM_SECONDS = 300.0
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def _not_found() -> Response:
    return json_response({"detail": "flow run not found"}, status_code=404)


@router.get("/flow-runs/{run_id}/task-runs.json")
def task_runs_json(request: Request, session: Session, run_id: str) -> Response:
    check_id(run_id, "flow run")
    with read_tx(engine_of(request)) as conn:
        if queries.run_fingerprint(conn, session.tenant_id, run_id) is None:
            return _not_found()
        rows = queries.task_runs(conn, session.tenant_id, run_id)
    return json_response({"task_runs": rows})


@router.get("/flow-runs/{run_id}/logs.json")
def logs_json(
    request: Request, session: Session, run_id: str, after_id: Annotated[int, Query(ge=0)] = 0
) -> Response:
    check_id(run_id, "flow run")
    with read_tx(engine_of(request)) as conn:
        if queries.run_fingerprint(conn, session.tenant_id, run_id) is None:
            return _not_found()
        rows = queries.logs(conn, session.tenant_id, run_id, after_id=after_id)
    return json_response({"logs": [_log_out(r) for r in rows]})


@router.get("/flow-runs/{run_id}/graph.json")
def graph_json(request: Request, session: Session, run_id: str) -> Response:
    """The flow's tasks (slugs) and edges ``[upstream, downstream]``, for the graph view."""
    check_id(run_id, "flow run")
    with read_tx(engine_of(request)) as conn:
        run = queries.get_run(conn, session.tenant_id, run_id, with_graph=True)
    if run is None:
        return _not_found()
    slugs = [t["slug"] for t in run["tasks"] if isinstance(t, dict) and "slug" in t]
    edges = [[e["upstream"], e["downstream"]] for e in run["edges"] if isinstance(e, dict)]
    return json_response({"tasks": slugs, "edges": edges})


def _log_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "timestamp": row["timestamp"].isoformat(timespec="milliseconds")}


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


class _RunWatch:
    """What a run's stream has sent so far, and the queries for what changed since."""

    def __init__(self, engine: Any, tenant: str, run_id: str, log_after: int, tasks_since: datetime | None) -> None:
        self.engine, self.tenant, self.run_id = engine, tenant, run_id
        self.fingerprint: tuple[Any, ...] | None = None
        #: the page has the task runs updated before this; None: send every task run
        self.tasks_since = tasks_since
        self.log_after = log_after

    def step(self) -> tuple[list[bytes], bool]:
        """The events to send now, and whether the run is finished (or gone)."""
        out: list[bytes] = []
        with read_tx(self.engine) as conn:
            fp = queries.run_fingerprint(conn, self.tenant, self.run_id)
            if fp is None:
                return [_event("end", {"reason": "not found"})], True
            if fp == self.fingerprint:
                return out, False
            first = self.fingerprint is None
            if first or fp[:3] != self.fingerprint[:3]:  # type: ignore[index]
                run = queries.get_run(conn, self.tenant, self.run_id)
                if run is not None:
                    out.append(_event("run", {
                        "state_type": run["state_type"], "message": run["message"],
                        "cancel_requested": run["cancel_requested"], "version": run["version"],
                    }))
            if first or (fp[3] is not None and fp[3] != self.fingerprint[3]):  # type: ignore[index]
                # every task run first, then those updated at or after the newest update seen
                # (taken before the query, so a write racing it shows in the next event)
                rows = queries.task_runs(conn, self.tenant, self.run_id, updated_since=self.tasks_since)
                self.tasks_since = fp[3]
                if rows:
                    out.append(_event("tasks", rows))
            logs = queries.logs(conn, self.tenant, self.run_id, after_id=self.log_after)
            if logs:
                self.log_after = logs[-1]["id"]
                out.append(_event("logs", [_log_out(r) for r in logs]))
            self.fingerprint = fp if len(logs) < 500 else None
            finished = fp[1] in FINISHED_TYPES and len(logs) < 500
        return out, finished


@router.get("/flow-runs/{run_id}/live")
async def run_events(
    request: Request,
    session: Session,
    run_id: str,
    log_after: Annotated[int, Query(ge=0)] = 0,
    since: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """``since``: the newest task-run update the page already shows (its ``data-tasks-since``)."""
    check_id(run_id, "flow run")
    try:
        tasks_since = datetime.fromisoformat(since) if since else None
    except ValueError:
        tasks_since = None
    watch = _RunWatch(engine_of(request), session.tenant_id, run_id, log_after, tasks_since)

    async def stream() -> AsyncIterator[bytes]:
        wakeups = request.app.state.wakeups
        deadline = time.monotonic() + STREAM_SECONDS
        yield b"retry: 500\n\n"
        while time.monotonic() < deadline:
            generation = wakeups.generation(session.tenant_id)
            events, finished = await run_in_threadpool(watch.step)
            for event in events:
                yield event
            if finished:
                yield _event("end", {})
                return
            if await request.is_disconnected():
                return
            await wakeups.wait(session.tenant_id, generation, POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


def _tenant_mark(engine: Any, tenant: str, after: int | None) -> tuple[int, bool]:
    """The newest flow-run state id, and whether one of ``tenant``'s runs got a state after ``after``."""
    frs, fr = models.flow_run_states, models.flow_runs
    with read_tx(engine) as conn:
        newest = conn.execute(select(func.max(frs.c.id))).scalar() or 0
        if after is None or newest <= after:
            return newest, False
        mine = conn.execute(
            select(frs.c.id).join(fr, fr.c.id == frs.c.flow_run_id).where(frs.c.id > after, fr.c.tenant_id == tenant).limit(1)
        ).first()
    return newest, mine is not None


@router.get("/live")
async def tenant_events(request: Request, session: Session) -> Response:
    engine = engine_of(request)

    async def stream() -> AsyncIterator[bytes]:
        wakeups = request.app.state.wakeups
        deadline = time.monotonic() + STREAM_SECONDS
        mark: int | None = None
        yield b"retry: 500\n\n"
        while time.monotonic() < deadline:
            generation = wakeups.generation(session.tenant_id)
            mark, changed = await run_in_threadpool(_tenant_mark, engine, session.tenant_id, mark)
            if changed:
                yield _event("changed", {})
            if await request.is_disconnected():
                return
            await wakeups.wait(session.tenant_id, generation, POLL_SECONDS * 2)
        await asyncio.sleep(0)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
