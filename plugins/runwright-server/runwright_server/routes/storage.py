"""The built-in ``server`` storage: flow code kept content-addressed, per tenant.

``PUT /storage/{digest}`` stores raw bytes whose sha256 (64 lowercase hex digits) is
``digest``: 201 when new, 200 when the tenant already has them, 422 when the bytes do not
hash to ``digest``. ``GET /storage/{digest}`` answers the bytes, 404 for a digest the tenant
never stored (another tenant's included). Never executed or parsed here.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.common import AUTH_RESPONSES, NOT_FOUND, engine_of, not_found
from runwright_server.db import read_tx, write_tx
from runwright_server.deployment_schemas import StoredOut
from runwright_server.schemas import ErrorOut

router = APIRouter(tags=["storage"], responses=AUTH_RESPONSES)
Auth = Annotated[Principal, Depends(require_principal)]

DIGEST = re.compile(r"[0-9a-f]{64}")
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _store(engine: Engine, tenant_id: str, digest: str, data: bytes) -> bool:
    """Keep ``data`` under ``digest``; True when it was new."""
    b = models.storage_blobs
    with write_tx(engine) as conn:
        exists = conn.execute(select(b.c.digest).where(b.c.tenant_id == tenant_id, b.c.digest == digest)).first()
        if exists is not None:
            return False
        try:
            with conn.begin_nested():
                conn.execute(
                    b.insert().values(tenant_id=tenant_id, digest=digest, data=data, size=len(data), created=utcnow())
                )
        except IntegrityError:  # a concurrent upload of the same bytes won
            return False
    return True


def load_blob(engine: Engine, tenant_id: str, digest: str) -> bytes | None:
    b = models.storage_blobs
    with read_tx(engine) as conn:
        data = conn.execute(select(b.c.data).where(b.c.tenant_id == tenant_id, b.c.digest == digest)).scalar()
    return None if data is None else bytes(data)


@router.put(
    "/storage/{digest}",
    response_model=StoredOut,
    status_code=201,
    responses={
        200: {"model": StoredOut, "description": "These bytes were already stored"},
        422: {"model": ErrorOut, "description": "The bytes' sha256 is not the digest"},
    },
    openapi_extra={"requestBody": {"required": False, "content": {"application/octet-stream": _BINARY}}},
)
async def put_blob(digest: str, request: Request, principal: Auth, response: Response) -> dict[str, object]:
    """Store the raw request body (up to ``[server] max_body_bytes``) under its sha256."""
    data = await request.body()  # the body-limit middleware enforces the size while streaming
    actual = hashlib.sha256(data).hexdigest()
    if not DIGEST.fullmatch(digest) or actual != digest:
        raise HTTPException(422, f"the body's sha256 is {actual}, not {digest[:64]!r}: send the bytes of that digest")
    created = await run_in_threadpool(_store, engine_of(request), principal.tenant_id, digest, data)
    response.status_code = 201 if created else 200
    return {"digest": digest, "size": len(data), "created": created}


@router.get(
    "/storage/{digest}",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": _BINARY}, "description": "The bytes"}},
)
def get_blob(digest: str, request: Request, principal: Auth) -> Response:
    """The bytes stored under ``digest`` by this tenant; anything else is 404."""
    if not DIGEST.fullmatch(digest):
        raise not_found("stored code")
    data = load_blob(engine_of(request), principal.tenant_id, digest)
    if data is None:
        raise not_found("stored code")
    return Response(content=data, media_type="application/octet-stream")
