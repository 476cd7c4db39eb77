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


@hookimpl
def runwright_register_config(register: Callable[..., None]) -> None:
    """``[server]``: one key per setting (``db`` for ``db_url``), with its default."""
    from runwright_server.settings import config_defaults

    register("server", config_defaults())


@hookimpl
def runwright_register_commands(cli: click.Group) -> None:
    from runwright_server.cli import server_group

    cli.add_command(server_group)
