"""Options that plugins add to existing commands (``runwright_add_options``), and ``--backend``.

A plugin's option is an ordinary ``click.Option`` on a copy of the command, plus an
``apply(request, value)`` function: the command calls it, when the user gave the option,
with its request object before it does its work. For ``run`` that is a :class:`RunRequest`.
No plugin needs click's context: what an option changes goes through the request.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from click.core import ParameterSource

#: Applies a plugin option's value to a command's request object.
Apply = Callable[[Any, Any], None]


@dataclass
class RunRequest:
    """What ``runwright run`` is about to do; plugin options may change it.

    :param backend: the backend name (``--backend``); None: ``[engine] backend``.
    :param context: the flow run's initial context.
    :param settings: configuration overrides (``"section.key": value``) while the flow runs.
    """

    backend: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


class BackendName(click.ParamType):
    """A backend name; the help lists the installed ones. The run command checks the name
    (an unknown one is a one-line error listing the installed ones)."""

    name = "backend"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        from runwright.plugins import get_plugin_manager

        try:
            return "[" + "|".join(sorted(get_plugin_manager().registry.backends)) + "]"
        except Exception:  # noqa: BLE001 - a broken plugin must not break --help
            return "NAME"


def add_plugin_options(
    cli: click.Group, command_name: str, on_plugin_error: Callable[[Exception], None]
) -> None:
    """Call ``runwright_add_options`` for ``cli``'s command ``command_name`` and give the
    command (a copy: the registered object is left alone) the options plugins added."""
    from runwright.plugins import get_plugin_manager

    command = cli.commands.get(command_name)
    if command is None or command.callback is None:
        return
    added: list[tuple[click.Option, Apply]] = []
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}

    def add_option(*param_decls: str, apply: Apply, **attrs: Any) -> None:
        option = click.Option(param_decls, **attrs)
        clash = sorted(taken.intersection((*option.opts, *option.secondary_opts)))
        if clash:
            raise ValueError(f"`runwright {command_name}` already has the option {clash[0]}")
        taken.update((*option.opts, *option.secondary_opts))
        added.append((option, apply))

    get_plugin_manager().call_attributed(
        "runwright_add_options", on_plugin_error=on_plugin_error, command_name=command_name, add_option=add_option
    )
    if not added:
        return
    command = copy.copy(command)
    command.params = [*command.params, *(option for option, _ in added)]
    original = command.callback
    assert original is not None

    def callback(**kwargs: Any) -> Any:
        ctx = click.get_current_context()
        request = kwargs.pop("request", None) or RunRequest()
        given = []
        for option, apply in added:
            value = kwargs.pop(str(option.name))
            if ctx.get_parameter_source(str(option.name)) not in (ParameterSource.DEFAULT, None):
                given.append((apply, value))
        for apply, value in given:
            apply(request, value)
        return original(request=request, **kwargs)

    command.callback = callback
    cli.commands[command_name] = command
