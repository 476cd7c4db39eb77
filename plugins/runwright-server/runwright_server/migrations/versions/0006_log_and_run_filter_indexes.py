"""indexes of log reads (after an id, per task run) and of the flow-run filters (state, deployment)

Revision ID: 0006_logs
Revises: 0005
Create Date: 2026-12-02 05:15:00
"""

from __future__ import annotations

from alembic import op

revision = "0006_logs"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_logs_run_id", "logs", ["flow_run_id", "id"])
    op.create_index("ix_logs_task_run_id", "logs", ["task_run_id", "id"])
    op.create_index("ix_flow_runs_tenant_state_created", "flow_runs", ["tenant_id", "state_type", "created"])
    op.create_index("ix_flow_runs_deployment_created", "flow_runs", ["deployment_id", "created"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_deployment_created", table_name="flow_runs")
    op.drop_index("ix_flow_runs_tenant_state_created", table_name="flow_runs")
    op.drop_index("ix_logs_task_run_id", table_name="logs")
    op.drop_index("ix_logs_run_id", table_name="logs")
