"""``GET /cached_states``: the Cached states of a task (or of every task of a flow), across
runs of flows with that name.

With ``task_slug`` the answer is that task's Cached states, newest first (up to ``limit``).
Without it, the answer holds the candidates of every task of flows with that name, so a
runner can answer all the cache checks of a flow run with one request: per task and map
index the newest state of each distinct ``cache_key`` (the key the client stored in the
state; a state without one counts as distinct), at most ``per_task`` of them.

``inline_results`` adds, to each row whose state's result is a result of this tenant on this
server of at most :data:`INLINE_RESULT_MAX_BYTES`, the result's bytes (base64) as
``result``: validating and using a cached state then needs no download. The bytes are the
opaque framed result the client uploaded; the server never unpickles them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Connection, select

from runwright_server import models
from runwright_server.auth import Principal, require_principal
from runwright_server.common import AUTH_RESPONSES, aware, engine_of, json_default
from runwright_server.db import read_tx
from runwright_server.routes.results import _URI
from runwright_server.schemas import CachedStateOut, MapIndex, Name, UtcDatetime

router = APIRouter(tags=["cached states"], responses=AUTH_RESPONSES)
Auth = Annotated[Principal, Depends(require_principal)]

#: a result up to this size travels inside the answer (``inline_results``)
INLINE_RESULT_MAX_BYTES = 64 * 1024
#: most inline result bytes in one answer; later rows come without theirs
INLINE_TOTAL_MAX_BYTES = 32 * 1024 * 1024
_IN_CHUNK = 500  # ids per IN (...) query: below SQLite's bound-variable limit


@router.get("/cached_states", response_model=list[CachedStateOut])
def cached_states(
    request: Request,
    principal: Auth,
    flow_name: Annotated[Name, Query()],
    task_slug: Annotated[Name | None, Query()] = None,
    created_after: Annotated[UtcDatetime | None, Query()] = None,
    map_index: Annotated[MapIndex | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 100,
    per_task: Annotated[int, Query(ge=1, le=100)] = 5,
    inline_results: bool = False,
) -> Response:
    """Cached history rows, newest first (see the module docstring)."""
    trs, tr, fr, f = models.task_run_states, models.task_runs, models.flow_runs, models.flows
    stmt = (
        select(trs.c.task_run_id, tr.c.flow_run_id, tr.c.task_slug, tr.c.map_index, trs.c.state, trs.c.timestamp)
        .join(tr, tr.c.id == trs.c.task_run_id)
        .join(fr, fr.c.id == tr.c.flow_run_id)
        .join(f, f.c.id == fr.c.flow_id)
        .where(trs.c.state_type == "Cached", tr.c.tenant_id == principal.tenant_id, f.c.name == flow_name)
    )
    if task_slug is not None:
        stmt = stmt.where(tr.c.task_slug == task_slug)
    if created_after is not None:
        stmt = stmt.where(trs.c.timestamp >= created_after)
    if map_index is not None:
        stmt = stmt.where(tr.c.map_index == map_index)
    stmt = stmt.order_by(trs.c.timestamp.desc(), trs.c.id.desc())
    if task_slug is not None:
        stmt = stmt.limit(limit)
    with read_tx(engine_of(request)) as conn:
        out: list[dict[str, Any]] = []
        seen: dict[tuple[str, int], set[str | None]] = {}
        for r in conn.execute(stmt):
            state = json.loads(r.state)
            key = state.get("cache_key") if isinstance(state.get("cache_key"), str) else None
            if task_slug is None:
                keys = seen.setdefault((r.task_slug, r.map_index), set())
                if (key is not None and key in keys) or len(keys) >= per_task:
                    continue
                keys.add(key if key is not None else f"#{len(out)}")
            out.append(
                {
                    "task_run_id": r.task_run_id,
                    "flow_run_id": r.flow_run_id,
                    "task_slug": r.task_slug,
                    "map_index": r.map_index,
                    "state": state,
                    "cache_key": key,
                    "created": aware(r.timestamp),
                    "_text": r.state,
                }
            )
            if len(out) >= limit:
                break
        if inline_results:
            _inline(conn, principal.tenant_id, out)
    return _answer(out)


def _answer(rows: list[dict[str, Any]]) -> Response:
    """The rows as JSON, each state's stored text spliced in as it is (thousands of states
    are not re-validated and re-encoded to be sent back)."""
    parts = []
    for row in rows:
        text = row.pop("_text")
        del row["state"]
        head = json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=json_default)
        parts.append(f'{head[:-1]},"state":{text}}}')
    return Response(("[" + ",".join(parts) + "]").encode("utf-8"), media_type="application/json")


def _result_id(state: dict[str, Any]) -> str | None:
    result = state.get("_result")
    value = result.get("value") if isinstance(result, dict) else None
    match = _URI.fullmatch(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def _inline(conn: Connection, tenant_id: str, rows: list[dict[str, Any]]) -> None:
    """Add each row's small result of this tenant (one query per :data:`_IN_CHUNK` rows)."""
    wanted = {rid: row for row in rows if (rid := _result_id(row["state"])) is not None}
    found: dict[str, bytes] = {}
    r = models.results
    for chunk in _chunks(list(wanted), _IN_CHUNK):
        query = select(r.c.id, r.c.data).where(
            r.c.tenant_id == tenant_id, r.c.id.in_(chunk), r.c.size <= INLINE_RESULT_MAX_BYTES
        )
        found.update((row.id, bytes(row.data)) for row in conn.execute(query))
    total = 0
    for row in rows:
        rid = _result_id(row["state"])
        data = found.get(rid) if rid is not None else None
        if data is None or total + len(data) > INLINE_TOTAL_MAX_BYTES:
            continue
        total += len(data)
        row["result"] = base64.b64encode(data).decode("ascii")


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
