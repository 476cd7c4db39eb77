"""ui: sign-in sessions of the web UI; indexes of its run page (live changes, the timeline)

(The runs list's filter indexes and the log indexes the UI also uses come with 0006_logs.)

Revision ID: 0007_ui
Revises: 0006_logs
Create Date: 2026-12-02 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_ui"
down_revision = "0006_logs"
branch_labels = None
depends_on = None

ID = sa.String(length=36)


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_ui_sessions_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id_hash", name="pk_ui_sessions"),
    )
    op.create_index("ix_task_runs_run_updated", "task_runs", ["flow_run_id", "updated"])
    op.create_index("ix_task_run_states_run_type_time", "task_run_states", ["task_run_id", "state_type", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_task_run_states_run_type_time", table_name="task_run_states")
    op.drop_index("ix_task_runs_run_updated", table_name="task_runs")
    op.drop_table("ui_sessions")
