"""task_run_states.cache_key: a Cached state's key, so the database keeps the newest per key

Existing Cached states get theirs from their JSON text (SQLite ``json_extract``, PostgreSQL
``->>``); on another database the column stays NULL, which only means that every such state
counts as its own key.

Revision ID: 0008_cache_keys
Revises: 0007_ui
Create Date: 2026-12-02 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_cache_keys"
down_revision = "0007_ui"
branch_labels = None
depends_on = None

_FILL = {
    "sqlite": "UPDATE task_run_states SET cache_key = json_extract(state, '$.cache_key') WHERE state_type = 'Cached'",
    "postgresql": "UPDATE task_run_states SET cache_key = CAST(state AS json) ->> 'cache_key' WHERE state_type = 'Cached'",
}


def upgrade() -> None:
    op.add_column("task_run_states", sa.Column("cache_key", sa.Text(), nullable=True))
    fill = _FILL.get(op.get_bind().dialect.name)
    if fill is not None:
        op.execute(fill)


def downgrade() -> None:
    with op.batch_alter_table("task_run_states") as batch:
        batch.drop_column("cache_key")
