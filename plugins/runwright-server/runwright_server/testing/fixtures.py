"""pytest fixtures: a real server subprocess per test session, on SQLite (and PostgreSQL when
``RUNWRIGHT_TEST_POSTGRES_URL`` is set), with tokens for two tenants.

Not a pytest plugin of its own (nothing is loaded into a test run unasked): a conftest that
wants them imports them, which registers them for the tests below it::

    from runwright_server.testing.fixtures import db_url, sa, sb, server  # noqa: F401

``server`` is a :class:`~runwright_server.testing.TestServer`; ``sa`` and ``sb`` are
``requests`` sessions authenticated as its tenants "a" and "b". ``db_url`` runs every test
that uses it once per database (the PostgreSQL run needs ``psycopg``; ``with-postgres.sh``
provides a throwaway cluster).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests

from runwright_server.testing import ServerProcess, TestServer

PG_URL = os.environ.get("RUNWRIGHT_TEST_POSTGRES_URL")
MAX_BODY = 1024 * 1024  # the test server's body limit (results, batches)
MAX_JSON_BODY = 512 * 1024  # the test server's body limit of the other JSON routes


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


@pytest.fixture(scope="session")
def server(db_url: str) -> Iterator[TestServer]:
    from runwright_server import migrate
    from runwright_server.auth import create_token, revoke_tokens
    from runwright_server.db import make_engine

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    token_a = create_token(engine, "alice", tenant="a")
    token_b = create_token(engine, "bob", tenant="b")
    revoked = create_token(engine, "old", tenant="a")
    revoke_tokens(engine, token=revoked)
    engine.dispose()
    proc = ServerProcess(db_url, extra_args=["--max-body-bytes", str(MAX_BODY), "--max-json-body-bytes", str(MAX_JSON_BODY)]).start()
    try:
        yield TestServer(proc.url, db_url, token_a, token_b, revoked, proc, MAX_BODY, MAX_JSON_BODY)
    finally:
        proc.stop()


@pytest.fixture
def sa(server: TestServer) -> Iterator[requests.Session]:
    """A session authenticated as tenant "a"."""
    with server.session() as session:
        yield session


@pytest.fixture
def sb(server: TestServer) -> Iterator[requests.Session]:
    """A session authenticated as tenant "b"."""
    with server.session(server.token_b) as session:
        yield session
