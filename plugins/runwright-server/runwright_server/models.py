"""The database schema (SQLAlchemy Core tables). Alembic migrations mirror these tables.

Timestamps are naive UTC datetimes. Ids are UUID4 strings (results: 32 hex digits, unique
within their tenant).
States are stored as JSON text with their ``"type"`` copied into ``state_type``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(36)

tenants = Table(
    "tenants",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created", DateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", DateTime, nullable=False),
    Column("revoked", DateTime, nullable=True),
)

flows = Table(
    "flows",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("version", String(200), nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("tasks", Text, nullable=False),
    Column("edges", Text, nullable=False),
    Column("created", DateTime, nullable=False),
    UniqueConstraint("tenant_id", "content_hash", name="uq_flows_tenant_hash"),
    Index("ix_flows_tenant_name", "tenant_id", "name"),
)

flow_runs = Table(
    "flow_runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("flow_id", ID, ForeignKey("flows.id"), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("context", Text, nullable=False),
    Column("scheduled_start_time", DateTime, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_type", String(100), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("heartbeat", DateTime, nullable=True),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    #: the runner token of the flow run's last state write (its lease; see locking.py)
    Column("lease", String(64), nullable=True),
    #: who holds the lease, as the runner said: "host:pid" (migration 0004)
    Column("lease_holder", String(300), nullable=True),
    Index("ix_flow_runs_tenant_created", "tenant_id", "created"),
    Index("ix_flow_runs_flow_created", "flow_id", "created"),
    Index("ix_flow_runs_state_type", "state_type"),
)

task_runs = Table(
    "task_runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("flow_run_id", ID, ForeignKey("flow_runs.id"), nullable=False),
    Column("task_slug", String(500), nullable=False),
    Column("map_index", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_type", String(100), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("heartbeat", DateTime, nullable=True),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    UniqueConstraint("flow_run_id", "task_slug", "map_index", name="uq_task_runs_run_slug_index"),
    Index("ix_task_runs_state_type", "state_type"),
)

flow_run_states = Table(
    "flow_run_states",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("flow_run_id", ID, ForeignKey("flow_runs.id"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_type", String(100), nullable=False),
    Column("timestamp", DateTime, nullable=False),
    UniqueConstraint("flow_run_id", "version", name="uq_flow_run_states_run_version"),
)

task_run_states = Table(
    "task_run_states",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("task_run_id", ID, ForeignKey("task_runs.id"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_type", String(100), nullable=False),
    Column("timestamp", DateTime, nullable=False),
    UniqueConstraint("task_run_id", "version", name="uq_task_run_states_run_version"),
    Index("ix_task_run_states_type_time", "state_type", "timestamp"),
)

results = Table(
    "results",
    metadata,
    Column("id", String(32), nullable=False),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created", DateTime, nullable=False),
    #: a key is the tenant's own: another tenant's key neither collides nor shows (migration 0003)
    PrimaryKeyConstraint("tenant_id", "id", name="pk_results"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("flow_run_id", ID, ForeignKey("flow_runs.id"), nullable=False),
    Column("task_run_id", ID, ForeignKey("task_runs.id"), nullable=True),
    Column("timestamp", DateTime, nullable=False),
    Column("level", String(20), nullable=False),
    Column("name", String(500), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_logs_run_time", "flow_run_id", "timestamp"),
)

__all__ = [
    "api_tokens",
    "flow_run_states",
    "flow_runs",
    "flows",
    "logs",
    "metadata",
    "results",
    "task_run_states",
    "task_runs",
    "tenants",
]
