"""Child runs created by their first state writes.

A runner that holds a flow run's lease and finds that a mapped task has no child runs yet
(``POST /task_runs/batch`` with ``fresh_ok``) names its children's ids itself: each child's
first write (version 0, to ``POST /task_run_states`` or ``POST /cached_states/hits``) carries
its ``task_slug`` and ``map_index``, and the server creates the run with that write. A
million-child map so costs no page requests, no Pending rows and no second write of each
run's row. The run's history starts with that first write (version 1): it has no Pending
row.

Rules, the same on both routes: the batch must name the lease (the flow run the children
belong to); the id must be a new UUID; the slug must be a task of that flow run (else the
write is ``not_found``); a run of that id that exists already (an earlier delivery of the
same batch) is written as any run is, version-checked; a (slug, map index) that another run
has is a ``conflict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from runwright_server import models
from runwright_server.locking import WriteOutcome
from runwright_server.run_rows import PENDING_TEXT


class CreatingWrite(Protocol):
    task_run_id: str
    task_slug: str | None
    map_index: int | None


def children_created(
    conn: Connection, writes: Iterable[CreatingWrite], tenant: str, parent: str | None
) -> dict[str, tuple[str, int]]:
    """The child runs ``writes`` create: ``task run id -> (slug, map index)``, for the slugs
    that are tasks of the lease's flow run ``parent`` (one query)."""
    wanted: dict[str, tuple[str, int]] = {}
    for item in writes:
        if item.task_slug is not None and item.map_index is not None:
            wanted.setdefault(item.task_run_id, (item.task_slug, item.map_index))
    if not wanted or parent is None:
        return {}
    tr = models.task_runs
    slugs = {slug for slug, _ in wanted.values()}
    known = set(
        conn.execute(
            select(tr.c.task_slug).where(
                tr.c.flow_run_id == parent, tr.c.map_index == -1, tr.c.tenant_id == tenant, tr.c.task_slug.in_(slugs)
            )
        ).scalars()
    )
    return {run_id: child for run_id, child in wanted.items() if child[0] in known}


def create_children_one_by_one(
    conn: Connection, creates: dict[str, tuple[str, int]], tenant: str, parent: str | None, now: Any
) -> dict[str, WriteOutcome]:
    """Create the child runs of ``creates`` that do not exist yet, each on its own (Pending,
    version 0, no history row: their first write follows, version-checked as any other);
    return the outcome of the writes of a child whose id or (slug, map index) another run
    has (``conflict``: nothing of it applied)."""
    tr = models.task_runs
    existing: set[str] = set()
    ids = list(creates)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        existing.update(conn.execute(select(tr.c.id).where(tr.c.id.in_(chunk), tr.c.tenant_id == tenant)).scalars())
    taken: dict[str, WriteOutcome] = {}
    for run_id, (slug, index) in creates.items():
        if run_id in existing:
            continue  # created by an earlier delivery of this batch
        try:
            with conn.begin_nested():
                conn.execute(
                    tr.insert().values(
                        id=run_id,
                        tenant_id=tenant,
                        flow_run_id=parent,
                        task_slug=slug,
                        map_index=index,
                        state=PENDING_TEXT,
                        state_type="Pending",
                        version=0,
                        heartbeat=None,
                        created=now,
                        updated=now,
                    )
                )
        except IntegrityError:
            taken[run_id] = WriteOutcome("conflict")
    return taken
