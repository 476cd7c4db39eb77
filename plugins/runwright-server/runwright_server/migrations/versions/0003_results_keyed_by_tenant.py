"""results keyed by (tenant, key): inline result keys are one key space per tenant

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint("pk_results", type_="primary")
        batch_op.create_primary_key("pk_results", ["tenant_id", "id"])


def downgrade() -> None:
    # keys stored by two tenants cannot share one key space again: keep the oldest of each
    op.execute(
        "DELETE FROM results WHERE EXISTS (SELECT 1 FROM results AS older WHERE older.id = results.id "
        "AND (older.created < results.created OR (older.created = results.created AND older.tenant_id < results.tenant_id)))"
    )
    with op.batch_alter_table("results", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint("pk_results", type_="primary")
        batch_op.create_primary_key("pk_results", ["id"])
