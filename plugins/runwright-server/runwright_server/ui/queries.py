"""What the UI's pages show: tenant-scoped reads of the server's tables.

Every function takes the tenant id of the signed-in session and filters by it; a row of
another tenant is never returned (an id of another tenant's run is simply not found).
Times are naive UTC, as stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from runwright_server import models
from runwright_server.state_rules import FINISHED_TYPES

FAILED_TYPES = ("Failed", "TriggerFailed", "TimedOut", "Aborted", "ClientFailed")
#: how long an agent may be unseen and still count as online
AGENT_ONLINE_SECONDS = 60.0
LATE_AFTER_SECONDS = 5.0
PAGE_SIZE = 50


def _json(text: str | None, default: Any = None) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


# -- dashboard -------------------------------------------------------------------------------
def counts_by_state(conn: Connection, tenant: str, since: datetime) -> dict[str, int]:
    fr = models.flow_runs
    rows = conn.execute(
        select(fr.c.state_type, func.count())
        .where(fr.c.tenant_id == tenant, fr.c.created >= since)
        .group_by(fr.c.state_type)
    ).all()
    return {r[0]: int(r[1]) for r in sorted(rows, key=lambda r: -r[1])}


def _run_rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [_run_row(r) for r in conn.execute(stmt).mappings()]


def _run_select() -> Any:
    fr, f, d = models.flow_runs, models.flows, models.deployments
    return (
        select(
            fr.c.id, fr.c.state_type, fr.c.state, fr.c.created, fr.c.updated, fr.c.scheduled_start_time,
            fr.c.deployment_id, fr.c.cancel_requested, f.c.name.label("flow_name"), d.c.name.label("deployment_name"),
        )
        .join(f, f.c.id == fr.c.flow_id)
        .outerjoin(d, d.c.id == fr.c.deployment_id)
    )


def _run_row(r: Any) -> dict[str, Any]:
    state = _json(r["state"], {})
    return {
        "id": r["id"],
        "state_type": r["state_type"],
        "message": state.get("message") if isinstance(state, dict) else None,
        "created": r["created"],
        "updated": r["updated"],
        "scheduled_start_time": r["scheduled_start_time"],
        "flow_name": r["flow_name"],
        "deployment_name": r["deployment_name"],
        "cancel_requested": r["cancel_requested"] is not None,
        "duration": (r["updated"] - r["created"]).total_seconds() if r["state_type"] in FINISHED_TYPES else None,
    }


def recent_failures(conn: Connection, tenant: str, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    fr = models.flow_runs
    stmt = (
        _run_select()
        .where(fr.c.tenant_id == tenant, fr.c.state_type.in_(FAILED_TYPES), fr.c.created >= since)
        .order_by(fr.c.created.desc())
        .limit(limit)
    )
    return _run_rows(conn, stmt)


def late_runs(conn: Connection, tenant: str, now: datetime, limit: int = 10) -> list[dict[str, Any]]:
    fr = models.flow_runs
    stmt = (
        _run_select()
        .where(
            fr.c.tenant_id == tenant,
            fr.c.state_type == "Scheduled",
            fr.c.scheduled_start_time < now - timedelta(seconds=LATE_AFTER_SECONDS),
        )
        .order_by(fr.c.scheduled_start_time)
        .limit(limit)
    )
    return _run_rows(conn, stmt)


# -- flow runs list --------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFilter:
    flow: str = ""
    deployment: str = ""
    state: str = ""
    since: datetime | None = None
    until: datetime | None = None


def encode_cursor(row: dict[str, Any]) -> str:
    return f"{row['created'].isoformat()}_{row['id']}"


def decode_cursor(text: str) -> tuple[datetime, str] | None:
    created, _, run_id = text.partition("_")
    try:
        return datetime.fromisoformat(created), run_id[:64]
    except ValueError:
        return None


def list_runs(
    conn: Connection, tenant: str, flt: RunFilter, before: tuple[datetime, str] | None, limit: int = PAGE_SIZE
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, and the cursor of the next page (keyset: created, id)."""
    fr, f, d = models.flow_runs, models.flows, models.deployments
    stmt = _run_select().where(fr.c.tenant_id == tenant)
    if flt.flow:
        ids = select(f.c.id).where(f.c.tenant_id == tenant, f.c.name == flt.flow)
        stmt = stmt.where(fr.c.flow_id.in_(ids))
    if flt.deployment:
        ids = select(d.c.id).where(d.c.tenant_id == tenant, d.c.name == flt.deployment)
        stmt = stmt.where(fr.c.deployment_id.in_(ids))
    if flt.state:
        stmt = stmt.where(fr.c.state_type == flt.state)
    if flt.since is not None:
        stmt = stmt.where(fr.c.created >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(fr.c.created < flt.until)
    if before is not None:
        created, run_id = before
        stmt = stmt.where(or_(fr.c.created < created, and_(fr.c.created == created, fr.c.id < run_id)))
    stmt = stmt.order_by(fr.c.created.desc(), fr.c.id.desc()).limit(limit + 1)
    rows = _run_rows(conn, stmt)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


def filter_choices(conn: Connection, tenant: str) -> dict[str, list[str]]:
    f, d = models.flows, models.deployments
    flows = conn.execute(select(f.c.name).where(f.c.tenant_id == tenant).distinct().order_by(f.c.name).limit(500))
    deps = conn.execute(select(d.c.name).where(d.c.tenant_id == tenant).order_by(d.c.name).limit(500))
    return {"flows": [r[0] for r in flows], "deployments": [r[0] for r in deps]}


# -- one flow run ----------------------------------------------------------------------------
def get_run(conn: Connection, tenant: str, run_id: str, with_graph: bool = False) -> dict[str, Any] | None:
    """The run; with ``with_graph`` also its flow's ``tasks`` and ``edges`` (large flows: only when asked)."""
    fr, f = models.flow_runs, models.flows
    graph = (f.c.tasks, f.c.edges) if with_graph else ()
    r = conn.execute(
        _run_select()
        .add_columns(fr.c.parameters, fr.c.version, fr.c.heartbeat, fr.c.agent_id, fr.c.queue, f.c.version.label("flow_version"), *graph)
        .where(fr.c.id == run_id, fr.c.tenant_id == tenant)
    ).mappings().first()
    if r is None:
        return None
    out = _run_row(r)
    out.update(
        parameters=_json(r["parameters"], {}),
        state=_json(r["state"], {}),
        version=r["version"],
        heartbeat=r["heartbeat"],
        queue=r["queue"],
        flow_version=r["flow_version"],
    )
    if with_graph:
        out.update(tasks=_json(r["tasks"], []), edges=_json(r["edges"], []))
    started = conn.execute(
        select(func.min(models.flow_run_states.c.timestamp)).where(
            models.flow_run_states.c.flow_run_id == run_id, models.flow_run_states.c.state_type == "Running"
        )
    ).scalar()
    out["started"] = started
    return out


def run_fingerprint(conn: Connection, tenant: str, run_id: str) -> tuple[Any, ...] | None:
    """Changes whenever the run or one of its task runs changes state (cheap: two index reads)."""
    fr, tr = models.flow_runs, models.task_runs
    row = conn.execute(
        select(fr.c.version, fr.c.state_type, fr.c.cancel_requested).where(fr.c.id == run_id, fr.c.tenant_id == tenant)
    ).first()
    if row is None:
        return None
    last = conn.execute(select(func.max(tr.c.updated)).where(tr.c.flow_run_id == run_id)).scalar()
    logs = conn.execute(select(func.max(models.logs.c.id)).where(models.logs.c.flow_run_id == run_id)).scalar()
    return (row[0], row[1], row[2], last, logs)


def task_runs(conn: Connection, tenant: str, run_id: str, updated_since: datetime | None = None) -> list[list[Any]]:
    """The task runs of the run (all, or those updated at or after ``updated_since``), compact:
    ``[id, slug, map_index, state, start, end]`` with times in epoch ms.

    ``start`` is its first Running state; ``end`` its last update once finished.
    """
    tr, trs = models.task_runs, models.task_run_states
    mine = [tr.c.flow_run_id == run_id, tr.c.tenant_id == tenant]
    if updated_since is not None:
        mine.append(tr.c.updated >= updated_since)
    # the run's few history rows per task run (the unique (task_run_id, version) index); times in epoch ms
    # computed by the database: no datetime objects for 10,000 rows
    started = (
        select(func.min(trs.c.timestamp))
        .where(trs.c.task_run_id == tr.c.id, trs.c.state_type == "Running")
        .correlate(tr)
        .scalar_subquery()
    )
    epoch = _epoch_ms(conn)
    finished = tr.c.state_type.in_(FINISHED_TYPES)
    rows = conn.execute(
        select(tr.c.id, tr.c.task_slug, tr.c.map_index, tr.c.state_type, epoch(started), epoch(tr.c.updated), finished).where(*mine)
    ).all()
    return [[r[0], r[1], r[2], r[3], _int(r[4]), _int(r[5]) if r[6] else None] for r in rows]


def _epoch_ms(conn: Connection) -> Any:
    if conn.dialect.name == "sqlite":
        return lambda col: func.round((func.julianday(col) - 2440587.5) * 86400000.0)
    return lambda col: func.round(func.extract("epoch", col) * 1000)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def task_run_detail(conn: Connection, tenant: str, run_id: str, task_run_id: str) -> dict[str, Any] | None:
    tr, trs = models.task_runs, models.task_run_states
    r = conn.execute(
        select(tr.c.id, tr.c.task_slug, tr.c.map_index, tr.c.state, tr.c.state_type, tr.c.created, tr.c.updated)
        .where(tr.c.id == task_run_id, tr.c.flow_run_id == run_id, tr.c.tenant_id == tenant)
    ).mappings().first()
    if r is None:
        return None
    history = conn.execute(
        select(trs.c.version, trs.c.state_type, trs.c.state, trs.c.timestamp)
        .where(trs.c.task_run_id == task_run_id)
        .order_by(trs.c.version)
        .limit(200)
    ).all()
    state = _json(r["state"], {})
    return {
        "id": r["id"],
        "slug": r["task_slug"],
        "map_index": r["map_index"],
        "state_type": r["state_type"],
        "state": state,
        "result_location": result_location(state),
        "history": [
            {"version": h[0], "type": h[1], "message": (_json(h[2], {}) or {}).get("message"), "timestamp": h[3]}
            for h in history
        ],
    }


def result_location(state: Any) -> str | None:
    """Where a task's result is kept: the handler's kind and the stored value (a URI or key)."""
    if not isinstance(state, dict):
        return None
    result = state.get("_result")
    if isinstance(state.get("state"), dict) and not result:
        result = state["state"].get("_result")
    if not isinstance(result, dict) or result.get("type") != "SafeResult":
        return None
    handler = result.get("result_handler") or {}
    kind = handler.get("type") or handler.get("name") or "result"
    return f"{kind}: {result.get('value')}"


def logs(
    conn: Connection, tenant: str, run_id: str, after_id: int = 0, task_run_id: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    lg = models.logs
    stmt = select(lg.c.id, lg.c.timestamp, lg.c.level, lg.c.name, lg.c.message, lg.c.task_run_id).where(
        lg.c.flow_run_id == run_id, lg.c.tenant_id == tenant, lg.c.id > after_id
    )
    if task_run_id is not None:
        stmt = stmt.where(lg.c.task_run_id == task_run_id)
    rows = conn.execute(stmt.order_by(lg.c.id).limit(limit)).all()
    return [
        {"id": r[0], "timestamp": r[1], "level": r[2], "name": r[3], "message": r[4][:10_000], "task_run_id": r[5]}
        for r in rows
    ]


# -- flows, deployments, agents --------------------------------------------------------------
def list_flows(conn: Connection, tenant: str) -> list[dict[str, Any]]:
    f, fr = models.flows, models.flow_runs
    rows = conn.execute(
        select(f.c.name, func.count(f.c.id), func.max(f.c.created))
        .where(f.c.tenant_id == tenant)
        .group_by(f.c.name)
        .order_by(f.c.name)
        .limit(1000)
    ).all()
    out = []
    for name, versions, created in rows:
        last = conn.execute(
            select(fr.c.id, fr.c.state_type, fr.c.created)
            .where(fr.c.tenant_id == tenant, fr.c.flow_id.in_(select(f.c.id).where(f.c.tenant_id == tenant, f.c.name == name)))
            .order_by(fr.c.created.desc())
            .limit(1)
        ).first()
        out.append(
            {
                "name": name,
                "versions": int(versions),
                "registered": created,
                "last_run": None if last is None else {"id": last[0], "state_type": last[1], "created": last[2]},
            }
        )
    return out


def list_deployments(conn: Connection, tenant: str, now: datetime) -> list[dict[str, Any]]:
    d = models.deployments
    rows = conn.execute(select(d).where(d.c.tenant_id == tenant).order_by(d.c.name).limit(1000)).mappings().all()
    return [_deployment(r, now) for r in rows]


def get_deployment(conn: Connection, tenant: str, name: str, now: datetime) -> dict[str, Any] | None:
    d = models.deployments
    r = conn.execute(select(d).where(d.c.tenant_id == tenant, d.c.name == name)).mappings().first()
    return None if r is None else _deployment(r, now)


def _deployment(r: Any, now: datetime) -> dict[str, Any]:
    schedule = _json(r["schedule"])
    return {
        "id": r["id"],
        "name": r["name"],
        "flow_name": r["flow_name"],
        "flow_id": r["flow_id"],
        "queue": r["queue"],
        "paused": bool(r["paused"]),
        "version": r["version"],
        "concurrency_limit": r["concurrency_limit"],
        "parameters": _json(r["parameters"], {}),
        "schedule": schedule,
        "schedule_text": describe_schedule(schedule),
        "next_starts": [] if r["paused"] else next_starts(schedule, now),
    }


def describe_schedule(schedule: Any) -> str:
    """A schedule in words: "every 1 h from 2026-01-01 00:00 UTC", "cron 0 3 * * * (Europe/Paris)"."""
    if not schedule:
        return "none (runs when asked)"
    if not isinstance(schedule, dict):
        return str(schedule)[:200]
    kind = schedule.get("type")
    if kind == "Schedule":
        return "; ".join(describe_schedule(c) for c in schedule.get("clocks") or [])
    tz = schedule.get("timezone") or "UTC"
    if kind == "IntervalSchedule":
        start = str(schedule.get("start_date") or "")[:16].replace("T", " ")
        return f"every {_interval(schedule.get('interval'))} from {start} {tz}".rstrip()
    if kind == "CronSchedule":
        return f"cron {schedule.get('cron')} ({tz})"
    return json.dumps(schedule)[:200]


def _interval(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return str(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def next_starts(schedule: Any, now: datetime, n: int = 3) -> list[datetime]:
    if not schedule:
        return []
    try:
        from datetime import UTC

        from runwright.schedules import BaseSchedule

        return [t.astimezone(UTC).replace(tzinfo=None) for t in BaseSchedule.deserialize(schedule).next(n, after=now.replace(tzinfo=UTC))]
    except (ValueError, TypeError, KeyError, OverflowError):  # a schedule this core cannot read
        return []


def list_agents(conn: Connection, tenant: str, now: datetime) -> list[dict[str, Any]]:
    a, fr = models.agents, models.flow_runs
    rows = conn.execute(select(a).where(a.c.tenant_id == tenant).order_by(a.c.last_seen.desc()).limit(500)).mappings().all()
    out = []
    for r in rows:
        running = conn.execute(
            select(func.count()).where(
                fr.c.tenant_id == tenant, fr.c.agent_id == r["id"], fr.c.state_type.in_(("Submitted", "Running"))
            )
        ).scalar()
        out.append(
            {
                "id": r["id"],
                "name": r["name"],
                "queues": _json(r["queues"], []),
                "run_limit": r["run_limit"],
                "last_seen": r["last_seen"],
                "online": agent_online(r["last_seen"], r["stopped"], now),
                "stopped": r["stopped"],
                "running": int(running or 0),
            }
        )
    return out


def agent_online(last_seen: datetime, stopped: datetime | None, now: datetime) -> bool:
    return stopped is None and (now - last_seen).total_seconds() <= AGENT_ONLINE_SECONDS
