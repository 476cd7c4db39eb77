"""The database schema (SQLAlchemy Core tables). Alembic migrations mirror these tables.

Timestamps are naive UTC datetimes. Ids are UUID strings, version 7 (in creation order: see
:func:`runwright_server.common.new_ids`); results' ids are 32 hex digits, unique within their
tenant.
States are stored as JSON text with their ``"type"`` copied into ``state_type``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    literal_column,
    text,
)
from sqlalchemy.sql.elements import ColumnClause

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(36)

#: the state types of the partial indexes below, as SQL literals: a query names them with
#: these (``column == RUNNING``), not with a bound parameter, so that the database can tell
#: that the partial index holds every row the query asks for
RUNNING: ColumnClause[str] = literal_column("'Running'")
CACHED: ColumnClause[str] = literal_column("'Cached'")


def _only(state_type: str) -> dict[str, Any]:
    """The ``WHERE`` clause of an index of the rows of one state type (SQLite, PostgreSQL)."""
    where = text(f"state_type = '{state_type}'")
    return {"sqlite_where": where, "postgresql_where": where}


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
    # orchestration (migration 0005): none of these is set on a run started by hand
    #: the deployment the run was created for (no foreign key: a deleted deployment keeps its runs)
    Column("deployment_id", ID, nullable=True),
    #: the work queue agents take the run from (the deployment's queue when created)
    Column("queue", String(200), nullable=True),
    #: the agent that claimed the run
    Column("agent_id", ID, nullable=True),
    #: when an agent claimed the run
    Column("claimed", DateTime, nullable=True),
    #: the scheduler's key, "schedule:<ISO start time>": one run per deployment and start
    Column("idempotency_key", String(200), nullable=True),
    #: when ``runs cancel`` asked a Running run to stop (the runner and the agent are told)
    Column("cancel_requested", DateTime, nullable=True),
    UniqueConstraint("deployment_id", "idempotency_key", name="uq_flow_runs_deployment_key"),
    Index("ix_flow_runs_queue_due", "tenant_id", "queue", "state_type", "scheduled_start_time"),
    Index("ix_flow_runs_deployment_start", "deployment_id", "scheduled_start_time"),
    Index("ix_flow_runs_tenant_created", "tenant_id", "created"),
    Index("ix_flow_runs_flow_created", "flow_id", "created"),
    Index("ix_flow_runs_state_type", "state_type"),
    # migration 0006: the filters of GET /flow_runs (state, deployment), newest first
    Index("ix_flow_runs_tenant_state_created", "tenant_id", "state_type", "created"),
    Index("ix_flow_runs_deployment_created", "deployment_id", "created"),
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
    #: the sweeper's Running task runs, and only those (migration 0009): a run whose Running
    #: and final state come in one batch (a map's children) never enters it
    Index("ix_task_runs_running", "state_type", **_only("Running")),
    #: "did any task run of this run change?" (the UI's live updates; migration 0007)
    Index("ix_task_runs_run_updated", "flow_run_id", "updated"),
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
    #: a Cached state's ``cache_key`` (NULL for any other state), filled by the database from
    #: ``state`` as the row is inserted (:mod:`runwright_server.state_keys`; migration 0008)
    Column("cache_key", Text, nullable=True),
    UniqueConstraint("task_run_id", "version", name="uq_task_run_states_run_version"),
    #: ``GET /cached_states``: the Cached states by time, and only those (migration 0009; the
    #: UI's "first Running state of a task run" reads the run's few rows by the unique index)
    Index("ix_task_run_states_cached_time", "timestamp", **_only("Cached")),
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
    # migration 0006: reads after an id (``runs logs --follow``), per task run
    Index("ix_logs_run_id", "flow_run_id", "id"),
    Index("ix_logs_task_run_id", "task_run_id", "id"),
)

#: flow source (or any storage payload) kept by the server: content-addressed, per tenant
storage_blobs = Table(
    "storage_blobs",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    #: sha256 of ``data``, 64 hex digits
    Column("digest", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created", DateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "digest", name="pk_storage_blobs"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("flow_id", ID, ForeignKey("flows.id"), nullable=False),
    Column("flow_name", String(500), nullable=False),
    #: the storage's registered name ("server" built in) and its JSON reference to the code
    Column("storage", String(100), nullable=False),
    Column("storage_ref", Text, nullable=False),
    #: ``Schedule.serialize()`` as JSON text; NULL: runs only when asked (``deployments run``)
    Column("schedule", Text, nullable=True),
    #: default parameters (JSON object)
    Column("parameters", Text, nullable=False),
    Column("queue", String(200), nullable=False),
    Column("executor", String(100), nullable=True),
    #: at most this many of its runs Submitted or Running at once (NULL: no limit)
    Column("concurrency_limit", Integer, nullable=True),
    Column("paused", Boolean, nullable=False),
    #: sha256 of everything registered: re-deploying the same thing changes nothing
    Column("spec_hash", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    #: the scheduler has created this deployment's runs up to this start time
    Column("scheduled_until", DateTime, nullable=True),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_deployments_tenant_name"),
)

#: a queue's own settings; a queue exists as soon as a deployment or an agent names it
work_queues = Table(
    "work_queues",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    #: at most this many runs of the queue Submitted or Running at once (NULL: no limit)
    Column("concurrency_limit", Integer, nullable=True),
    Column("created", DateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "name", name="pk_work_queues"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    #: the queues it takes runs from (JSON list)
    Column("queues", Text, nullable=False),
    #: how many runs it runs at once (NULL: no limit)
    Column("run_limit", Integer, nullable=True),
    Column("last_seen", DateTime, nullable=False),
    Column("created", DateTime, nullable=False),
    #: set when it stopped cleanly (SIGTERM); an agent unseen for the zombie timeout is offline
    Column("stopped", DateTime, nullable=True),
    Index("ix_agents_tenant_seen", "tenant_id", "last_seen"),
)

#: the web UI's sign-ins: the cookie holds a random id, only its sha256 is stored (migration 0007)
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    #: the API token signed in with: revoking it ends the session
    Column("token_hash", String(64), nullable=False),
    #: the session's CSRF token, sent back with every form and htmx request
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime, nullable=False),
    Column("expires", DateTime, nullable=False),
)

__all__ = [
    "agents",
    "api_tokens",
    "deployments",
    "flow_run_states",
    "flow_runs",
    "flows",
    "logs",
    "metadata",
    "results",
    "storage_blobs",
    "task_run_states",
    "task_runs",
    "tenants",
    "ui_sessions",
    "work_queues",
]
