"""Warm-up at start: the first requests after a start are as fast as later ones.

A fresh server process pays once for many lazy steps on the first request of each kind:
FastAPI builds its route state, the thread pool starts, the connection pool opens its
connections, SQLAlchemy compiles each statement and SQLite prepares it. Together that is
~100 ms, paid by the first flow run after every start. So before it accepts connections (in
the app's lifespan startup, which uvicorn completes before serving, so ``GET /health``
answers only afterwards) the server sends itself, in-process through the whole ASGI stack,
the requests of a tiny flow run: register a flow of two tasks, create a run, claim it,
write a batch of task-run states with an inline result, read the run, finish it, get or
create mapped children.

The warm-up runs in a tenant of its own (named ``__warmup__<uuid>``, authenticated through
the in-process token cache only: no token is stored), and every row it wrote is deleted when
it ends, so the database keeps nothing of it (nor of an interrupted warm-up older than an
hour). A warm-up that fails is logged and ignored: the server starts anyway.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, delete, select

from runwright_server import models
from runwright_server.auth import TokenCache, hash_token, utcnow
from runwright_server.db import write_tx

log = logging.getLogger(__name__)

TENANT_PREFIX = "__warmup__"
API = "/api/v1"


class WarmupError(Exception):
    pass


async def _call(app: FastAPI, token: str, method: str, path: str, body: Any = None) -> Any:
    """One request through the app's whole ASGI stack; returns the decoded JSON answer."""
    raw = b"" if body is None else json.dumps(body).encode("utf-8")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": API + path,
        "raw_path": (API + path).encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", b"Bearer " + token.encode("ascii")),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode("ascii")),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    messages: list[MutableMapping[str, Any]] = [{"type": "http.request", "body": raw, "more_body": False}]
    status: list[int] = []
    chunks: list[bytes] = []

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    if not status or status[0] >= 300:
        raise WarmupError(f"{method} {path}: {status[0] if status else 'no answer'} {b''.join(chunks)[:200]!r}")
    return json.loads(b"".join(chunks) or b"null")


async def warm_up(app: FastAPI, engine: Engine) -> None:
    """Run the warm-up flow run, then delete what it wrote (see the module docstring)."""
    now = utcnow()
    tenant_id = str(uuid.uuid4())
    token = secrets.token_urlsafe(32)
    saved_cache = app.state.token_cache
    try:
        with write_tx(engine) as conn:
            conn.execute(models.tenants.insert().values(id=tenant_id, name=TENANT_PREFIX + tenant_id, created=now))
        cache = TokenCache(ttl=600)
        cache.put(hash_token(token), tenant_id)
        app.state.token_cache = cache
        await _run_flow(app, token)
    except Exception as exc:  # noqa: BLE001 - the warm-up must never stop the server
        log.warning("server warm-up failed (the server starts anyway): %s", exc)
    finally:
        app.state.token_cache = saved_cache
        try:
            _delete_warmup_tenants(engine, tenant_id, now - timedelta(hours=1))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not delete the server warm-up's rows: %s", exc)


async def _run_flow(app: FastAPI, token: str) -> None:
    lease = secrets.token_hex(16)
    flow = await _call(
        app,
        token,
        "POST",
        "/flows",
        {
            "name": "warm-up",
            "tasks": [{"slug": "a", "name": "a"}, {"slug": "b", "name": "b"}],
            "edges": [{"upstream": "a", "downstream": "b"}],
        },
    )
    run = await _call(app, token, "POST", "/flow_runs", {"flow_id": flow["id"]})
    await _call(app, token, "POST", f"/flow_runs/{run['id']}/state", {"version": 0, "state": {"type": "Running"}, "lease": lease})
    key = secrets.token_hex(16)
    a, b = (task_run["id"] for task_run in run["task_runs"])
    await _call(
        app,
        token,
        "POST",
        "/task_run_states",
        {
            "writes": [
                {"task_run_id": a, "version": 0, "state": {"type": "Running"}},
                {"task_run_id": a, "version": 1, "state": {"type": "Success", "uri": "rwcloud://results/" + key}},
                {"task_run_id": b, "version": 0, "state": {"type": "Running"}},
            ],
            "lease": {"flow_run_id": run["id"], "token": lease},
            "results": [{"key": key, "data": base64.b64encode(b"warm-up").decode("ascii")}],
        },
    )
    await _call(app, token, "POST", f"/task_runs/{b}/state", {"version": 1, "state": {"type": "Mapped"}, "lease": lease})
    await _call(app, token, "POST", "/task_runs/batch", {"flow_run_id": run["id"], "task_slug": "b", "map_indexes": [0, 1]})
    await _call(app, token, "GET", f"/flow_runs/{run['id']}")
    await _call(app, token, "POST", f"/flow_runs/{run['id']}/state", {"version": 1, "state": {"type": "Success"}})


def _delete_warmup_tenants(engine: Engine, tenant_id: str, stale_before: Any) -> None:
    """Delete the rows of this warm-up's tenant, and of warm-up tenants older than ``stale_before``."""
    t = models.tenants
    with write_tx(engine) as conn:
        tenants = list(
            conn.execute(
                select(t.c.id).where(
                    t.c.name.startswith(TENANT_PREFIX, autoescape=True),
                    (t.c.id == tenant_id) | (t.c.created < stale_before),
                )
            ).scalars()
        )
        if not tenants:
            return
        tr, fr = models.task_runs, models.flow_runs
        task_runs = select(tr.c.id).where(tr.c.tenant_id.in_(tenants))
        flow_runs = select(fr.c.id).where(fr.c.tenant_id.in_(tenants))
        conn.execute(delete(models.task_run_states).where(models.task_run_states.c.task_run_id.in_(task_runs)))
        conn.execute(delete(models.flow_run_states).where(models.flow_run_states.c.flow_run_id.in_(flow_runs)))
        for table in (models.logs, models.results, tr, fr, models.flows, models.api_tokens):
            conn.execute(delete(table).where(table.c.tenant_id.in_(tenants)))
        conn.execute(delete(t).where(t.c.id.in_(tenants)))
