"""Test helpers for agents and run control: deployments and queued runs written straight
into a server's database (tests of the agent side need no deploy command).

    dep_id = insert_deployment(db_url, "a", flow_id, queue="q1", concurrency_limit=2)
    queue_run(db_url, run_id, dep_id, "q1")     # the run becomes claimable by agents of q1
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from runwright_server import models
from runwright_server.db import make_engine, write_tx


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def insert_deployment(
    db_url: str,
    tenant: str,
    flow_id: str,
    *,
    name: str | None = None,
    queue: str = "default",
    concurrency_limit: int | None = None,
    storage: str = "server",
    storage_ref: dict[str, Any] | None = None,
    executor: str | None = None,
) -> str:
    """A deployment row of ``tenant`` (by name) for ``flow_id``; returns its id."""
    engine = make_engine(db_url)
    try:
        with write_tx(engine) as conn:
            tenant_id = conn.execute(select(models.tenants.c.id).where(models.tenants.c.name == tenant)).scalar_one()
            flow_name = conn.execute(select(models.flows.c.name).where(models.flows.c.id == flow_id)).scalar_one()
            dep_id = str(uuid.uuid4())
            now = _now()
            conn.execute(
                models.deployments.insert().values(
                    id=dep_id,
                    tenant_id=tenant_id,
                    name=name or f"dep-{dep_id[:8]}",
                    flow_id=flow_id,
                    flow_name=flow_name,
                    storage=storage,
                    storage_ref=json.dumps(storage_ref or {}),
                    schedule=None,
                    parameters="{}",
                    queue=queue,
                    executor=executor,
                    concurrency_limit=concurrency_limit,
                    paused=False,
                    spec_hash=uuid.uuid4().hex * 2,
                    version=0,
                    scheduled_until=None,
                    created=now,
                    updated=now,
                )
            )
    finally:
        engine.dispose()
    return dep_id


def queue_run(db_url: str, run_id: str, deployment_id: str | None, queue: str) -> None:
    """Make an existing flow run one of ``deployment_id``'s, waiting in ``queue``."""
    engine = make_engine(db_url)
    try:
        with write_tx(engine) as conn:
            fr = models.flow_runs
            conn.execute(update(fr).where(fr.c.id == run_id).values(deployment_id=deployment_id, queue=queue))
    finally:
        engine.dispose()
