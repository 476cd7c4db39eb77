"""Agents (register, long-poll, release, stop) and work queues' concurrency limits.

The poll is an async route: while it waits it holds no thread, only a future of
:class:`~runwright_server.wakeups.Wakeups`. Each look at the database (one short read, a
write only when there is something to claim) runs in the threadpool. It looks again when
woken (a run created or changed, a cancel requested), when the earliest start it knows of is
reached, and at least every :data:`FALLBACK_SECONDS` (runs made due by another server process
on the same PostgreSQL).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from runwright_server import claims, models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.bodies import GuardedRoute
from runwright_server.common import AUTH_RESPONSES, NOT_FOUND, check_id, engine_of, json_response, not_found
from runwright_server.db import read_tx, write_tx
from runwright_server.schemas import Id, ShortLabel, _In
from runwright_server.wakeups import Wakeups

router = APIRouter(tags=["agents"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]

#: the longest a poll waits without looking at the database (other server processes)
FALLBACK_SECONDS = 1.0
#: how often a waiting poll refreshes its agent's ``last_seen`` (at most a third of the zombie timeout)
TOUCH_SECONDS = 10.0
MAX_WAIT_SECONDS = 30.0
MAX_QUEUES = 100
MAX_RUNNING = 10_000
QueueName = Annotated[ShortLabel, Field(min_length=1)]


class AgentIn(_In):
    name: QueueName = "agent"
    queues: list[QueueName] = Field(default_factory=lambda: ["default"], max_length=MAX_QUEUES)
    run_limit: Annotated[int, Field(ge=1, le=100_000)] | None = None


class AgentOut(BaseModel):
    id: str


class PollIn(_In):
    queues: list[QueueName] = Field(default_factory=lambda: ["default"], max_length=MAX_QUEUES)
    free_slots: Annotated[int, Field(ge=0, le=1000)] = 1
    wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] = MAX_WAIT_SECONDS
    running: list[Id] = Field(default_factory=list, max_length=MAX_RUNNING)
    cancelling: list[Id] = Field(
        default_factory=list,
        max_length=MAX_RUNNING,
        description="Runs whose cancel the agent already learned (not answered again).",
    )


class ClaimedDeployment(BaseModel):
    name: str
    flow_name: str
    storage: str
    storage_ref: dict[str, Any]
    executor: str | None


class ClaimedRun(BaseModel):
    flow_run: dict[str, Any] = Field(description="The flow run read (as GET /flow_runs/{id}, without task runs).")
    deployment: ClaimedDeployment | None


class PollOut(BaseModel):
    claimed: list[ClaimedRun]
    cancel: list[str] = Field(description="Ids of `running` runs whose cancel was requested.")


class ReleaseIn(_In):
    flow_run_ids: list[Id] = Field(max_length=MAX_RUNNING)


class ReleaseOut(BaseModel):
    released: list[str]


class StopOut(BaseModel):
    id: str
    stopped: bool


class WorkQueueIn(_In):
    concurrency_limit: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class WorkQueueOut(BaseModel):
    name: str
    concurrency_limit: int | None


@router.post("/agents", response_model=AgentOut, status_code=201)
def register_agent(body: AgentIn, request: Request, principal: Auth) -> dict[str, Any]:
    """Register an agent (also its first heartbeat)."""
    agent_id = claims.register_agent(engine_of(request), principal.tenant_id, body.name, body.queues, body.run_limit)
    return {"id": agent_id}


@router.post("/agents/{agent_id}/poll", response_model=PollOut, responses=NOT_FOUND)
async def poll(agent_id: str, body: PollIn, request: Request, principal: Auth) -> Response:
    """Long-poll for due runs of ``queues`` (claimed for this agent, at most ``free_slots``)
    and for cancels of ``running`` runs; answered at once when there are any, else after
    ``wait_seconds``. Each call is the agent's heartbeat."""
    check_id(agent_id, "agent")
    engine = engine_of(request)
    tenant = principal.tenant_id
    wakeups: Wakeups = request.app.state.wakeups
    agent = await run_in_threadpool(_touch, engine, tenant, agent_id)
    deadline = time.monotonic() + body.wait_seconds
    # a waiting agent is alive: seen again well within the zombie timeout
    touch_every = min(TOUCH_SECONDS, request.app.state.settings.zombie_timeout / 3)
    touched = time.monotonic()
    while True:
        if time.monotonic() - touched >= touch_every:
            await run_in_threadpool(claims.touch_agent, engine, tenant, agent_id)
            touched = time.monotonic()
        seen = wakeups.generation(tenant)
        answer = await run_in_threadpool(
            claims.look, engine, tenant, agent, body.queues, body.free_slots, body.running, body.cancelling
        )
        remaining = deadline - time.monotonic()
        if answer.claimed:
            wakeups.notify(tenant)  # runs changed state: event streams, other agents' counts
        if answer.answers or remaining <= 0 or await request.is_disconnected():
            return json_response({"claimed": answer.claimed, "cancel": answer.cancel})
        timeout = min(remaining, FALLBACK_SECONDS, touch_every)
        if answer.next_due is not None:
            timeout = min(timeout, max(0.0, _seconds_until(answer.next_due)))
        await wakeups.wait(tenant, seen, timeout)


