"""API tokens and tenants.

A token is ``rw_`` + 43 url-safe random characters; only its sha256 hex digest is stored.
Each token belongs to a tenant; every query of a request is filtered by that tenant.

Valid tokens are remembered in-process for ``Settings.token_cache_seconds`` (5 s): a request
whose token was checked less than that long ago costs no query. Revocation (``runwright
server token revoke``, from any process) therefore takes effect within that many seconds;
unknown and revoked tokens are never cached, so a new token works at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, select, update
from starlette.concurrency import run_in_threadpool

from runwright_server import models
from runwright_server.db import read_tx, write_tx

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


class TokenCache:
    """sha256 digest -> tenant id of tokens found valid, each kept for ``ttl`` seconds.

    Entries expire ``ttl`` seconds after the database check that found them, whatever the
    traffic, so a revoked token stops working within ``ttl`` seconds. ``ttl <= 0`` disables
    the cache. At most ``max_entries`` are kept (the whole cache is dropped when full).
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> str | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            with self._lock:
                if self._entries.get(digest) is entry:
                    del self._entries[digest]
            return None
        return entry[0]

    def put(self, digest: str, tenant_id: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (tenant_id, time.monotonic() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
#: where :class:`runwright_server.gate.AuthGateMiddleware` leaves the request's Principal
PRINCIPAL_SCOPE_KEY = "runwright.principal"


def _lookup_tenant(engine: Engine, digest: str) -> str | None:
    t = models.api_tokens
    with read_tx(engine) as conn:
        tenant_id: str | None = conn.execute(
            select(t.c.tenant_id).where(t.c.token_hash == digest, t.c.revoked.is_(None))
        ).scalar()
    return tenant_id


async def authenticate(app: Any, token: str) -> str | None:
    """The tenant id of a valid, unrevoked ``token`` (the app's token cache first), or None."""
    digest = hash_token(token)
    cache: TokenCache | None = getattr(app.state, "token_cache", None)
    tenant_id = cache.get(digest) if cache is not None else None
    if tenant_id is None:
        tenant_id = await run_in_threadpool(_lookup_tenant, app.state.engine, digest)
        if tenant_id is not None and cache is not None:
            cache.put(digest, tenant_id)
    return tenant_id


async def require_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """FastAPI dependency: a valid, unrevoked bearer token, or 401.

    The gate middleware has usually authenticated the request already (it left the Principal
    in the scope); otherwise the token is checked here (cache first, then the database in the
    thread pool).
    """
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if principal is not None:
        return principal
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)", headers=_UNAUTHORIZED)
    tenant_id = await authenticate(request.app, credentials.credentials)
    if tenant_id is None:
        raise HTTPException(401, "invalid or revoked API token", headers=_UNAUTHORIZED)
    return Principal(tenant_id=tenant_id)
