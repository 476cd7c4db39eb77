"""Fixtures: a real server subprocess per test session (``server``, and ``sa`` / ``sb``
sessions of its two tenants), from :mod:`runwright_server.testing.fixtures`. The server runs
in its own process: these tests need runwright-server installed, the client under test does
not (see test_without_server.py)."""

from runwright_server.testing.fixtures import db_url, sa, sb, server

__all__ = ["db_url", "sa", "sb", "server"]