def _touch(engine: Any, tenant: str, agent_id: str) -> claims.AgentRef:
    a = models.agents
    if not claims.touch_agent(engine, tenant, agent_id):
        raise not_found("agent")
    with read_tx(engine) as conn:
        row = conn.execute(select(a.c.name, a.c.run_limit).where(a.c.id == agent_id)).one()
    return claims.AgentRef(agent_id, row.name, row.run_limit)


def _seconds_until(when: datetime) -> float:
    return (when - utcnow()).total_seconds()


@router.post("/agents/{agent_id}/release", response_model=ReleaseOut, responses=NOT_FOUND)
def release(agent_id: str, body: ReleaseIn, request: Request, principal: Auth) -> dict[str, Any]:
    """Hand claimed runs that never started back (Scheduled, due now)."""
    check_id(agent_id, "agent")
    engine = engine_of(request)
    if not claims.agent_exists(engine, principal.tenant_id, agent_id):
        raise not_found("agent")
    released = claims.release(engine, principal.tenant_id, agent_id, body.flow_run_ids)
    if released:
        request.app.state.wakeups.notify(principal.tenant_id)
    return {"released": released}


@router.post("/agents/{agent_id}/stop", response_model=StopOut, responses=NOT_FOUND)
def stop(agent_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    """A clean stop of the agent: it claims nothing more; its claimed runs that never started
    go back to Scheduled."""
    check_id(agent_id, "agent")
    if not claims.stop_agent(engine_of(request), principal.tenant_id, agent_id):
        raise not_found("agent")
    request.app.state.wakeups.notify(principal.tenant_id)
    return {"id": agent_id, "stopped": True}


@router.put("/work_queues/{name}", response_model=WorkQueueOut)
def set_work_queue(name: str, body: WorkQueueIn, request: Request, principal: Auth) -> dict[str, Any]:
    """Set a queue's concurrency limit (null: no limit)."""
    if not 0 < len(name) <= 200 or "\x00" in name:
        raise not_found("work queue")
    wq = models.work_queues
    tenant = principal.tenant_id
    with write_tx(engine_of(request)) as conn:
        exists = conn.execute(select(wq.c.name).where(wq.c.tenant_id == tenant, wq.c.name == name)).first()
        if exists is None:
            conn.execute(wq.insert().values(tenant_id=tenant, name=name, concurrency_limit=body.concurrency_limit, created=utcnow()))
        else:
            conn.execute(
                wq.update().where(wq.c.tenant_id == tenant, wq.c.name == name).values(concurrency_limit=body.concurrency_limit)
            )
    request.app.state.wakeups.notify(tenant)  # a raised limit may free slots at once
    return {"name": name, "concurrency_limit": body.concurrency_limit}


@router.get("/work_queues", response_model=list[WorkQueueOut])
def list_work_queues(request: Request, principal: Auth) -> list[dict[str, Any]]:
    wq = models.work_queues
    with read_tx(engine_of(request)) as conn:
        rows = conn.execute(
            select(wq.c.name, wq.c.concurrency_limit).where(wq.c.tenant_id == principal.tenant_id).order_by(wq.c.name).limit(1000)
        ).all()
    return [{"name": r.name, "concurrency_limit": r.concurrency_limit} for r in rows]
