"""``GET /flow_runs/{id}/events``: a flow run's state changes as server-sent events.

One ``state`` event per state the run or one of its task runs took (from the run's creation
on, or after the cursor a reconnecting reader passes as ``Last-Event-ID`` / ``after``), in
the order they were stored, then one ``end`` event once the run is finished, and the
stream closes. Each event's ``id`` is the cursor ``<flow-run state id>.<task-run state id>``.

The route is async and holds no thread while it waits: it reads the histories in the thread
pool (a few short queries), then awaits the tenant's wake-up (:mod:`runwright_server.wakeups`,
notified by every state write of this process) or one second, whichever comes first (the
fallback for writes made by other server processes on the same database). A comment line
every :data:`KEEP_ALIVE_SECONDS` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

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
    json_default,
    not_found,
)
from runwright_server.db import read_tx
from runwright_server.state_rules import FINISHED_TYPES

router = APIRouter(tags=["flow runs"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]

#: a waiting stream looks at the database at least this often (writes of other server processes)
FALLBACK_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 15.0
#: most history rows of each kind read at once (a long history is sent in pages, at once)
PAGE = 1000
_CURSOR = re.compile(r"^(\d{1,18})\.(\d{1,18})$")
_FINISHED = frozenset(FINISHED_TYPES)


@dataclass
class _Read:
    #: (the event, its id: the cursor once it is delivered)
    events: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    flow_cursor: int = 0
    task_cursor: int = 0
    finished_state: dict[str, Any] | None = None
    more: bool = False


def _read(engine: Engine, tenant_id: str, flow_run_id: str, flow_cursor: int, task_cursor: int) -> _Read | None:
    """The run's state changes after the cursors; None when the tenant has no such run. The
    run's row is read first, so a finished run's whole history is in the same read."""
    fr, frs, tr, trs = models.flow_runs, models.flow_run_states, models.task_runs, models.task_run_states
    with read_tx(engine) as conn:
        run = conn.execute(
            select(fr.c.state, fr.c.state_type).where(fr.c.id == flow_run_id, fr.c.tenant_id == tenant_id)
        ).first()
        if run is None:
            return None
        flow_rows = conn.execute(
            select(frs.c.id, frs.c.version, frs.c.state, frs.c.timestamp)
            .where(frs.c.flow_run_id == flow_run_id, frs.c.id > flow_cursor)
            .order_by(frs.c.id)
            .limit(PAGE)
        ).all()
        task_rows = conn.execute(
            select(
                trs.c.id, trs.c.task_run_id, tr.c.task_slug, tr.c.map_index, trs.c.version, trs.c.state, trs.c.timestamp
            )
            .join(tr, tr.c.id == trs.c.task_run_id)
            .where(tr.c.flow_run_id == flow_run_id, trs.c.id > task_cursor)
            .order_by(trs.c.id)
            .limit(PAGE)
        ).all()
    read = _Read(
        flow_cursor=flow_cursor, task_cursor=task_cursor, more=len(flow_rows) == PAGE or len(task_rows) == PAGE
    )
    flow_events = [
        (
            row.id,
            None,
            {
                "kind": "flow_run",
                "flow_run_id": flow_run_id,
                "version": row.version,
                "state": json.loads(row.state),
                "timestamp": aware(row.timestamp),
            },
        )
        for row in flow_rows
    ]
    task_events = [
        (
            None,
            row.id,
            {
                "kind": "task_run",
                "flow_run_id": flow_run_id,
                "task_run_id": row.task_run_id,
                "task_slug": row.task_slug,
                "map_index": row.map_index,
                "version": row.version,
                "state": json.loads(row.state),
                "timestamp": aware(row.timestamp),
            },
        )
        for row in task_rows
    ]
    # by time, each history kept in its stored order, so each event's id is a valid cursor
    for flow_id, task_id, event in heapq.merge(flow_events, task_events, key=lambda item: item[2]["timestamp"]):
        read.flow_cursor = flow_id if flow_id is not None else read.flow_cursor
        read.task_cursor = task_id if task_id is not None else read.task_cursor
        read.events.append((event, f"{read.flow_cursor}.{read.task_cursor}"))
    if run.state_type in _FINISHED:
        read.finished_state = json.loads(run.state)
    return read


def _event(kind: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=json_default)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {text}\n\n".encode()


def _cursor(value: str | None) -> tuple[int, int]:
    if not value:
        return 0, 0
    match = _CURSOR.match(value.strip())
    if match is None:
        raise invalid_query("after", "the event cursor (Last-Event-ID or after) must be the id of an event, such as 12.340")
    return int(match.group(1)), int(match.group(2))


@router.get(
    "/flow_runs/{flow_run_id}/events",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}}, "description": "The run's state changes"}},
)
async def flow_run_events(
    flow_run_id: str,
    request: Request,
    principal: Auth,
    after: Annotated[str | None, Query(max_length=40, description="Resume after this event id")] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """The run's state changes, then ``end`` (see the module docstring)."""
    check_id(flow_run_id, "flow run")
    flow_cursor, task_cursor = _cursor(last_event_id or after)
    engine, tenant = engine_of(request), principal.tenant_id
    wakeups = request.app.state.wakeups
    seen = wakeups.generation(tenant)
    first = await run_in_threadpool(_read, engine, tenant, flow_run_id, flow_cursor, task_cursor)
    if first is None:
        raise not_found("flow run")

    async def stream() -> AsyncIterator[bytes]:
        nonlocal seen
        read: _Read | None = first
        quiet_since = time.monotonic()
        while read is not None:
            for event, event_id in read.events:
                yield _event("state", event, event_id)
            if read.events:
                quiet_since = time.monotonic()
            if read.finished_state is not None and not read.more:
                yield _event("end", {"flow_run_id": flow_run_id, "state": read.finished_state})
                return
            if not read.more:
                await wakeups.wait(tenant, seen, FALLBACK_SECONDS)
                if time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
                    yield b": keep-alive\n\n"
                    quiet_since = time.monotonic()
            seen = wakeups.generation(tenant)
            read = await run_in_threadpool(_read, engine, tenant, flow_run_id, read.flow_cursor, read.task_cursor)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
