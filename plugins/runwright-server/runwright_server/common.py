"""Small helpers shared by the route modules."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request, Response
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import Connection, Engine

from runwright_server.schemas import ConflictOut, ErrorOut

# Statuses every authenticated endpoint can answer, declared in the OpenAPI schema.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unparseable request"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API token"},
    413: {"model": ErrorOut, "description": "Request body too large"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "Not found (or not yours)"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ConflictOut, "description": "Version conflict: the current version and state"}
}


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def aware(value: datetime | None) -> datetime | None:
    """A stored naive-UTC datetime as an aware UTC one (serialized with a ``Z``)."""
    return None if value is None else value.replace(tzinfo=UTC)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):  # as pydantic writes it: ISO 8601, UTC as "Z"
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """``content`` as a JSON response without the route's response-model validation: for large
    answers the server builds itself, already in the declared shape (datetimes as pydantic
    writes them). pydantic-core's encoder writes it (datetimes as :func:`json_default` does,
    without a Python call per value: a flow run's answer with thousands of task runs is
    written in a few milliseconds); anything it cannot write goes to ``json.dumps``."""
    try:
        body = to_json(content)
    except PydanticSerializationError:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=json_default).encode("utf-8")
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


_ids_lock = threading.Lock()
#: (millisecond, sequence) of the last id :func:`new_ids` made: ids never go backwards
_last_id = [0, -1]


def new_ids(count: int) -> list[str]:
    """``count`` new ids, UUID strings of version 7 (RFC 9562): a 48-bit millisecond
    timestamp, then a 42-bit sequence (monotonic within this process) and 32 random bits,
    drawn with one system call (a flow run of thousands of tasks, a page of a map's
    children, needs thousands).

    Ids in creation order keep the indexes keyed by task run id (the runs' primary key, their
    state histories) growing at their right edge: inserting a million children's rows touches
    the last pages of each index instead of a random page per row, which is what made a large
    map's writes slow down as the database grew."""
    with _ids_lock:
        millis = max(time.time_ns() // 1_000_000, _last_id[0])
        first = _last_id[1] + 1 if millis == _last_id[0] else 0
        if first + count >= 1 << 42:  # the sequence of this millisecond is used up: borrow the next
            millis, first = millis + 1, 0
        _last_id[0], _last_id[1] = millis, first + count - 1
    rand = os.urandom(4 * count).hex()
    head = f"{millis:012x}"
    ids = []
    for i in range(count):
        seq = first + i
        a = 0x7000 | (seq >> 30)  # version 7, the sequence's top 12 bits
        b = 0x8000 | ((seq >> 16) & 0x3FFF)  # RFC 4122 variant, its next 14 bits
        r = rand[8 * i : 8 * i + 8]
        ids.append(f"{head[:8]}-{head[8:]}-{a:04x}-{b:04x}-{seq & 0xFFFF:04x}{r}")
    return ids


def loads(text: str) -> Any:
    return json.loads(text)


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


def batch_parent(conn: Connection, lease: Any, tenant_id: str) -> str | None:
    """The flow run a batch with ``lease`` (a ``BatchLease``, or None) is confined to: None
    without a lease; 404 when that flow run is not the tenant's, 409 (nothing of the batch
    applied) when its lease is another runner's."""
    if lease is None:
        return None
    from runwright_server.locking import NO_RUN, lease_of

    held = lease_of(conn, lease.flow_run_id, tenant_id)
    if held is NO_RUN:
        raise not_found("flow run")
    if held != lease.token:
        raise HTTPException(409, "the flow run is leased by another runner: no write of this batch was applied")
    return str(lease.flow_run_id)


_ID = re.compile(r"[0-9a-f-]{1,64}")


def check_id(value: str, what: str) -> str:
    """An id from a path: anything that cannot be one of ours is simply not found (404)."""
    if not _ID.fullmatch(value):
        raise not_found(what)
    return value


def invalid_query(name: str, message: str) -> Exception:
    """A 422 for query parameter ``name``, shaped like FastAPI's validation errors (its
    ``detail`` a list of ``{loc, msg, type}``), with a message that says what to pass."""
    from fastapi.exceptions import RequestValidationError

    return RequestValidationError([{"loc": ["query", name], "msg": message, "type": "value_error"}])
