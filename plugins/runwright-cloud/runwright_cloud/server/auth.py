"""API tokens and tenants.

A token is ``rw_`` + 43 url-safe random characters; only its sha256 hex digest is stored.
Each token belongs to a tenant; every query of a request is filtered by that tenant.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, select, update

from runwright_cloud.server import models
from runwright_cloud.server.db import read_tx, write_tx

DEFAULT_TENANT = "default"
TOKEN_PREFIX = "rw_"

_bearer = HTTPBearer(auto_error=False, description="An API token from `runwright server token create`.")


def utcnow() -> datetime:
    """Naive UTC now (the storage convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: Engine, name: str, tenant: str = DEFAULT_TENANT) -> str:
    """Create a token named ``name`` for ``tenant`` (created if new); return the token."""
    if not name or not tenant:
        raise ValueError("token name and tenant must not be empty")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with write_tx(engine) as conn:
        tenant_id = conn.execute(select(models.tenants.c.id).where(models.tenants.c.name == tenant)).scalar()
        if tenant_id is None:
            tenant_id = str(uuid.uuid4())
            conn.execute(models.tenants.insert().values(id=tenant_id, name=tenant, created=now))
        conn.execute(
            models.api_tokens.insert().values(
                id=str(uuid.uuid4()), tenant_id=tenant_id, name=name, token_hash=hash_token(token), created=now
            )
        )
    return token


def revoke_tokens(
    engine: Engine, *, name: str | None = None, tenant: str = DEFAULT_TENANT, token: str | None = None
) -> int:
    """Revoke the tenant's active tokens called ``name``, or the one ``token``; return how many."""
    t = models.api_tokens
    stmt = update(t).where(t.c.revoked.is_(None)).values(revoked=utcnow())
    if token is not None:
        stmt = stmt.where(t.c.token_hash == hash_token(token))
    elif name is not None:
        tenant_ids = select(models.tenants.c.id).where(models.tenants.c.name == tenant).scalar_subquery()
        stmt = stmt.where(t.c.name == name, t.c.tenant_id == tenant_ids)
    else:
        raise ValueError("give a token name or the token itself")
    with write_tx(engine) as conn:
        return conn.execute(stmt).rowcount


def list_tokens(engine: Engine) -> list[tuple[str, str, datetime, datetime | None]]:
    """(tenant, name, created, revoked) of every token."""
    t, ten = models.api_tokens, models.tenants
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(ten.c.name, t.c.name, t.c.created, t.c.revoked)
            .join(ten, ten.c.id == t.c.tenant_id)
            .order_by(ten.c.name, t.c.created)
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant that every query is scoped to."""

    tenant_id: str


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def require_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """FastAPI dependency: a valid, unrevoked bearer token, or 401."""
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)", headers=_UNAUTHORIZED)
    digest = hash_token(credentials.credentials)
    t = models.api_tokens
    with read_tx(request.app.state.engine) as conn:
        tenant_id = conn.execute(
            select(t.c.tenant_id).where(t.c.token_hash == digest, t.c.revoked.is_(None))
        ).scalar()
    if tenant_id is None:
        raise HTTPException(401, "invalid or revoked API token", headers=_UNAUTHORIZED)
    return Principal(tenant_id=tenant_id)
