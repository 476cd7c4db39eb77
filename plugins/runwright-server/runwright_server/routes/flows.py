"""Flows: registered by content hash, so registering the same structure twice is idempotent."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import Connection, RowMapping, func, select
from sqlalchemy.exc import IntegrityError

from runwright_server import models
from runwright_server.auth import Principal, require_principal, utcnow
from runwright_server.bodies import GuardedRoute
from runwright_server.common import (
    AUTH_RESPONSES,
    NOT_FOUND,
    aware,
    check_id,
    engine_of,
    json_default,
    not_found,
)
from runwright_server.db import read_tx, write_tx
from runwright_server.schemas import FlowIn, FlowOut, FlowRefOut, FlowSummaryOut, Label, to_json_text

router = APIRouter(tags=["flows"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
Auth = Annotated[Principal, Depends(require_principal)]


def _content_hash(body: FlowIn) -> tuple[str, str, str]:
    """(sha256 of the canonical structure, tasks JSON text, edges JSON text)."""
    tasks = sorted(({"slug": t.slug, "name": t.name} for t in body.tasks), key=lambda t: t["slug"])
    edges = sorted(
        ({"upstream": e.upstream, "downstream": e.downstream, "key": e.key, "mapped": e.mapped} for e in body.edges),
        key=lambda e: (e["upstream"], e["downstream"], e["key"] or "", e["mapped"]),
    )
    tasks_text, edges_text = to_json_text(tasks), to_json_text(edges)
    canonical = json.dumps([body.name, body.version, tasks, edges], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest(), tasks_text, edges_text


def flow_out(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "version": row["version"],
        "tasks": json.loads(row["tasks"]),
        "edges": json.loads(row["edges"]),
        "created": aware(row["created"]),
    }


def _flow_answer(row: RowMapping | dict[str, Any], status_code: int) -> Response:
    """``flow_out`` as a response, its stored tasks and edges JSON spliced in as they are (a
    flow of thousands of tasks is not parsed and re-validated to be sent back)."""
    head = json.dumps(
        {"id": row["id"], "name": row["name"], "version": row["version"], "created": aware(row["created"])},
        ensure_ascii=False,
        separators=(",", ":"),
        default=json_default,
    )
    body = f'{head[:-1]},"tasks":{row["tasks"]},"edges":{row["edges"]}}}'
    return Response(body.encode("utf-8"), status_code=status_code, media_type="application/json")


def _by_hash(conn: Connection, tenant_id: str, digest: str) -> RowMapping | None:
    f = models.flows
    return conn.execute(select(f).where(f.c.tenant_id == tenant_id, f.c.content_hash == digest)).mappings().first()


@router.post(
    "/flows",
    response_model=FlowOut,
    status_code=201,
    responses={200: {"model": FlowOut, "description": "This structure was already registered"}},
)
def register_flow(body: FlowIn, request: Request, principal: Auth) -> Response:
    digest, tasks_text, edges_text = _content_hash(body)
    with write_tx(engine_of(request)) as conn:
        existing = _by_hash(conn, principal.tenant_id, digest)
        if existing is not None:
            return _flow_answer(existing, 200)
        values = {
            "id": str(uuid.uuid4()),
            "tenant_id": principal.tenant_id,
            "name": body.name,
            "version": body.version,
            "content_hash": digest,
            "tasks": tasks_text,
            "edges": edges_text,
            "created": utcnow(),
        }
        try:
            with conn.begin_nested():
                conn.execute(models.flows.insert().values(**values))
        except IntegrityError:  # a concurrent registration of the same structure won
            existing = _by_hash(conn, principal.tenant_id, digest)
            if existing is None:
                raise
            return _flow_answer(existing, 200)
    return _flow_answer(values, 201)


@router.get("/flows/by_hash/{content_hash}", response_model=FlowRefOut, responses=NOT_FOUND)
def find_flow(
    content_hash: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The structure's content hash (see docs/server.md)")],
    request: Request,
    principal: Auth,
) -> dict[str, Any]:
    """The flow of this tenant registered with exactly this structure (its content hash: the
    sha256 of ``[name, version, tasks, edges]`` as ``POST /flows`` canonicalizes them), without
    its tasks and edges: a runner that knows the structure it would register asks here first
    and sends a structure of thousands of tasks only when the server has not got it."""
    f = models.flows
    with read_tx(engine_of(request)) as conn:
        row = conn.execute(
            select(f.c.id, f.c.name, f.c.version).where(f.c.tenant_id == principal.tenant_id, f.c.content_hash == content_hash)
        ).first()
    if row is None:
        raise not_found("flow")
    return {"id": row.id, "name": row.name, "version": row.version}


@router.get("/flows", response_model=list[FlowOut])
def list_flows(
    request: Request,
    principal: Auth,
    name: Annotated[Label | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[dict[str, Any]]:
    f = models.flows
    stmt = select(f).where(f.c.tenant_id == principal.tenant_id)
    if name is not None:
        stmt = stmt.where(f.c.name == name)
    stmt = stmt.order_by(f.c.created.desc(), f.c.id).limit(limit).offset(offset)
    with read_tx(engine_of(request)) as conn:
        return [flow_out(row) for row in conn.execute(stmt).mappings()]


@router.get("/flows/summary", response_model=list[FlowSummaryOut])
def list_flow_summaries(
    request: Request,
    principal: Auth,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[dict[str, Any]]:
    """One item per flow name: its registered versions, how many runs it has, its last run;
    flows with the newest runs first (then flows never run, by name)."""
    f, fr = models.flows, models.flow_runs
    tenant = principal.tenant_id
    last_created = func.max(fr.c.created)
    page = (
        select(f.c.name, func.count(fr.c.id).label("run_count"), last_created.label("last_created"))
        .select_from(f.outerjoin(fr, fr.c.flow_id == f.c.id))
        .where(f.c.tenant_id == tenant)
        .group_by(f.c.name)
        .order_by(last_created.is_(None), last_created.desc(), f.c.name)
        .limit(limit)
        .offset(offset)
    )
    with read_tx(engine_of(request)) as conn:
        rows = conn.execute(page).all()
        names = [row.name for row in rows]
        versions: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for version in conn.execute(
            select(f.c.id, f.c.name, f.c.version, f.c.created)
            .where(f.c.tenant_id == tenant, f.c.name.in_(names))
            .order_by(f.c.created, f.c.id)
        ):
            versions[version.name].append({"id": version.id, "version": version.version, "created": aware(version.created)})
        out = []
        for row in rows:
            last = None
            if row.run_count:
                ids = [v["id"] for v in versions[row.name]]
                run = conn.execute(
                    select(fr.c.id, fr.c.state_type, fr.c.created)
                    .where(fr.c.flow_id.in_(ids))
                    .order_by(fr.c.created.desc(), fr.c.id.desc())
                    .limit(1)
                ).first()
                if run is not None:
                    last = {"id": run.id, "state_type": run.state_type, "created": aware(run.created)}
            out.append({"name": row.name, "versions": versions[row.name], "run_count": row.run_count, "last_run": last})
    return out


@router.get("/flows/{flow_id}", response_model=FlowOut, responses=NOT_FOUND)
def get_flow(flow_id: str, request: Request, principal: Auth) -> dict[str, Any]:
    f = models.flows
    check_id(flow_id, "flow")
    with read_tx(engine_of(request)) as conn:
        row = conn.execute(select(f).where(f.c.id == flow_id, f.c.tenant_id == principal.tenant_id)).mappings().first()
    if row is None:
        raise not_found("flow")
    return flow_out(row)
