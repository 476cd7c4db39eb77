"""Small helpers shared by the route modules."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request, Response
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import Engine

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


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` as a JSON response without the route's response-model validation: for large
    answers the server builds itself, already in the declared shape (datetimes as pydantic
    writes them). pydantic-core's encoder writes it (datetimes as :func:`json_default` does,
    without a Python call per value: a flow run's answer with thousands of task runs is
    written in a few milliseconds); anything it cannot write goes to ``json.dumps``."""
    try:
        body = to_json(content)
    except PydanticSerializationError:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=json_default).encode("utf-8")
    return Response(body, status_code=status_code, media_type="application/json")


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUID strings, as ``str(uuid.uuid4())`` gives, drawn with
    one system call (a flow run of thousands of tasks needs thousands)."""
    raw = bytearray(os.urandom(16 * count))
    for i in range(0, 16 * count, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40  # version 4
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return [f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}" for i in range(0, 32 * count, 32)]


def loads(text: str) -> Any:
    return json.loads(text)


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


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
