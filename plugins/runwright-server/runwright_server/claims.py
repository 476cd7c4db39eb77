"""Agents and their claims: registration, one look at the work of a poll, release, stop.

A claim moves a due ``Scheduled`` run of the agent's queues to ``Submitted`` (wrapping the
Scheduled state, so the runner that starts it sees its start time) through the same
version-checked write as any state write, and sets ``agent_id`` and ``claimed``. Two agents
(of one server or of several servers on one PostgreSQL) naming the same run and version
cannot both win: the loser simply does not get it.

Concurrency limits count a deployment's (or a queue's) runs that are ``Submitted`` or
``Running``. On PostgreSQL the deployment's and the queue's rows are locked (``FOR UPDATE``)
before counting, so two claims never both take the last slot; SQLite serializes writers.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from runwright_server import models
from runwright_server.auth import utcnow
from runwright_server.common import aware
from runwright_server.db import read_tx, write_tx
from runwright_server.locking import FLOW_RUNS, write_state
from runwright_server.schemas import to_json_text

#: states that occupy a slot of a concurrency limit
BUSY_TYPES = ("Submitted", "Running")
#: how many due runs one claim looks at beyond the free slots (runs held back by a limit)
LOOKAHEAD = 50


@dataclass
class PollAnswer:
    """What one look found: claimed runs (with their deployments), runs to cancel, and the
    earliest start of a Scheduled run of the queues that is not due yet."""

    claimed: list[dict[str, Any]] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    next_due: datetime | None = None

    @property
    def answers(self) -> bool:
        return bool(self.claimed or self.cancel)


def register_agent(engine: Engine, tenant_id: str, name: str, queues: list[str], run_limit: int | None) -> str:
    agent_id = str(uuid.uuid4())
    now = utcnow()
    with write_tx(engine) as conn:
        conn.execute(
            models.agents.insert().values(
                id=agent_id,
                tenant_id=tenant_id,
                name=name,
                queues=to_json_text(queues),
                run_limit=run_limit,
                last_seen=now,
                created=now,
                stopped=None,
            )
        )
    return agent_id


def agent_exists(engine: Engine, tenant_id: str, agent_id: str) -> bool:
    a = models.agents
    with read_tx(engine) as conn:
        return conn.execute(select(a.c.id).where(a.c.id == agent_id, a.c.tenant_id == tenant_id)).first() is not None


def touch_agent(engine: Engine, tenant_id: str, agent_id: str) -> bool:
    """The agent's heartbeat (``last_seen`` now); False when it is unknown (or another tenant's)."""
    a = models.agents
    with write_tx(engine) as conn:
        count = conn.execute(
            update(a).where(a.c.id == agent_id, a.c.tenant_id == tenant_id).values(last_seen=utcnow())
        ).rowcount
    return bool(count)


@dataclass(frozen=True)
class AgentRef:
    id: str
    name: str
    #: its registered run limit (None: no limit)
    run_limit: int | None


def look(
    engine: Engine,
    tenant_id: str,
    agent: AgentRef,
    queues: list[str],
    free_slots: int,
    running: list[str],
    cancelling: list[str],
) -> PollAnswer:
    """One look for the poll: claim up to ``free_slots`` due runs (fewer when the agent's
    Submitted and Running runs leave fewer of its ``run_limit``); name the Running runs of
    the agent (or in ``running``) whose cancel was requested, except those in
    ``cancelling`` (the agent is stopping them). Reads first; writes only to claim."""
    answer = PollAnswer()
    fr = models.flow_runs
    now = utcnow()
    with read_tx(engine) as conn:
        mine = fr.c.agent_id == agent.id
        answer.cancel = list(
            conn.execute(
                select(fr.c.id).where(
                    fr.c.tenant_id == tenant_id,
                    fr.c.cancel_requested.is_not(None),
                    fr.c.state_type == "Running",
                    or_(mine, fr.c.id.in_(running)) if running else mine,
                    fr.c.id.not_in(cancelling),
                )
            ).scalars()
        )
        if not queues:
            return answer
        earliest = conn.execute(
            select(func.min(fr.c.scheduled_start_time)).where(
                fr.c.tenant_id == tenant_id, fr.c.queue.in_(queues), fr.c.state_type == "Scheduled"
            )
        ).scalar()
    if earliest is None:
        return answer
    if earliest > now:
        answer.next_due = earliest
        return answer
    if free_slots > 0:
        answer.claimed = claim(engine, tenant_id, agent, queues, free_slots, now)
        if not answer.claimed:
            answer.next_due = _next_start(engine, tenant_id, queues, now)
    return answer


def _next_start(engine: Engine, tenant_id: str, queues: list[str], now: datetime) -> datetime | None:
    fr = models.flow_runs
    with read_tx(engine) as conn:
        value: datetime | None = conn.execute(
            select(func.min(fr.c.scheduled_start_time)).where(
                fr.c.tenant_id == tenant_id,
                fr.c.queue.in_(queues),
                fr.c.state_type == "Scheduled",
                fr.c.scheduled_start_time > now,
            )
        ).scalar()
    return value


def claim(
    engine: Engine, tenant_id: str, agent: AgentRef, queues: list[str], free_slots: int, now: datetime
) -> list[dict[str, Any]]:
    """Claim up to ``free_slots`` due runs of ``queues``, oldest start first, within limits."""
    fr, dep = models.flow_runs, models.deployments
    claimed: list[dict[str, Any]] = []
    agent_id, agent_name = agent.id, agent.name
    with write_tx(engine) as conn:
        stopped = conn.execute(select(models.agents.c.stopped).where(models.agents.c.id == agent_id)).scalar()
        if stopped is not None:
            return claimed  # a stopped agent's last poll takes nothing
        # seen now: the sweeper must not take back what it claims (its poll may be old)
        conn.execute(update(models.agents).where(models.agents.c.id == agent_id).values(last_seen=now))
        if agent.run_limit is not None:
            busy = conn.execute(
                select(func.count()).where(
                    fr.c.tenant_id == tenant_id, fr.c.agent_id == agent_id, fr.c.state_type.in_(BUSY_TYPES)
                )
            ).scalar_one()
            free_slots = min(free_slots, agent.run_limit - busy)
            if free_slots <= 0:
                return claimed
        candidates = conn.execute(
            select(fr.c.id, fr.c.version, fr.c.state, fr.c.deployment_id, fr.c.queue)
            .where(
                fr.c.tenant_id == tenant_id,
                fr.c.queue.in_(queues),
                fr.c.state_type == "Scheduled",
                fr.c.scheduled_start_time <= now,
            )
            .order_by(fr.c.scheduled_start_time, fr.c.created, fr.c.id)
            .limit(free_slots + LOOKAHEAD)
        ).all()
        if not candidates:
            return claimed
        limits = _Limits(conn, tenant_id, {c.queue for c in candidates}, {c.deployment_id for c in candidates if c.deployment_id})
        for row in candidates:
            if len(claimed) >= free_slots:
                break
            if not limits.allows(row.queue, row.deployment_id):
                continue
            inner = json.loads(row.state)
            state = {"type": "Submitted", "message": f"Claimed by agent {agent_name}", "state": inner}
            outcome = write_state(conn, FLOW_RUNS, row.id, tenant_id, row.version, to_json_text(state), "Submitted", now)
            if outcome.status != "ok":
                continue  # another agent (or server) took it first
            conn.execute(update(fr).where(fr.c.id == row.id).values(agent_id=agent_id, claimed=now, heartbeat=None))
            limits.take(row.queue, row.deployment_id)
            claimed.append({"id": row.id, "deployment_id": row.deployment_id})
        if not claimed:
            return claimed
        ids = [c["id"] for c in claimed]
        f = models.flows
        runs = {
            r["id"]: r
            for r in conn.execute(
                select(fr, f.c.name.label("flow_name")).join(f, f.c.id == fr.c.flow_id).where(fr.c.id.in_(ids))
            ).mappings()
        }
        dep_ids = {c["deployment_id"] for c in claimed if c["deployment_id"]}
        deployments = {
            d["id"]: d for d in conn.execute(select(dep).where(dep.c.id.in_(dep_ids), dep.c.tenant_id == tenant_id)).mappings()
        } if dep_ids else {}
    return [claimed_run(runs[c["id"]], deployments.get(c["deployment_id"])) for c in claimed]


class _Limits:
    """The free slots of the deployments and queues of one claim (None: no limit)."""

    def __init__(self, conn: Connection, tenant_id: str, queues: set[str], deployment_ids: set[str]) -> None:
        fr, dep, wq = models.flow_runs, models.deployments, models.work_queues
        self.queue_free: dict[str, int | None] = {}
        self.deployment_free: dict[str, int | None] = {}
        queue_limits = dict(
            conn.execute(
                select(wq.c.name, wq.c.concurrency_limit)
                .where(wq.c.tenant_id == tenant_id, wq.c.name.in_(queues), wq.c.concurrency_limit.is_not(None))
                .order_by(wq.c.name)
                .with_for_update()
            ).all()
        )
        dep_limits = dict(
            conn.execute(
                select(dep.c.id, dep.c.concurrency_limit)
                .where(dep.c.id.in_(deployment_ids), dep.c.concurrency_limit.is_not(None))
                .order_by(dep.c.id)
                .with_for_update()
            ).all()
        ) if deployment_ids else {}
        busy = and_(fr.c.tenant_id == tenant_id, fr.c.state_type.in_(BUSY_TYPES))
        counts: dict[Any, int]
        if queue_limits:
            counts = dict(
                conn.execute(
                    select(fr.c.queue, func.count()).where(busy, fr.c.queue.in_(list(queue_limits))).group_by(fr.c.queue)
                ).all()
            )
            self.queue_free = {name: limit - counts.get(name, 0) for name, limit in queue_limits.items()}
        if dep_limits:
            counts = dict(
                conn.execute(
                    select(fr.c.deployment_id, func.count())
                    .where(busy, fr.c.deployment_id.in_(list(dep_limits)))
                    .group_by(fr.c.deployment_id)
                ).all()
            )
            self.deployment_free = {d: limit - counts.get(d, 0) for d, limit in dep_limits.items()}

    def allows(self, queue: str | None, deployment_id: str | None) -> bool:
        q = self.queue_free.get(queue or "")
        d = self.deployment_free.get(deployment_id or "")
        return (q is None or q > 0) and (d is None or d > 0)

    def take(self, queue: str | None, deployment_id: str | None) -> None:
        if queue in self.queue_free and self.queue_free[queue] is not None:
            self.queue_free[queue] -= 1  # type: ignore[operator]
        if deployment_id in self.deployment_free and self.deployment_free[deployment_id] is not None:
            self.deployment_free[deployment_id] -= 1  # type: ignore[operator]


def claimed_run(run: Any, deployment: Any) -> dict[str, Any]:
    """``ClaimedRun``: the flow run read and what the agent needs of its deployment."""
    from runwright_server.routes.flow_runs import flow_run_out

    out = flow_run_out(run)
    out.update(deployment_id=run["deployment_id"], queue=run["queue"], agent_id=run["agent_id"], claimed=aware(run["claimed"]))
    dep = None
    if deployment is not None:
        dep = {
            "name": deployment["name"],
            "flow_name": deployment["flow_name"],
            "storage": deployment["storage"],
            "storage_ref": json.loads(deployment["storage_ref"]),
            "executor": deployment["executor"],
        }
    return {"flow_run": out, "deployment": dep}


def scheduled_now(now: datetime) -> str:
    """The state of a run handed back or retried: Scheduled, due now."""
    return to_json_text({"type": "Scheduled", "message": None, "start_time": aware(now).isoformat()})  # type: ignore[union-attr]


def reschedule(conn: Connection, run_id: str, tenant_id: str, version: int, message: str, now: datetime) -> bool:
    """Put a run back to Scheduled (due now), unclaimed, its lease cleared (version-checked)."""
    fr = models.flow_runs
    text = to_json_text({"type": "Scheduled", "message": message, "start_time": aware(now).isoformat()})  # type: ignore[union-attr]
    if write_state(conn, FLOW_RUNS, run_id, tenant_id, version, text, "Scheduled", now).status != "ok":
        return False
    conn.execute(
        update(fr)
        .where(fr.c.id == run_id)
        .values(agent_id=None, claimed=None, lease=None, lease_holder=None, heartbeat=None)
    )
    return True


def release(engine: Engine, tenant_id: str, agent_id: str, run_ids: list[str]) -> list[str]:
    """Hand the agent's claimed runs that never started back; return the ones handed back."""
    fr = models.flow_runs
    now = utcnow()
    released = []
    with write_tx(engine) as conn:
        rows = conn.execute(
            select(fr.c.id, fr.c.version).where(
                fr.c.tenant_id == tenant_id, fr.c.id.in_(run_ids), fr.c.agent_id == agent_id, fr.c.state_type == "Submitted"
            )
        ).all()
        for row in rows:
            if reschedule(conn, row.id, tenant_id, row.version, "Handed back by its agent (it stopped)", now):
                released.append(row.id)
    return released


