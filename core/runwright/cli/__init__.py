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


def warn_plugin_error(error: Exception) -> None:
    """A plugin broke while the CLI was being built: one line on stderr, the CLI goes on."""
    plugin = getattr(error, "plugin", "?")
    click.echo(
        f"Warning: {error}; its commands or options are missing "
        f'(disable it with [plugins] disable = ["{plugin}"])',
        err=True,
    )


def build_cli() -> click.Group:
    """The root group with every registered sub-command and the options plugins add.

    A plugin that raises in ``runwright_register_commands`` or ``runwright_add_options`` is
    named in a one-line warning; the other plugins' commands and options are still there.
    """
    from runwright.cli.options import add_plugin_options
    from runwright.plugins import get_plugin_manager

    @click.group(cls=RunwrightGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="runwright")
    def cli() -> None:
        """runwright: build flows of tasks and run them locally, on threads, on Dask or
        against a runwright server."""

    get_plugin_manager().call_attributed("runwright_register_commands", on_plugin_error=warn_plugin_error, cli=cli)
    add_plugin_options(cli, "run", on_plugin_error=warn_plugin_error)
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
