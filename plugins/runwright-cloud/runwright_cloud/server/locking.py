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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Insert, Table, Update, bindparam, select, update

from runwright_cloud.server import models


@dataclass(frozen=True)
class WriteOutcome:
    status: Literal["ok", "conflict", "not_found"]
    version: int | None = None
    current_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunKind:
    """The pair of tables and the history's foreign-key column for one kind of run.

    The two statements of a winning write are built once here (with bound parameters), so a
    write costs no statement construction or cache-key computation.
    """

    runs: Table
    history: Table
    history_fk: str
    bump: Update = field(init=False, repr=False, compare=False)
    append: Insert = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        runs = self.runs
        bump = (
            update(runs)
            .where(
                runs.c.id == bindparam("b_id"),
                runs.c.tenant_id == bindparam("b_tenant"),
                runs.c.version == bindparam("b_version"),
            )
            .values(
                state=bindparam("b_state"),
                state_type=bindparam("b_type"),
                version=runs.c.version + 1,
                heartbeat=bindparam("b_now"),
                updated=bindparam("b_now"),
            )
        )
        append = self.history.insert().values(
            {
                self.history_fk: bindparam("b_id"),
                "version": bindparam("b_new_version"),
                "state": bindparam("b_state"),
                "state_type": bindparam("b_type"),
                "timestamp": bindparam("b_now"),
            }
        )
        object.__setattr__(self, "bump", bump)
        object.__setattr__(self, "append", append)


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
    params = {
        "b_id": run_id,
        "b_tenant": tenant_id,
        "b_version": expected_version,
        "b_new_version": expected_version + 1,
        "b_state": state_text,
        "b_type": state_type,
        "b_now": now,
    }
    if conn.execute(kind.bump, params).rowcount == 1:
        conn.execute(kind.append, params)
        return WriteOutcome("ok", expected_version + 1)
    runs = kind.runs
    row = conn.execute(
        select(runs.c.version, runs.c.state).where(runs.c.id == run_id, runs.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        return WriteOutcome("not_found")
    return WriteOutcome("conflict", int(row.version), json.loads(row.state))
