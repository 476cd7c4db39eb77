"""partial indexes: the Running task runs (the sweeper), the Cached states (GET /cached_states)

A map's child costs its database three history rows and a task-run row rewritten: the
indexes of every state type (``task_runs.state_type``, ``task_run_states (state_type,
timestamp)`` and the UI's ``(task_run_id, state_type, timestamp)``) made each of them a few
more B-tree writes. Their readers only ever ask for one type: the sweeper for Running task
runs, ``GET /cached_states`` for Cached states; the UI's first Running state of a task run
reads that run's few history rows by the unique ``(task_run_id, version)`` index.

Revision ID: 0009_partial_state_indexes
Revises: 0008_cache_keys
Create Date: 2026-12-02 22:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009_partial_state_indexes"
down_revision = "0008_cache_keys"
branch_labels = None
depends_on = None


def _only(state_type: str) -> dict[str, Any]:
    where = sa.text(f"state_type = '{state_type}'")
    return {"sqlite_where": where, "postgresql_where": where}


def upgrade() -> None:
    op.drop_index("ix_task_runs_state_type", table_name="task_runs")
    op.create_index("ix_task_runs_running", "task_runs", ["state_type"], **_only("Running"))
    op.drop_index("ix_task_run_states_type_time", table_name="task_run_states")
    op.drop_index("ix_task_run_states_run_type_time", table_name="task_run_states")
    op.create_index("ix_task_run_states_cached_time", "task_run_states", ["timestamp"], **_only("Cached"))


def downgrade() -> None:
    op.drop_index("ix_task_run_states_cached_time", table_name="task_run_states")
    op.create_index("ix_task_run_states_run_type_time", "task_run_states", ["task_run_id", "state_type", "timestamp"])
    op.create_index("ix_task_run_states_type_time", "task_run_states", ["state_type", "timestamp"])
    op.drop_index("ix_task_runs_running", table_name="task_runs")
    op.create_index("ix_task_runs_state_type", "task_runs", ["state_type"])
