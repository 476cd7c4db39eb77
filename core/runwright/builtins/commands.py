"""Registers the core CLI commands: ``run``, ``plugins`` and ``config``."""

from __future__ import annotations

import click

from runwright.hookspecs import hookimpl


@hookimpl
def runwright_register_commands(cli: click.Group) -> None:
    from runwright.cli.commands import config_command, plugins_command, run_command

    cli.add_command(run_command)
    cli.add_command(plugins_command)
    cli.add_command(config_command)
