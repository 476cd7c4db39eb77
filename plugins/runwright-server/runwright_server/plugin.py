"""The server's runwright plugin (entry point ``server = runwright_server.plugin``).

It adds one command group, ``runwright server`` (``start``, ``stop``, ``token ...``). Its
only hook imports :mod:`runwright_server.cli`, which imports click alone: the server stack
(FastAPI, SQLAlchemy, Alembic) loads when a server command runs, never for ``runwright
--help`` or a flow run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runwright import hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable

    import click


#: The ``[server]`` keys and their defaults: one per field of
#: :class:`runwright_server.settings.Settings` (``db`` for ``db_url``; ``""`` means
#: ``sqlite:///~/.runwright/server.db``). Kept here, not read from the settings module, so
#: that a client process never imports the server's modules (tests/test_config_keys.py
#: checks that the two agree).
CONFIG_DEFAULTS: dict[str, object] = {
    "db": "",
    "host": "127.0.0.1",
    "port": 4200,
    "zombie_timeout": 120.0,
    "sweep_interval": 10.0,
    "max_body_bytes": 64 * 1024 * 1024,
    "max_json_body_bytes": 4 * 1024 * 1024,
    "token_cache_seconds": 5.0,
    "header_timeout": 10.0,
    "keep_alive_timeout": 5,
    "schedule_ahead_runs": 10,
    "schedule_ahead_seconds": 3600.0,
    "late_after_seconds": 5.0,
    "scheduler_interval": 5.0,
}


@hookimpl
def runwright_register_config(register: Callable[..., None]) -> None:
    """``[server]``: the keys of :data:`CONFIG_DEFAULTS`."""
    register("server", CONFIG_DEFAULTS)


@hookimpl
def runwright_register_commands(cli: click.Group) -> None:
    from runwright_server.cli import server_group

    cli.add_command(server_group)
