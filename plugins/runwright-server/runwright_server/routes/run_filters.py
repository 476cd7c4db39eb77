"""The filters of ``GET /flow_runs``: by flow name, state type, deployment name.

Each is a subquery on an indexed column (``flows (tenant_id, name)``, ``deployments
(tenant_id, name)``; the runs by ``flow_runs (flow_id, created)``, ``(tenant_id,
state_type, created)``, ``(deployment_id, created)``), so a filtered page of the newest
runs stays fast with many runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from runwright_server import models
from runwright_server.common import invalid_query


def state_types(name: str) -> list[str]:
    """``name`` and the names of its subclasses (``Failed``: ``TimedOut``, ``TriggerFailed``, ...);
    422 naming the known types when ``name`` is none."""
    from runwright.engine.state import ALL_STATES

    wanted = next((cls for type_name, cls in ALL_STATES.items() if type_name.lower() == name.lower()), None)
    if wanted is None:
        raise invalid_query(
            "state",
            f"state {name[:40]!r} is not a state type; use one such as Scheduled, Running, Success, Failed, Cancelled",
        )
    return sorted(type_name for type_name, cls in ALL_STATES.items() if issubclass(cls, wanted))


def apply(stmt: Any, tenant_id: str, *, flow: str | None, state: str | None, deployment: str | None) -> Any:
    fr, f, d = models.flow_runs, models.flows, models.deployments
    if flow is not None:
        stmt = stmt.where(fr.c.flow_id.in_(select(f.c.id).where(f.c.tenant_id == tenant_id, f.c.name == flow)))
    if state is not None:
        stmt = stmt.where(fr.c.state_type.in_(state_types(state)))
    if deployment is not None:
        stmt = stmt.where(fr.c.deployment_id.in_(select(d.c.id).where(d.c.tenant_id == tenant_id, d.c.name == deployment)))
    return stmt
