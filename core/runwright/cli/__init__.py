"""The ``runwright`` command line. Sub-commands come from plugins (the built-in ones too)
through the ``runwright_register_commands`` hook."""

from __future__ import annotations

import sys

import click


class RunwrightGroup(click.Group):
    """Turns a user error raised by a sub-command into a one-line message, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from runwright.cli.errors import user_error_types

        try:
            return super().invoke(ctx)
        except user_error_types() as exc:
            raise click.ClickException(str(exc)) from exc


def build_cli() -> click.Group:
    """The root group with every registered sub-command."""
    from runwright.plugins import get_plugin_manager

    @click.group(cls=RunwrightGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="runwright")
    def cli() -> None:
        """runwright: build flows of tasks and run them locally, on threads, on Dask or
        against a runwright server."""

    get_plugin_manager().hook.runwright_register_commands(cli=cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from runwright.config import ConfigError

    try:
        cli = build_cli()
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    cli.main(args=argv, prog_name="runwright")
