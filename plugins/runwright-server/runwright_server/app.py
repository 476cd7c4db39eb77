"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine

from runwright_server import __version__, gc_tuning
from runwright_server.allow import AllowHeaderMiddleware
from runwright_server.auth import TokenCache
from runwright_server.bodies import validation_error_handler
from runwright_server.db import make_engine
from runwright_server.gate import AuthGateMiddleware
from runwright_server.limits import BodyLimitMiddleware
from runwright_server.routes import all_routers
from runwright_server.scheduler import Scheduler, SchedulingLimits
from runwright_server.settings import Settings
from runwright_server.sweeper import ZombieSweeper
from runwright_server.ui import mount_ui
from runwright_server.wakeups import Wakeups
from runwright_server.warmup import warm_up

API_PREFIX = "/api/v1"


def create_app(settings: Settings, engine: Engine | None = None, own_process: bool = False) -> FastAPI:
    """Build the app. The database must already be migrated (``migrate.upgrade``).

    ``own_process``: the app is the process's only business (``runwright-server start``):
    once started, its garbage collector is settled (:func:`runwright_server.gc_tuning.settle`).
    """
    engine = engine if engine is not None else make_engine(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await warm_up(app, engine)  # before serving: the first requests are not the slow ones
        sweeper = ZombieSweeper(engine, settings.zombie_timeout, settings.sweep_interval, app.state.wakeups.notify_all)
        sweeper.start()
        app.state.sweeper = sweeper
        scheduler = Scheduler(
            engine, SchedulingLimits.of(settings), settings.scheduler_interval, app.state.wakeups.notify
        )
        scheduler.start()
        app.state.scheduler = scheduler
        if own_process:
            gc_tuning.settle()
        try:
            yield
        finally:
            scheduler.stop()
            sweeper.stop()
            engine.dispose()

    app = FastAPI(
        title="runwright server",
        version=__version__,
        description="Flows, flow runs, task runs, states (version-locked), results and logs.",
        lifespan=lifespan,
        docs_url=None,  # the UI serves /docs with its local Swagger assets (ui/__init__.py)
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    #: wakes agents' long polls and event streams of this process (see wakeups.py)
    app.state.wakeups = Wakeups()
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for router in all_routers():
        app.include_router(router, prefix=API_PREFIX)
    mount_ui(app, settings.token_cache_seconds)
    # outermost last: the 405 Allow header, then the token (before any body byte), then the size
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        max_json_bytes=settings.max_json_body_bytes,
        large_paths=frozenset({API_PREFIX + "/results", API_PREFIX + "/task_run_states"}),
        large_prefixes=(API_PREFIX + "/storage/",),
    )
    app.add_middleware(AuthGateMiddleware, prefix=API_PREFIX + "/", public=frozenset({API_PREFIX + "/health"}))
    app.add_middleware(AllowHeaderMiddleware, paths=lambda: app.openapi()["paths"])
    return app
