"""Alembic environment: runs against the engine passed in ``config.attributes["engine"]``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from runwright_server.db import is_sqlite
from runwright_server.models import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: build one from sqlalchemy.url
        from runwright_server.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        connection.execution_options(runwright_write=True)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite(engine),
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
