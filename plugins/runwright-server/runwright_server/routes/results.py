"""Results: opaque bytes in, a ``rwcloud://results/<hex>`` URI out. Never unpickled here."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.common import (
    AUTH_RESPONSES,
    NOT_FOUND,
    engine_of,
    not_found,
)
from runwright_server.db import read_tx, write_tx
from runwright_server.schemas import ResultOut

router = APIRouter(tags=["results"], responses=AUTH_RESPONSES)
Auth = Annotated[Principal, Depends(require_principal)]

URI_PREFIX = "rwcloud://results/"
_URI = re.compile(r"rwcloud://results/([0-9a-f]{32})")
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _store(engine: Engine, tenant_id: str, data: bytes) -> str:
    result_id = uuid.uuid4().hex
    with write_tx(engine) as conn:
        conn.execute(
            models.results.insert().values(
                id=result_id, tenant_id=tenant_id, data=data, size=len(data), created=utcnow()
            )
        )
    return URI_PREFIX + result_id


def _load(engine: Engine, tenant_id: str, result_id: str) -> bytes | None:
    r = models.results
    with read_tx(engine) as conn:
        data = conn.execute(select(r.c.data).where(r.c.id == result_id, r.c.tenant_id == tenant_id)).scalar()
    return None if data is None else bytes(data)


@router.post(
    "/results",
    response_model=ResultOut,
    status_code=201,
    openapi_extra={"requestBody": {"required": False, "content": {"application/octet-stream": _BINARY}}},
)
async def upload_result(request: Request, principal: Auth) -> dict[str, str]:
    """Store the raw request body (any bytes, up to the server's body limit)."""
    data = await request.body()  # the body-limit middleware enforces the size while streaming
    uri = await run_in_threadpool(_store, engine_of(request), principal.tenant_id, data)
    return {"uri": uri}


@router.get(
    "/results",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": _BINARY}, "description": "The bytes"}},
)
def download_result(
    request: Request, principal: Auth, uri: Annotated[str, Query(max_length=200)]
) -> Response:
    """The bytes behind a URI this server issued to this tenant; anything else is 404."""
    match = _URI.fullmatch(uri)
    if match is None:
        raise not_found("result")
    data = _load(engine_of(request), principal.tenant_id, match.group(1))
    if data is None:
        raise not_found("result")
    return Response(content=data, media_type="application/octet-stream")
