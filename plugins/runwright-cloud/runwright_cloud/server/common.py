"""Small helpers shared by the route modules."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import Engine

from runwright_cloud.server.schemas import ConflictOut, ErrorOut

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
