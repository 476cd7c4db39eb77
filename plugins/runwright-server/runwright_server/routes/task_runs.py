"""Task runs: race-safe get-or-create by (flow run, task slug, map index), state writes."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.exc import IntegrityError

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.bodies import GuardedRoute
from runwright_server.child_runs import children_created, create_children_one_by_one
from runwright_server.common import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    aware,
    batch_parent,
    check_id,
    engine_of,
    json_response,
    new_ids,
    not_found,
)
from runwright_server.db import read_tx, write_tx
from runwright_server.locking import (
    NEW_RUNS_INSERT,
    TASK_RUN_COLUMNS,
    TASK_RUNS,
    current,
    driver_statement,
    write_state,
    write_states_at_once,
)
from runwright_server.routes import _states
from runwright_server.schemas import (
    BatchWriteIn,
    BatchWriteOut,
    ErrorOut,
    HeartbeatOut,
    StateHistoryItem,
    StateWriteIn,
    StateWriteOut,
    TaskRunIn,
    TaskRunOut,
    TaskRunsBatchIn,
    TaskRunsBatchOut,
    to_json_text,
)

router = APIRouter(tags=["task runs"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]

PENDING_STATE: dict[str, Any] = {"type": "Pending", "message": None}
PENDING_TEXT = to_json_text(PENDING_STATE)
RESULT_URI_PREFIX = "rwcloud://results/"
#: the parameters of a new task run's first history row, in the order the batch route
#: builds them (:meth:`runwright_server.locking.DriverStatement.rows`)
_PENDING_COLUMNS = ("b_id", "b_new_version", "b_state", "b_type", "b_now")
LEASE_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The lease named by the batch is not the flow run's lease: nothing applied"}
}


def task_run_out(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "flow_run_id": row["flow_run_id"],
        "task_slug": row["task_slug"],
        "map_index": row["map_index"],
        "state": json.loads(row["state"]),
        "version": row["version"],
        "heartbeat": aware(row["heartbeat"]),
        "created": aware(row["created"]),
        "updated": aware(row["updated"]),
    }


def _find(conn: Connection, tenant_id: str, flow_run_id: str, slug: str, map_index: int) -> RowMapping | None:
    tr = models.task_runs
    return (
        conn.execute(
            select(tr).where(
                tr.c.flow_run_id == flow_run_id,
                tr.c.task_slug == slug,
                tr.c.map_index == map_index,
                tr.c.tenant_id == tenant_id,
            )
        )
        .mappings()
        .first()
    )


@router.post(
    "/task_runs",
    response_model=TaskRunOut,
    status_code=201,
    responses={**NOT_FOUND, 200: {"model": TaskRunOut, "description": "The task run already existed"}},
)
def get_or_create_task_run(body: TaskRunIn, request: Request, response: Response, principal: Auth) -> dict[str, Any]:
    """Get the task run of (flow run, task slug, map index), creating it if missing.

    The slug must be a task of the flow (its parent run, map index -1, exists).
    """
    tenant = principal.tenant_id
    with write_tx(engine_of(request)) as conn:
        row = _find(conn, tenant, body.flow_run_id, body.task_slug, body.map_index)
        if row is not None:
            response.status_code = 200
            return task_run_out(row)
        if body.map_index == -1 or _find(conn, tenant, body.flow_run_id, body.task_slug, -1) is None:
            # parent task runs are created with their flow run: unknown run, slug or tenant
            raise not_found("flow run or task slug")
        now = utcnow()
        values = {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant,
            "flow_run_id": body.flow_run_id,
            "task_slug": body.task_slug,
            "map_index": body.map_index,
            "state": PENDING_TEXT,
            "state_type": "Pending",
            "version": 0,
            "heartbeat": None,
            "created": now,
            "updated": now,
        }
        try:
            with conn.begin_nested():
                conn.execute(models.task_runs.insert().values(**values))
                conn.execute(
                    models.task_run_states.insert().values(
                        task_run_id=values["id"], version=0, state=PENDING_TEXT, state_type="Pending", timestamp=now
                    )
                )
        except IntegrityError:  # a concurrent get-or-create inserted it first
            row = _find(conn, tenant, body.flow_run_id, body.task_slug, body.map_index)
            if row is None:
                raise
            response.status_code = 200
            return task_run_out(row)
    return task_run_out(values)


@router.post("/task_runs/batch", response_model=TaskRunsBatchOut, responses=NOT_FOUND)
def get_or_create_task_runs(body: TaskRunsBatchIn, request: Request, principal: Auth) -> Response:
    """Get or create the task runs of many map indexes of one task (a mapped parent's
    children) in one transaction; returned in the order asked (a repeated index, repeated).

    The answer (up to 10,000 task runs) is written as JSON at once (:func:`json_response`),
    in the declared shape, not validated against the response model."""
    tenant = principal.tenant_id
    tr = models.task_runs
    wanted = list(dict.fromkeys(body.map_indexes))

    def existing(conn: Connection) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        of_task = (tr.c.flow_run_id == body.flow_run_id, tr.c.task_slug == body.task_slug, tr.c.tenant_id == tenant)
        low, high = min(wanted), max(wanted)
        if high - low < 2 * len(wanted):
            # a page of consecutive indexes (what a runner asks for): one range probe of the
            # unique index instead of IN lists; the few rows it reads that were not asked
            # for are left out
            wanted_set = set(wanted)
            rows = conn.execute(select(tr).where(*of_task, tr.c.map_index.between(low, high))).mappings()
            found.update((row["map_index"], task_run_out(row)) for row in rows if row["map_index"] in wanted_set)
            return found
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = conn.execute(select(tr).where(*of_task, tr.c.map_index.in_(chunk))).mappings()
            found.update((row["map_index"], task_run_out(row)) for row in rows)
        return found

    with write_tx(engine_of(request)) as conn:
        if _find(conn, tenant, body.flow_run_id, body.task_slug, -1) is None:
            raise not_found("flow run or task slug")
        if body.fresh_ok and not _has_children(conn, tenant, body.flow_run_id, body.task_slug):
            return json_response({"task_runs": [], "fresh": True})
        found = existing(conn) if wanted else {}
        missing = [index for index in wanted if index not in found]
        if missing:
            # a page of a map's children, all new: two executemany statements straight on the
            # driver (the task runs, their Pending history rows), as for a new flow run's
            now = utcnow()
            ids = new_ids(len(missing))
            insert = driver_statement(NEW_RUNS_INSERT, conn.dialect)
            stamp = insert.process("created", now)
            append = driver_statement(TASK_RUNS.append_plain, conn.dialect)  # Pending: no cache key
            append_stamp = append.process("b_now", now)
            flow_run_id, slug = body.flow_run_id, body.task_slug
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(
                        insert.sql,
                        insert.rows(
                            TASK_RUN_COLUMNS,
                            [
                                (task_run_id, tenant, flow_run_id, slug, index, PENDING_TEXT, "Pending", 0, None, stamp, stamp)
                                for task_run_id, index in zip(ids, missing, strict=True)
                            ],
                        ),
                    )
                    conn.exec_driver_sql(
                        append.sql,
                        append.rows(
                            _PENDING_COLUMNS, [(task_run_id, 0, PENDING_TEXT, "Pending", append_stamp) for task_run_id in ids]
                        ),
                    )
                created = aware(now)
                for task_run_id, index in zip(ids, missing, strict=True):
                    found[index] = {
                        "id": task_run_id,
                        "flow_run_id": body.flow_run_id,
                        "task_slug": body.task_slug,
                        "map_index": index,
                        "state": PENDING_STATE,
                        "version": 0,
                        "heartbeat": None,
                        "created": created,
                        "updated": created,
                    }
            except IntegrityError:  # a concurrent get-or-create inserted some first
                found = existing(conn)
                if len(found) != len(wanted):
                    raise
    return json_response({"task_runs": [found[index] for index in body.map_indexes], "fresh": False})


def _has_children(conn: Connection, tenant: str, flow_run_id: str, slug: str) -> bool:
    """Whether any child run (map index 0 and up) of ``slug`` exists in the flow run: one
    probe of the unique (flow run, slug, map index) index."""
    tr = models.task_runs
    query = select(tr.c.id).where(
        tr.c.flow_run_id == flow_run_id, tr.c.task_slug == slug, tr.c.map_index >= 0, tr.c.tenant_id == tenant
    )
    return conn.execute(query.limit(1)).first() is not None


@router.get("/task_runs/{task_run_id}", response_model=TaskRunOut, responses=NOT_FOUND)
def get_task_run(task_run_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    check_id(task_run_id, "task run")
    tr = models.task_runs
    with read_tx(engine_of(request)) as conn:
        row = (
            conn.execute(select(tr).where(tr.c.id == task_run_id, tr.c.tenant_id == principal.tenant_id))
            .mappings()
            .first()
        )
    if row is None:
        raise not_found("task run")
    return task_run_out(row)


@router.post(
    "/task_runs/{task_run_id}/state",
    response_model=StateWriteOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def set_task_run_state(
    task_run_id: str, body: StateWriteIn, request: Request, principal: Auth
) -> dict[str, Any] | JSONResponse:
    return _states.set_state(request, principal, TASK_RUNS, task_run_id, body, "task run")


@router.get("/task_runs/{task_run_id}/states", response_model=list[StateHistoryItem], responses=NOT_FOUND)
def get_task_run_states(task_run_id: str, request: Request, principal: Auth) -> list[dict[str, Any]]:
    return _states.state_history(request, principal, TASK_RUNS, task_run_id, "task run")


@router.post("/task_runs/{task_run_id}/heartbeat", response_model=HeartbeatOut, responses=NOT_FOUND)
def task_run_heartbeat(task_run_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    return _states.heartbeat(request, principal, TASK_RUNS, task_run_id, "task run")


#: the ``Prefer`` preference (RFC 7240) for a brief answer when every write applied
RETURN_MINIMAL = "return=minimal"


@router.post("/task_run_states", response_model=BatchWriteOut, responses={**NOT_FOUND, **LEASE_CONFLICT})
def set_task_run_states(
    body: BatchWriteIn,
    request: Request,
    principal: Auth,
    prefer: Annotated[
        str | None,
        Header(
            max_length=200,
            description="`return=minimal`: when every write applied, the answer is only their count "
            "(`applied`, no `results`), with `Preference-Applied: return=minimal`.",
        ),
    ] = None,
) -> Response:
    """Apply the batch (see :func:`_apply_task_run_states`); wake the tenant's event streams.

    The answer is written as JSON at once (:func:`json_response`), in the declared shape (an
    applied write's ``current_state`` is null), not validated against the response model."""
    answer = _apply_task_run_states(body, request, principal, brief=prefer is not None and RETURN_MINIMAL in prefer)
    request.app.state.wakeups.notify(principal.tenant_id)
    return answer


def _apply_task_run_states(body: BatchWriteIn, request: Request, principal: Principal, brief: bool = False) -> Response:
    """Store the inline results, then apply the version-checked task-run state writes, each
    on its own, in one transaction. ``brief``: if every write applied, answer only how many.

    With ``lease``: nothing is applied (409) unless the token is the flow run's current
    lease, and a write to a task run of another flow run is ``not_found``. An inline result
    whose key the tenant already stored (or that repeats in the batch) is not stored, and every write whose
    state names its URI is ``rejected``. Once a write of a task run is not applied, the
    later writes of that task run in the batch are not applied either.
    """
    now = utcnow()
    tenant = principal.tenant_id
    results = []
    with write_tx(engine_of(request)) as conn:
        parent = batch_parent(conn, body.lease, tenant)
        refused = _store_inline_results(conn, body, tenant, now)
        writes = [(item.task_run_id, item.version, item.state_text, item.state["type"]) for item in body.writes]
        creates = children_created(conn, body.writes, tenant, parent)
        if not refused and write_states_at_once(conn, TASK_RUNS, writes, tenant, now, parent, creates):
            if brief:
                return json_response({"applied": len(writes)}, headers=BRIEF_HEADERS)
            return json_response(
                {
                    "results": [
                        {"task_run_id": run_id, "status": "ok", "version": version + 1, "current_state": None}
                        for run_id, version, _text, _type in writes
                    ]
                }
            )
        failed: set[str] = set()  # task runs with a write of this batch not applied
        taken = create_children_one_by_one(conn, creates, tenant, parent, now) if creates else {}
        history: list[dict[str, Any]] = []  # inserted at the end, in one executemany
        for run_id, version, state_text, state_type in writes:
            status: str
            if run_id in taken:
                outcome = taken[run_id]
                status = outcome.status
            elif run_id in failed:
                # an earlier write of this run in the batch was not applied: neither is this one
                outcome = current(conn, TASK_RUNS, run_id, tenant, parent)
                status = outcome.status
            elif refused and any(RESULT_URI_PREFIX + key in state_text for key in refused):
                outcome = current(conn, TASK_RUNS, run_id, tenant, parent)
                status = "rejected" if outcome.status in ("conflict", "refused") else outcome.status
            else:
                outcome = write_state(
                    conn, TASK_RUNS, run_id, tenant, version, state_text, state_type, now, parent, history=history
                )
                status = "rejected" if outcome.status == "refused" else outcome.status
            if status != "ok":
                failed.add(run_id)
            results.append(
                {"task_run_id": run_id, "status": status, "version": outcome.version, "current_state": outcome.current_state}
            )
        if history:
            conn.execute(TASK_RUNS.append, history)
    if brief and not failed:
        return json_response({"applied": len(results)}, headers=BRIEF_HEADERS)
    return json_response({"results": results})


BRIEF_HEADERS = {"Preference-Applied": RETURN_MINIMAL}
RESULTS_INSERT = models.results.insert()
_RESULT_COLUMNS = ("id", "tenant_id", "data", "size", "created")


def _store_inline_results(conn: Connection, body: BatchWriteIn, tenant: str, now: Any) -> set[str]:
    """Insert the batch's results; return the keys refused (already stored, or repeated).

    The usual batch (fresh random keys) is one executemany under a savepoint; if a key
    already exists, the savepoint is rolled back and the existing keys are looked up."""
    if not body.results:
        return set()
    refused: set[str] = set()
    seen: set[str] = set()
    for item in body.results:
        if item.key in seen:
            refused.add(item.key)
        seen.add(item.key)
    insert = driver_statement(RESULTS_INSERT, conn.dialect)
    created = insert.process("created", now)
    rows: list[tuple[str, str, Any, int, Any]] = []  # in _RESULT_COLUMNS' order
    for item in body.results:
        if item.key in refused:
            continue
        data = base64.b64decode(item.data)
        rows.append((item.key, tenant, insert.process("data", data), len(data), created))
    if not rows:
        return refused
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(insert.sql, insert.rows(_RESULT_COLUMNS, rows))
        return refused
    except IntegrityError:  # some key is taken (or a concurrent batch stored one first)
        pass
    r = models.results
    keys = [row[0] for row in rows]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        refused.update(conn.execute(select(r.c.id).where(r.c.tenant_id == tenant, r.c.id.in_(chunk))).scalars())
    for row in rows:
        if row[0] in refused:
            continue
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(insert.sql, insert.rows(_RESULT_COLUMNS, [row]))
        except IntegrityError:
            refused.add(row[0])
    return refused
