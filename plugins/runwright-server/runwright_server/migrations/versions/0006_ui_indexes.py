"""ui: sign-in sessions of the web UI; indexes for its runs list and run page

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
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
    with op.batch_alter_table("flow_runs") as batch_op:
        batch_op.create_index("ix_flow_runs_tenant_state_created", ["tenant_id", "state_type", "created"], unique=False)
        batch_op.create_index("ix_flow_runs_tenant_deployment_created", ["tenant_id", "deployment_id", "created"], unique=False)
    with op.batch_alter_table("task_runs") as batch_op:
        batch_op.create_index("ix_task_runs_run_updated", ["flow_run_id", "updated"], unique=False)
    with op.batch_alter_table("task_run_states") as batch_op:
        batch_op.create_index("ix_task_run_states_run_type_time", ["task_run_id", "state_type", "timestamp"], unique=False)
    with op.batch_alter_table("logs") as batch_op:
        batch_op.create_index("ix_logs_run_id", ["flow_run_id", "id"], unique=False)
        batch_op.create_index("ix_logs_task_run", ["task_run_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch_op:
        batch_op.drop_index("ix_logs_task_run")
        batch_op.drop_index("ix_logs_run_id")
    with op.batch_alter_table("task_run_states") as batch_op:
        batch_op.drop_index("ix_task_run_states_run_type_time")
    with op.batch_alter_table("task_runs") as batch_op:
        batch_op.drop_index("ix_task_runs_run_updated")
    with op.batch_alter_table("flow_runs") as batch_op:
        batch_op.drop_index("ix_flow_runs_tenant_deployment_created")
        batch_op.drop_index("ix_flow_runs_tenant_state_created")
    op.drop_table("ui_sessions")
