"""Writing a new flow run: its row, its first history row, and one Pending task run per task
of its flow (with theirs). Used by ``POST /flow_runs``, by ``deployments run`` and by the
scheduler, so every flow run starts the same way whoever creates it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from runwright_server import models
from runwright_server.common import new_ids
from runwright_server.locking import NEW_RUNS_INSERT, TASK_RUNS, driver_statement
from runwright_server.schemas import to_json_text

PENDING = {"type": "Pending", "message": None}
PENDING_TEXT = to_json_text(PENDING)


def scheduled_state(start: datetime) -> dict[str, Any]:
    """``Scheduled`` at ``start`` (naive UTC), as the engine serializes it."""
    return {"type": "Scheduled", "message": None, "start_time": start.isoformat() + "+00:00"}


def insert_flow_run(
    conn: Connection,
    *,
    run_id: str,
    tenant_id: str,
    flow_id: str,
    tasks_text: str,
    parameters: Mapping[str, Any],
    context: Mapping[str, Any],
    scheduled_start_time: datetime,
    state: Mapping[str, Any],
    now: datetime,
    orchestration: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Insert the flow run (``orchestration``: its deployment_id, queue, idempotency_key)
    and its task runs; return the task runs' ``(id, slug)``. An IntegrityError (a duplicate
    idempotency key) leaves the caller's savepoint to roll back."""
    state_text = to_json_text(dict(state))
    conn.execute(
        models.flow_runs.insert().values(
            id=run_id,
            tenant_id=tenant_id,
            flow_id=flow_id,
            parameters=to_json_text(dict(parameters)),
            context=to_json_text(dict(context)),
            scheduled_start_time=scheduled_start_time,
            state=state_text,
            state_type=state["type"],
            version=0,
            heartbeat=None,
            created=now,
            updated=now,
            **dict(orchestration or {}),
        )
    )
    conn.execute(
        models.flow_run_states.insert().values(
            flow_run_id=run_id, version=0, state=state_text, state_type=state["type"], timestamp=now
        )
    )
    # one task run per task, Pending at version 0, and its history row: two executemany
    # statements run straight on the driver (a flow of thousands of tasks is common)
    slugs = [task["slug"] for task in json.loads(tasks_text)]
    ids = new_ids(len(slugs))
    if slugs:
        insert = driver_statement(NEW_RUNS_INSERT, conn.dialect)
        stamp = insert.process("created", now)
        conn.exec_driver_sql(
            insert.sql,
            [
                insert.row(
                    {
                        "id": task_run_id,
                        "tenant_id": tenant_id,
                        "flow_run_id": run_id,
                        "task_slug": slug,
                        "map_index": -1,
                        "state": PENDING_TEXT,
                        "state_type": "Pending",
                        "version": 0,
                        "heartbeat": None,
                        "created": stamp,
                        "updated": stamp,
                    }
                )
                for task_run_id, slug in zip(ids, slugs, strict=True)
            ],
        )
        append = driver_statement(TASK_RUNS.append, conn.dialect)
        stamp = append.process("b_now", now)
        conn.exec_driver_sql(
            append.sql,
            [
                append.row(
                    {"b_id": task_run_id, "b_new_version": 0, "b_state": PENDING_TEXT, "b_type": "Pending", "b_now": stamp}
                )
                for task_run_id in ids
            ],
        )
    return list(zip(ids, slugs, strict=True))


def delete_unstarted_runs(conn: Connection, deployment_id: str, scheduled_only: bool) -> int:
    """Delete the deployment's runs that nothing ever touched: ``Scheduled`` at version 0, no
    agent (``scheduled_only``: only the scheduler's, which have an idempotency key), with their
    task runs and histories. A run an agent claimed, or one that was ever run, released or
    retried (version > 0), is kept. Returns how many runs were deleted.

    The runs are locked first (``FOR UPDATE`` on PostgreSQL), so a concurrent claim either
    happened before (the run is kept) or finds the run gone."""
    fr, tr = models.flow_runs, models.task_runs
    where = [
        fr.c.deployment_id == deployment_id,
        fr.c.state_type == "Scheduled",
        fr.c.version == 0,
        fr.c.agent_id.is_(None),
    ]
    if scheduled_only:
        where.append(fr.c.idempotency_key.is_not(None))
    run_ids = list(conn.execute(select(fr.c.id).where(*where).with_for_update()).scalars())
    for chunk_start in range(0, len(run_ids), 500):
        chunk = run_ids[chunk_start : chunk_start + 500]
        task_run_ids = select(tr.c.id).where(tr.c.flow_run_id.in_(chunk))
        conn.execute(delete(models.task_run_states).where(models.task_run_states.c.task_run_id.in_(task_run_ids)))
        conn.execute(delete(models.logs).where(models.logs.c.flow_run_id.in_(chunk)))
        conn.execute(delete(tr).where(tr.c.flow_run_id.in_(chunk)))
        conn.execute(delete(models.flow_run_states).where(models.flow_run_states.c.flow_run_id.in_(chunk)))
        conn.execute(delete(fr).where(fr.c.id.in_(chunk)))
    return len(run_ids)
