"""``POST /cached_states/hits``: record cache hits compactly.

A runner whose cache check took a candidate from ``GET /cached_states`` records the task
run's ``Cached`` state by naming that candidate (``state_id``, the history row the answer
gave) instead of sending the state back: the server copies the candidate's stored text
(this tenant's ``Cached`` states only) into the task run, version-checked, with the same
history row, ``cache_key`` column and wake-up of event streams as ``POST /task_run_states``.
A 1,000-task cached re-run so sends ~100 bytes per task instead of the whole state, and the
server parses and validates none of them.

The answer has the shape of ``POST /task_run_states``'s: one result per hit, in order. A hit
whose candidate is not a ``Cached`` state of this tenant is ``"rejected"`` (nothing of it
applied: the runner can send the full state instead), and so are the later hits of that
task run in the batch.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field, model_validator
from sqlalchemy import select

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.bodies import GuardedRoute
from runwright_server.child_runs import children_created, create_children_one_by_one
from runwright_server.common import AUTH_RESPONSES, NOT_FOUND, batch_parent, engine_of
from runwright_server.db import write_tx
from runwright_server.locking import TASK_RUNS, current, write_state, write_states_at_once
from runwright_server.schemas import (
    MAX_INT64,
    BatchLease,
    BatchWriteOut,
    ChildCreatingWrite,
    _In,
    check_creates_under_lease,
)

router = APIRouter(tags=["cached states"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]

#: most hits in one request (a runner sends at most its ``batch_size``)
MAX_HITS = 10_000
_IN_CHUNK = 500  # ids per IN (...) query: below SQLite's bound-variable limit


class CachedHit(ChildCreatingWrite):
    state_id: Annotated[int, Field(ge=1, le=MAX_INT64, description="The candidate's ``state_id`` from GET /cached_states.")]


class CachedHitsIn(_In):
    hits: list[CachedHit] = Field(max_length=MAX_HITS)
    lease: BatchLease | None = Field(
        default=None,
        description="Apply the hits only while this is the flow run's lease (else 409 for all), "
        "and only to task runs of that flow run.",
    )

    @model_validator(mode="after")
    def _creates_under_a_lease(self) -> CachedHitsIn:
        check_creates_under_lease(self.hits, self.lease)
        return self


LEASE_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The flow run is leased by another runner"}}


@router.post("/cached_states/hits", response_model=BatchWriteOut, responses={**NOT_FOUND, **LEASE_CONFLICT})
def record_cached_hits(body: CachedHitsIn, request: Request, principal: Auth) -> dict[str, Any] | JSONResponse:
    """Each hit's task run gets its candidate's Cached state (see the module docstring)."""
    now = utcnow()
    tenant = principal.tenant_id
    trs, tr = models.task_run_states, models.task_runs
    with write_tx(engine_of(request)) as conn:
        parent = batch_parent(conn, body.lease, tenant)
        wanted = list({hit.state_id for hit in body.hits})
        texts: dict[int, str] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            query = (
                select(trs.c.id, trs.c.state)
                .select_from(trs.join(tr, tr.c.id == trs.c.task_run_id))
                .where(trs.c.id.in_(chunk), trs.c.state_type == "Cached", tr.c.tenant_id == tenant)
            )
            texts.update((row.id, row.state) for row in conn.execute(query))
        creates = children_created(conn, body.hits, tenant, parent)
        if len(texts) == len(wanted) and write_states_at_once(
            conn,
            TASK_RUNS,
            [(hit.task_run_id, hit.version, texts[hit.state_id], "Cached") for hit in body.hits],
            tenant,
            now,
            parent,
            creates,
        ):
            results: list[dict[str, Any]] = [
                {"task_run_id": hit.task_run_id, "status": "ok", "version": hit.version + 1} for hit in body.hits
            ]
        else:
            results = []
            failed: set[str] = set()  # task runs with a hit of this batch not applied
            history: list[dict[str, Any]] = []  # inserted at the end, in one executemany
            taken = create_children_one_by_one(conn, creates, tenant, parent, now) if creates else {}
            for hit in body.hits:
                text = texts.get(hit.state_id)
                status: str
                if hit.task_run_id in taken:
                    outcome = taken[hit.task_run_id]
                    status = outcome.status
                elif hit.task_run_id in failed or text is None:
                    outcome = current(conn, TASK_RUNS, hit.task_run_id, tenant, parent)
                    status = outcome.status
                    if text is None and status in ("conflict", "refused"):
                        status = "rejected"  # no such candidate: nothing of this hit applied
                else:
                    outcome = write_state(conn, TASK_RUNS, hit.task_run_id, tenant, hit.version, text, "Cached", now, parent, history=history)
                    status = "rejected" if outcome.status == "refused" else outcome.status
                if status != "ok":
                    failed.add(hit.task_run_id)
                result: dict[str, Any] = {"task_run_id": hit.task_run_id, "status": status, "version": outcome.version}
                if outcome.current_state is not None:
                    result["current_state"] = outcome.current_state
                results.append(result)
            if history:
                conn.execute(TASK_RUNS.append, history)
    request.app.state.wakeups.notify(tenant)
    return {"results": results}
