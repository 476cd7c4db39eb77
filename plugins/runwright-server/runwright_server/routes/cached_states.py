"""``GET /cached_states``: the Cached states of a task (or of every task of a flow), across
runs of flows with that name.

With ``task_slug`` the answer is that task's Cached states, newest first (up to ``limit``).
Without it, the answer holds the candidates of every task of flows with that name, so a
runner can answer all the cache checks of a flow run with one request: per task and map
index the newest state of each distinct ``cache_key`` (the key the client stored in the
state, kept in ``task_run_states.cache_key`` so the database drops the older states of a
key; a state without one counts as distinct), at most ``per_task`` of them.

``inline_results`` adds, to each row whose state's result is a result of this tenant on this
server of at most :data:`INLINE_RESULT_MAX_BYTES`, the result's bytes (base64) as
``result``: validating and using a cached state then needs no download. The bytes are the
opaque framed result the client uploaded; the server never unpickles them.

Each row's ``state_id`` names its history row: a runner records a hit on it with
``POST /cached_states/hits`` (:mod:`runwright_server.routes.cached_hits`) instead of sending
the state back.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Connection, String, cast, func, select

from runwright_server import models
from runwright_server.auth import Principal, require_principal
from runwright_server.common import AUTH_RESPONSES, engine_of
from runwright_server.db import read_tx
from runwright_server.models import CACHED
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
    conditions = [trs.c.state_type == CACHED, tr.c.tenant_id == principal.tenant_id, f.c.name == flow_name]
    if task_slug is not None:
        conditions.append(tr.c.task_slug == task_slug)
    if created_after is not None:
        conditions.append(trs.c.timestamp >= created_after)
    if map_index is not None:
        conditions.append(tr.c.map_index == map_index)
    history = trs.join(tr, tr.c.id == trs.c.task_run_id).join(fr, fr.c.id == tr.c.flow_run_id).join(f, f.c.id == fr.c.flow_id)
    if task_slug is not None:
        stmt = (
            select(trs.c.id, trs.c.task_run_id, tr.c.flow_run_id, tr.c.task_slug, tr.c.map_index, trs.c.state, trs.c.cache_key, trs.c.timestamp)
            .select_from(history)
            .where(*conditions)
            .order_by(trs.c.timestamp.desc(), trs.c.id.desc())
            .limit(limit)
        )
    else:
        # the database keeps the newest state of each (task, map index, key) — a task cached
        # for many runs recorded the same key at every hit — ranking only ids, then reads the
        # texts of those rows; a state without a key is its own key
        row_key = func.coalesce(trs.c.cache_key, "#" + cast(trs.c.id, String))
        ranked = (
            select(
                trs.c.id.label("row_id"),
                trs.c.timestamp,
                func.row_number()
                .over(partition_by=(tr.c.task_slug, tr.c.map_index, row_key), order_by=(trs.c.timestamp.desc(), trs.c.id.desc()))
                .label("newest"),
            )
            .select_from(history)
            .where(*conditions)
            .subquery()
        )
        state, run = trs.alias("state"), tr.alias("run")
        stmt = (
            select(
                state.c.id,
                state.c.task_run_id,
                run.c.flow_run_id,
                run.c.task_slug,
                run.c.map_index,
                state.c.state,
                state.c.cache_key,
                state.c.timestamp,
            )
            .select_from(ranked.join(state, state.c.id == ranked.c.row_id).join(run, run.c.id == state.c.task_run_id))
            .where(ranked.c.newest == 1)
            .order_by(ranked.c.timestamp.desc(), ranked.c.row_id.desc())
        )
    with read_tx(engine_of(request)) as conn:
        out: list[_Row] = []
        seen: dict[tuple[str, int], set[str | int]] = {}
        # a cache hit is recorded with the text of the state it hit: the history of a task
        # cached for many runs holds the same text many times, parsed here once
        parsed: dict[str, tuple[str | None, str | None]] = {}
        for state_id, task_run_id, flow_run_id, slug, index, text, column_key, created in conn.execute(stmt):
            known = parsed.get(text)
            if known is None and isinstance(column_key, str) and (head := _HEAD.match(text)) is not None:
                # the common state (its key in its column, its result this server's) is not parsed
                known = parsed[text] = (column_key, head.group(1))
            if known is None:
                state = json.loads(text)
                cache_key = state.get("cache_key")
                known = parsed[text] = (cache_key if isinstance(cache_key, str) else None, _result_id(state))
            key, result_id = known
            if task_slug is None:
                keys = seen.get((slug, index))
                if keys is None:
                    keys = seen[(slug, index)] = set()
                elif (key is not None and key in keys) or len(keys) >= per_task:
                    continue
                keys.add(key if key is not None else len(out))  # a state without a key is distinct
            out.append(_Row(state_id, task_run_id, flow_run_id, slug, index, text, key, created, result_id))
            if len(out) >= limit:
                break
        if inline_results:
            _inline(conn, principal.tenant_id, out)
    return _answer(out)


class _Row:
    """One answer row: the stored state's text is sent as it is."""

    __slots__ = (
        "cache_key", "created", "flow_run_id", "map_index", "result", "result_id", "state_id", "state_text", "task_run_id", "task_slug"
    )

    def __init__(
        self,
        state_id: int,
        task_run_id: str,
        flow_run_id: str,
        task_slug: str,
        map_index: int,
        state_text: str,
        cache_key: str | None,
        created: datetime,
        result_id: str | None,
    ) -> None:
        self.state_id = state_id
        self.task_run_id = task_run_id
        self.flow_run_id = flow_run_id
        self.task_slug = task_slug
        self.map_index = map_index
        self.state_text = state_text
        self.cache_key = cache_key
        self.created = created
        self.result_id = result_id
        self.result: str | None = None


