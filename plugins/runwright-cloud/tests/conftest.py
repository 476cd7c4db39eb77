"""Fixtures: a real server subprocess per test session, on SQLite (and PostgreSQL when
``RUNWRIGHT_TEST_POSTGRES_URL`` is set), with tokens for two tenants."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from runwright_cloud.server import migrate
from runwright_cloud.server.auth import create_token, revoke_tokens
from runwright_cloud.server.db import make_engine
from serverproc import ServerProcess

PG_URL = os.environ.get("RUNWRIGHT_TEST_POSTGRES_URL")
MAX_BODY = 1024 * 1024  # the test server's body limit



def _pg_database(base_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server of ``base_url``, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "rwtest_" + uuid.uuid4().hex[:12]
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    scope="session",
    params=[
        "sqlite",
        pytest.param(
            "postgres", marks=pytest.mark.skipif(not PG_URL, reason="set RUNWRIGHT_TEST_POSTGRES_URL")
        ),
    ],
)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'server.db'}"
    else:
        assert PG_URL
        yield from _pg_database(PG_URL)


@dataclass
class Server:
    url: str
    db_url: str
    token_a: str  # tenant "a"
    token_b: str  # tenant "b"
    revoked: str  # tenant "a", revoked
    process: ServerProcess

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def session(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token or self.token_a}"
        return session


@pytest.fixture(scope="session")
def server(db_url: str) -> Iterator[Server]:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    token_a = create_token(engine, "alice", tenant="a")
    token_b = create_token(engine, "bob", tenant="b")
    revoked = create_token(engine, "old", tenant="a")
    revoke_tokens(engine, token=revoked)
    engine.dispose()
    proc = ServerProcess(db_url, extra_args=["--max-body-bytes", str(MAX_BODY)]).start()
    try:
        yield Server(proc.url, db_url, token_a, token_b, revoked, proc)
    finally:
        proc.stop()


@pytest.fixture
def sa(server: Server) -> Iterator[requests.Session]:
    """A session authenticated as tenant "a"."""
    with server.session() as session:
        yield session


@pytest.fixture
def sb(server: Server) -> Iterator[requests.Session]:
    """A session authenticated as tenant "b"."""
    with server.session(server.token_b) as session:
        yield session


def unique(prefix: str = "flow") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_flow(session: requests.Session, api: str, slugs: tuple[str, ...] = ("a", "b"), name: str | None = None) -> dict:
    tasks = [{"slug": s, "name": s.upper()} for s in slugs]
    edges = [{"upstream": u, "downstream": d} for u, d in itertools.pairwise(slugs)]
    r = session.post(f"{api}/flows", json={"name": name or unique(), "tasks": tasks, "edges": edges})
    assert r.status_code in (200, 201), r.text
    return r.json()


def make_run(session: requests.Session, api: str, **kwargs: object) -> dict:
    flow = make_flow(session, api, **kwargs)  # type: ignore[arg-type]
    r = session.post(f"{api}/flow_runs", json={"flow_id": flow["id"], "parameters": {"x": 1}})
    assert r.status_code == 201, r.text
    return r.json()