def stop_agent(engine: Engine, tenant_id: str, agent_id: str) -> bool:
    """A clean stop: the agent claims nothing more, and its claimed runs that never started
    go back to Scheduled."""
    a, fr = models.agents, models.flow_runs
    now = utcnow()
    with write_tx(engine) as conn:
        count = conn.execute(
            update(a).where(a.c.id == agent_id, a.c.tenant_id == tenant_id).values(stopped=now, last_seen=now)
        ).rowcount
        if count:
            rows = conn.execute(
                select(fr.c.id, fr.c.version).where(
                    fr.c.tenant_id == tenant_id, fr.c.agent_id == agent_id, fr.c.state_type == "Submitted"
                )
            ).all()
            for row in rows:
                reschedule(conn, row.id, tenant_id, row.version, "Handed back by its agent (it stopped)", now)
    return bool(count)


def requeue_zombies(engine: Engine, timeout: float, now: datetime | None = None, batch: int = 500) -> int:
    """The sweeper's part for agents: a ``Submitted`` run whose agent is unseen for
    ``timeout`` (or gone), and a ``Running`` run of a deployment whose heartbeat is older
    than ``timeout``, go back to ``Scheduled`` for another agent. Returns how many."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout)
    fr, a = models.flow_runs, models.agents
    count = 0
    with write_tx(engine) as conn:
        submitted = conn.execute(
            select(fr.c.id, fr.c.tenant_id, fr.c.version)
            .select_from(fr.outerjoin(a, a.c.id == fr.c.agent_id))
            .where(
                fr.c.state_type == "Submitted",
                fr.c.agent_id.is_not(None),
                (a.c.id.is_(None)) | (a.c.last_seen < cutoff),
            )
            .limit(batch)
        ).all()
        for row in submitted:
            count += reschedule(conn, row.id, row.tenant_id, row.version, f"Its agent was unseen for {timeout:g} s", now)
        running = conn.execute(
            select(fr.c.id, fr.c.tenant_id, fr.c.version)
            .where(
                fr.c.state_type == "Running",
                fr.c.deployment_id.is_not(None),
                func.coalesce(fr.c.heartbeat, fr.c.updated) < cutoff,
            )
            .limit(batch)
        ).all()
        for row in running:
            message = f"no heartbeat for {timeout:g} s: scheduled again for another agent"
            count += reschedule(conn, row.id, row.tenant_id, row.version, message, now)
    return count
