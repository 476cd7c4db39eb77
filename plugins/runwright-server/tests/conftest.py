"""Fixtures: a real server subprocess per test session, on SQLite (and PostgreSQL when
``RUNWRIGHT_TEST_POSTGRES_URL`` is set), with tokens for two tenants: ``server``, and
``sa`` / ``sb`` sessions of tenants "a" and "b" (:mod:`runwright_server.testing.fixtures`)."""

from runwright_server.testing.fixtures import db_url, sa, sb, server

__all__ = ["db_url", "sa", "sb", "server"]
