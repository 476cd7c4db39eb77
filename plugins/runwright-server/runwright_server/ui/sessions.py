"""Sign-in sessions of the web UI, kept in the database (``ui_sessions``).

Signing in with an API token creates a session: a random id goes to the browser in an
http-only, SameSite=Lax cookie; the server stores only its sha256, the tenant, the token's
hash (revoking the token ends its sessions) and a CSRF token that every POST must send back
(a form field, or the ``X-CSRF-Token`` header of htmx and fetch requests). Sessions live
``SESSION_SECONDS``; signing out deletes the row. Any server process on the same database
knows every session, so the UI works behind a load balancer.

A session checked in the last few seconds costs a dictionary lookup (like API tokens, see
:class:`runwright_server.auth.TokenCache`); otherwise one query in the thread pool.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, select
from starlette.concurrency import run_in_threadpool

from runwright_server import models
from runwright_server.auth import TokenCache, hash_token, utcnow
from runwright_server.db import read_tx, write_tx

COOKIE_NAME = "runwright_session"
SESSION_SECONDS = 12 * 3600
#: a cookie value is 43 url-safe characters; anything far longer is not ours
MAX_COOKIE_CHARS = 100


@dataclass(frozen=True)
class UiSession:
    tenant_id: str
    tenant_name: str
    csrf: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def create_session(engine: Engine, token: str) -> str | None:
    """A new session for a valid, unrevoked ``token``: the cookie value; None for a bad token."""
    t = models.api_tokens
    token_hash = hash_token(token)
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    with write_tx(engine) as conn:
        tenant_id = conn.execute(
            select(t.c.tenant_id).where(t.c.token_hash == token_hash, t.c.revoked.is_(None))
        ).scalar()
        if tenant_id is None:
            return None
        conn.execute(delete(models.ui_sessions).where(models.ui_sessions.c.expires < now))
        conn.execute(
            models.ui_sessions.insert().values(
                id_hash=_digest(session_id),
                tenant_id=tenant_id,
                token_hash=token_hash,
                csrf=secrets.token_urlsafe(32),
                created=now,
                expires=now + timedelta(seconds=SESSION_SECONDS),
            )
        )
    return session_id


def _lookup(engine: Engine, digest: str) -> UiSession | None:
    s, t, ten = models.ui_sessions, models.api_tokens, models.tenants
    with read_tx(engine) as conn:
        row = conn.execute(
            select(s.c.tenant_id, ten.c.name, s.c.csrf)
            .join(t, t.c.token_hash == s.c.token_hash)
            .join(ten, ten.c.id == s.c.tenant_id)
            .where(s.c.id_hash == digest, s.c.expires > utcnow(), t.c.revoked.is_(None))
        ).first()
    return None if row is None else UiSession(tenant_id=row[0], tenant_name=row[1], csrf=row[2])


class SessionCache:
    """Sessions found valid, kept ``ttl`` seconds (a revoked token ends them within that)."""

    def __init__(self, ttl: float) -> None:
        self._cache = TokenCache(ttl)
        self._sessions: dict[str, UiSession] = {}

    def get(self, digest: str) -> UiSession | None:
        return self._sessions.get(digest) if self._cache.get(digest) is not None else None

    def put(self, digest: str, session: UiSession) -> None:
        if len(self._sessions) >= self._cache.max_entries:
            self._sessions.clear()
        self._sessions[digest] = session
        self._cache.put(digest, session.tenant_id)

    def drop(self, digest: str) -> None:
        self._sessions.pop(digest, None)


async def session_of(app: Any, cookie: str | None) -> UiSession | None:
    """The live session of a cookie value, or None (missing, unknown, expired, token revoked)."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return None
    digest = _digest(cookie)
    cache: SessionCache = app.state.ui_sessions
    found = cache.get(digest)
    if found is None:
        found = await run_in_threadpool(_lookup, app.state.engine, digest)
        if found is not None:
            cache.put(digest, found)
    return found


def end_session(app: Any, cookie: str) -> None:
    """Sign out: the session's row is deleted (other server processes stop accepting it
    within their session cache's few seconds)."""
    digest = _digest(cookie)
    app.state.ui_sessions.drop(digest)
    with write_tx(app.state.engine) as conn:
        conn.execute(delete(models.ui_sessions).where(models.ui_sessions.c.id_hash == digest))


def csrf_ok(session: UiSession, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf.encode(), sent.encode("utf-8", "replace"))
