"""One router per resource; :func:`all_routers` lists them for the app factory."""

from __future__ import annotations

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from runwright_server.routes import (
        agents,
        cached_hits,
        cached_states,
        deployments,
        events,
        flow_runs,
        flows,
        health,
        logs,
        results,
        run_control,
        storage,
        task_runs,
    )

    return [
        health.router,
        flows.router,
        flow_runs.router,
        task_runs.router,
        cached_states.router,
        cached_hits.router,
        results.router,
        logs.router,
        events.router,
        storage.router,
        deployments.router,
        agents.router,
        run_control.router,
    ]
