"""Optimistic locking of flow-run and task-run states.

A write names the version it expects. One statement does the check and the bump::

    UPDATE <runs> SET state=?, state_type=?, version=version+1, heartbeat=?, updated=?
    WHERE id=? AND tenant_id=? AND version=?

``rowcount == 1`` means the write won: the new state is appended to the history with the new
version, in the same transaction. ``rowcount == 0`` means the run is unknown (or another
tenant's) or the version moved on; a second read tells which. Two writers naming the same
version cannot both match, on SQLite (one writer at a time) or PostgreSQL (the second UPDATE
waits for the first and re-checks its WHERE clause).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, select, update

from runwright_cloud.server import models


@dataclass(frozen=True)
class WriteOutcome:
    status: Literal["ok", "conflict", "not_found"]
    version: int | None = None
    current_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunKind:
    """The pair of tables and the history's foreign-key column for one kind of run."""

    runs: Table
    history: Table
    history_fk: str


FLOW_RUNS = RunKind(models.flow_runs, models.flow_run_states, "flow_run_id")
TASK_RUNS = RunKind(models.task_runs, models.task_run_states, "task_run_id")


def write_state(
    conn: Connection,
    kind: RunKind,
    run_id: str,
    tenant_id: str,
    expected_version: int,
    state_text: str,
    state_type: str,
    now: datetime,
) -> WriteOutcome:
    """Apply one version-checked state write inside the caller's transaction."""
    runs = kind.runs
    result = conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.tenant_id == tenant_id, runs.c.version == expected_version)
        .values(state=state_text, state_type=state_type, version=runs.c.version + 1, heartbeat=now, updated=now)
    )
    if result.rowcount == 1:
        new_version = expected_version + 1
        conn.execute(
            kind.history.insert().values(
                **{kind.history_fk: run_id},
                version=new_version,
                state=state_text,
                state_type=state_type,
                timestamp=now,
            )
        )
        return WriteOutcome("ok", new_version)
    row = conn.execute(
        select(runs.c.version, runs.c.state).where(runs.c.id == run_id, runs.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        return WriteOutcome("not_found")
    return WriteOutcome("conflict", int(row.version), json.loads(row.state))
