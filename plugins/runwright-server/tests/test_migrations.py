"""Alembic migrations create the schema the code expects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from runwright_server import migrate
from runwright_server.db import SQLITE_CHECKPOINT_PAGES, make_engine
from runwright_server.locking import TASK_RUNS
from runwright_server.models import metadata
from runwright_server.sweeper import zombies
from runwright_server.testing.fixtures import PG_URL, _pg_database


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # idempotent
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert set(inspect(engine).get_table_names()) >= set(metadata.tables)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == SQLITE_CHECKPOINT_PAGES
    engine.dispose()


def test_the_indexes_of_one_state_type_hold_only_that_type_and_answer_their_readers(tmp_path: Path) -> None:
    """A map's children go Pending -> Success: no index of every state type grows with them,
    and the sweeper still finds Running task runs by an index, not by reading them all."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        definitions = dict(conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('task_runs', 'task_run_states')"
        ).all())
        assert definitions["ix_task_runs_running"].endswith("WHERE state_type = 'Running'")
        assert definitions["ix_task_run_states_cached_time"].endswith("WHERE state_type = 'Cached'")
        for name, sql in definitions.items():
            if "state_type" in sql.split(" WHERE ")[0].split("(", 1)[1]:
                assert " WHERE " in sql, f"{name} indexes every state type: {sql}"
        query = zombies(TASK_RUNS, datetime(2026, 1, 1)).compile(dialect=engine.dialect)
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + query.string, tuple(query.construct_params()[name] for name in query.positiontup or ())
        ).all()
        assert "USING INDEX ix_task_runs_running" in " ".join(str(row[-1]) for row in plan), plan
    engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    versions = migrate.MIGRATIONS_DIR / "versions"
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert any(p.suffix == ".py" for p in versions.iterdir())


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(not PG_URL, reason="set RUNWRIGHT_TEST_POSTGRES_URL"))]
)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, without any schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.db'}"
    else:
        assert PG_URL
        yield from _pg_database(PG_URL)


def test_upgrade_from_0002_keeps_the_results_and_scopes_their_keys_by_tenant(empty_db_url: str) -> None:
    """0002 -> head on a database with data (SQLite, and PostgreSQL when configured)."""
    from datetime import datetime

    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(empty_db_url)
    try:
        migrate.upgrade(engine, "0002")
        now = datetime(2026, 1, 1)
        with engine.begin() as conn:
            for tenant in ("ta", "tb"):
                conn.execute(
                    text("INSERT INTO tenants (id, name, created) VALUES (:id, :id, :now)"), {"id": tenant, "now": now}
                )
            conn.execute(
                text("INSERT INTO results (id, tenant_id, data, size, created) VALUES (:id, 'ta', :data, 3, :now)"),
                {"id": "a" * 32, "data": b"old", "now": now},
            )
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT tenant_id, data FROM results")).all() == [("ta", b"old")]
            # the same key for another tenant is now its own row
            conn.execute(
                text("INSERT INTO results (id, tenant_id, data, size, created) VALUES (:id, 'tb', :data, 3, :now)"),
                {"id": "a" * 32, "data": b"new", "now": now},
            )
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        try:
            with engine.begin() as conn:  # but one tenant still cannot store a key twice
                conn.execute(
                    text("INSERT INTO results (id, tenant_id, data, size, created) VALUES (:id, 'ta', :data, 1, :now)"),
                    {"id": "a" * 32, "data": b"x", "now": now},
                )
            raise AssertionError("a tenant stored the same key twice")
        except IntegrityError:
            pass
        migrate.upgrade(engine)  # idempotent at head
    finally:
        engine.dispose()


def test_upgrade_to_0008_copies_the_cache_key_of_every_stored_cached_state(empty_db_url: str) -> None:
    """Cached states stored before 0008 keep counting as one candidate per key."""
    import json
    from datetime import datetime

    from sqlalchemy import text

    engine = make_engine(empty_db_url)
    now = datetime(2026, 1, 1)
    cached = {"type": "Cached", "message": "m", "cache_key": "k1"}
    try:
        migrate.upgrade(engine, "0007_ui")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (id, name, created) VALUES ('t', 't', :now)"), {"now": now})
            conn.execute(
                text(
                    "INSERT INTO flows (id, tenant_id, name, content_hash, tasks, edges, created)"
                    " VALUES ('f', 't', 'f', 'h', '[]', '[]', :now)"
                ),
                {"now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO flow_runs (id, tenant_id, flow_id, parameters, context, scheduled_start_time, state,"
                    " state_type, version, created, updated)"
                    " VALUES ('fr', 't', 'f', '{}', '{}', :now, '{\"type\": \"Running\"}', 'Running', 1, :now, :now)"
                ),
                {"now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO task_runs (id, tenant_id, flow_run_id, task_slug, map_index, state, state_type,"
                    " version, created, updated) VALUES ('tr', 't', 'fr', 's', -1, :state, 'Cached', 2, :now, :now)"
                ),
                {"state": json.dumps(cached), "now": now},
            )
            for version, state in ((1, {"type": "Running", "message": "r"}), (2, cached)):
                conn.execute(
                    text(
                        "INSERT INTO task_run_states (task_run_id, version, state, state_type, timestamp)"
                        " VALUES ('tr', :version, :state, :type, :now)"
                    ),
                    {"version": version, "state": json.dumps(state), "type": state["type"], "now": now},
                )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT state_type, cache_key FROM task_run_states ORDER BY version")).all()
        assert [tuple(row) for row in keys] == [("Running", None), ("Cached", "k1")]
    finally:
        engine.dispose()
