"""orchestration: deployments, stored flow code, work queues, agents; flow runs' claims

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.String(length=36)


def upgrade() -> None:
    op.create_table(
        "storage_blobs",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_storage_blobs_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "digest", name="pk_storage_blobs"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("flow_id", ID, nullable=False),
        sa.Column("flow_name", sa.String(length=500), nullable=False),
        sa.Column("storage", sa.String(length=100), nullable=False),
        sa.Column("storage_ref", sa.Text(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("executor", sa.String(length=100), nullable=True),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("scheduled_until", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_deployments_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["flow_id"], ["flows.id"], name=op.f("fk_deployments_flow_id_flows")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_deployments_tenant_name"),
    )
    op.create_table(
        "work_queues",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_work_queues_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "name", name="pk_work_queues"),
    )
    op.create_table(
        "agents",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("queues", sa.Text(), nullable=False),
        sa.Column("run_limit", sa.Integer(), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("stopped", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_agents_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index("ix_agents_tenant_seen", ["tenant_id", "last_seen"], unique=False)
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deployment_id", ID, nullable=True))
        batch_op.add_column(sa.Column("queue", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("agent_id", ID, nullable=True))
        batch_op.add_column(sa.Column("claimed", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested", sa.DateTime(), nullable=True))
        batch_op.create_unique_constraint("uq_flow_runs_deployment_key", ["deployment_id", "idempotency_key"])
        batch_op.create_index(
            "ix_flow_runs_queue_due", ["tenant_id", "queue", "state_type", "scheduled_start_time"], unique=False
        )
        batch_op.create_index("ix_flow_runs_deployment_start", ["deployment_id", "scheduled_start_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_runs_deployment_start")
        batch_op.drop_index("ix_flow_runs_queue_due")
        batch_op.drop_constraint("uq_flow_runs_deployment_key", type_="unique")
        for column in ("cancel_requested", "idempotency_key", "claimed", "agent_id", "queue", "deployment_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index("ix_agents_tenant_seen")
    for table in ("agents", "work_queues", "deployments", "storage_blobs"):
        op.drop_table(table)