def _answer(rows: list[_Row]) -> Response:
    """The rows as JSON, built as text: each state's stored text spliced in as it is
    (thousands of states are not re-validated and re-encoded to be sent back); the only
    strings that may need escaping (ids, slugs) go through the JSON encoder (a flow run's id,
    the same in a thousand rows, once)."""
    parts = []
    runs: dict[str, str] = {}
    for row in rows:
        flow_run = runs.get(row.flow_run_id)
        if flow_run is None:
            flow_run = runs[row.flow_run_id] = _quote(row.flow_run_id)
        key = f'"{row.cache_key}"' if row.cache_key is not None and row.cache_key.isalnum() else _ENCODE_STRING(row.cache_key)
        result = f',"result":"{row.result}"' if row.result is not None else ""
        parts.append(
            f'{{"state_id":{int(row.state_id)},"task_run_id":{_quote(row.task_run_id)},"flow_run_id":{flow_run},'
            f'"task_slug":{_quote(row.task_slug)},"map_index":{int(row.map_index)},"cache_key":{key},'
            f'"created":"{_utc_text(row.created)}"{result},"state":{row.state_text}}}'
        )
    return Response(("[" + ",".join(parts) + "]").encode("utf-8"), media_type="application/json")


_ENCODE_STRING = json.JSONEncoder(ensure_ascii=False).encode
#: a string JSON needs no escape in (no quote, backslash or control character)
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')


def _quote(value: str) -> str:
    """``value`` as a JSON string (ids and slugs are plain: quoted as they are)."""
    return f'"{value}"' if _PLAIN.fullmatch(value) is not None else _ENCODE_STRING(value)

#: the start of a stored Cached state whose result is on this server, as the server encodes
#: states (keys in the order the client serializes them, compact separators): its result key
_HEAD = re.compile(
    r'\{"type":"Cached","message":(?:null|"(?:[^"\\]|\\.)*"),'
    r'"_result":\{"type":"SafeResult","value":"rwcloud://results/([0-9a-f]{32})"'
)


def _utc_text(value: datetime) -> str:
    """A stored naive-UTC time as ISO 8601 with a ``Z`` (as :func:`json_default` writes it)."""
    text = value.isoformat()
    if value.tzinfo is None:
        return text + "Z"
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _result_id(state: dict[str, Any]) -> str | None:
    result = state.get("_result")
    value = result.get("value") if isinstance(result, dict) else None
    match = _URI.fullmatch(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def _inline(conn: Connection, tenant_id: str, rows: list[_Row]) -> None:
    """Add each row's small result of this tenant (one query per :data:`_IN_CHUNK` ids)."""
    found: dict[str, bytes] = {}
    r = models.results
    # straight on the driver where its placeholders are known: SQLAlchemy's expanding of a
    # 500-id IN and its rows cost more than the database's lookups (~1,000 of them here)
    mark = _MARKS.get(conn.dialect.paramstyle)
    for chunk in _chunks(list({row.result_id for row in rows if row.result_id is not None}), _IN_CHUNK):
        if mark is not None:
            sql = (
                f"SELECT id, data FROM results WHERE tenant_id = {mark} AND size <= {mark} "
                f"AND id IN ({', '.join([mark] * len(chunk))})"
            )
            found.update((key, bytes(data)) for key, data in conn.exec_driver_sql(sql, (tenant_id, INLINE_RESULT_MAX_BYTES, *chunk)).fetchall())
            continue
        query = select(r.c.id, r.c.data).where(
            r.c.tenant_id == tenant_id, r.c.id.in_(chunk), r.c.size <= INLINE_RESULT_MAX_BYTES
        )
        found.update((found_row.id, bytes(found_row.data)) for found_row in conn.execute(query))
    total = 0
    for row in rows:
        data = found.get(row.result_id) if row.result_id is not None else None
        if data is None or total + len(data) > INLINE_TOTAL_MAX_BYTES:
            continue
        total += len(data)
        row.result = base64.b64encode(data).decode("ascii")


#: the positional placeholder of a driver's paramstyle (others go through SQLAlchemy)
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
