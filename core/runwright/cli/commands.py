"""The core sub-commands: ``run``, ``plugins`` and ``config``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from runwright.backends import DEFAULT_BACKEND, backend_name
from runwright.cli.options import BackendName, RunRequest
from runwright.hookspecs import hookimpl

#: Longest message the summary table shows; a longer one ends with an ellipsis (``--json``
#: prints every message whole).
SUMMARY_MESSAGE_LIMIT = 120


def shorten(text: str, limit: int = SUMMARY_MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _state_row(task: Any, state: Any) -> dict[str, Any]:
    return {
        "task": task.name,
        "slug": task.slug,
        "state": type(state).__name__,
        "message": state.message,
    }


@click.command("run")
@click.argument("path")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A flow parameter (repeatable).")
@click.option("--executor", default=None, help="A registered executor: local, threads, dask, ...")
@click.option("--flow", "flow_name", default=None, help="The flow to run when the file defines several.")
@click.option("--backend", type=BackendName(), default=None, help="Where the run is recorded (default: [engine] backend).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", "quiet", count=True, help="Log less: WARNING and above (-qq: ERROR).")
@click.option("-v", "--verbose", "verbose", count=True, help="Log more: DEBUG (overrides [logging] level).")
def run_command(
    path: str,
    params: tuple[str, ...],
    executor: str | None,
    flow_name: str | None,
    backend: str | None,
    as_json: bool,
    quiet: int,
    verbose: int,
    request: RunRequest | None = None,
) -> None:
    """Run the flow defined in PATH and print a per-task summary.

    What tasks log is shown on standard error at ``[logging] level`` (INFO by default; -q,
    -v change it), a failed task with its traceback. Exits 1 when the flow run fails.
    Plugins may add options (``runwright_add_options``).
    """
    from runwright.cli.loading import load_flow, parse_params
    from runwright.cli.progress import ProgressReporter
    from runwright.config import get_config, temporary_config
    from runwright.engine.executors import resolve_executor
    from runwright.plugins import get_plugin_manager
    from runwright.run_logging import configure_logging

    request = request or RunRequest()
    get_plugin_manager().check_config()  # an unknown configuration key: one line, nothing runs
    flow = load_flow(path, flow_name)
    parameters = parse_params(params, flow)
    executor_instance = resolve_executor(executor)  # unknown names fail before anything runs
    pm = get_plugin_manager()
    settings: dict[str, Any] = dict(request.settings)
    if quiet or verbose:
        settings["logging.level"] = "DEBUG" if verbose else ("WARNING" if quiet == 1 else "ERROR")
    chosen = request.backend or backend
    if chosen is not None:
        settings["engine.backend"] = chosen
    with temporary_config(settings):
        run_backend = pm.backend(get_config().get_nested("engine.backend") or DEFAULT_BACKEND)  # a one-line error
        if not run_backend.records_runs:  # a recording backend names its own result handler
            _check_checkpointing_handler(pm, get_config())
    live = sys.stdout.isatty() and not as_json
    reporter = ProgressReporter(total=len(flow.tasks), live=live)
    ended = _FinalContext()
    pm.register(ended, name="runwright.cli-final-context")
    if not as_json:
        pm.register(reporter, name="runwright.cli-progress")
        # task runs whose hooks fire in other processes (Dask workers) are reported by the executor
        executor_instance.report_finished_runs(reporter.task_finished)
    try:
        with temporary_config(settings):
            configure_logging()  # a bad [logging] level fails here, before anything runs
            with reporter:
                state = flow.run(parameters=parameters, executor=executor_instance, context=dict(request.context))
    finally:
        pm.unregister(ended)
        if not as_json:
            pm.unregister(reporter)
    final_context = ended.context or {"backend": run_backend.name}
    summary = pm.backend(backend_name(final_context)).run_summary(final_context)
    if summary.message and not as_json:
        click.echo(summary.message, err=True)
    _print_summary(flow, state, as_json, summary.fields)
    if not state.is_successful():
        sys.exit(1)


def _check_checkpointing_handler(pm: Any, config: Any) -> None:
    """``[engine] checkpointing = true`` stores every result with ``[engine] result_handler``:
    when that handler is not installed, say so (and what to install) before anything runs,
    instead of failing every task. A recording backend names its own handler; not checked."""
    from runwright.plugins import UnknownNameError

    name = config.get_nested("engine.result_handler")
    if not config.get_nested("engine.checkpointing") or not name:
        return
    if pm.result_handler_class(str(name), missing_ok=True) is None:
        installed = ", ".join(sorted(pm.registry.result_handlers)) or "(none)"
        raise UnknownNameError(
            f"[engine] checkpointing = true stores every task's result with [engine] result_handler "
            f"{name!r}, which is not installed (installed: {installed}). Install it (pip install "
            f"runwright-{name}), or set [engine] result_handler to an installed one, or turn checkpointing off"
        )


class _FinalContext:
    """Keeps the run context of the flow run that ended last (its backend's summary needs it)."""

    def __init__(self) -> None:
        self.context: dict[str, Any] | None = None

    @hookimpl
    def runwright_flow_run_end(self, runner: Any) -> None:
        self.context = dict(getattr(runner, "context", None) or {})


def _print_summary(flow: Any, state: Any, as_json: bool, fields: dict[str, Any]) -> None:
    task_states = state.result if isinstance(state.result, dict) else {}
    rows = [_state_row(t, s) for t, s in sorted(task_states.items(), key=lambda kv: kv[0].slug or "")]
    summary = {"flow": flow.name, "state": type(state).__name__, "message": state.message, "tasks": rows, **fields}
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Names and messages are user data, never rich markup: "[/x]" in an error message must
    # print as is (unescaped, rich drops bracketed words and raises on unmatched closing tags).
    console = Console()
    table = Table(title=escape(f"Flow {flow.name!r}: {type(state).__name__}"))
    for column in ("task", "state", "message"):
        table.add_column(column)
    for row in rows:
        color = "red" if row["state"] in ("Failed", "TriggerFailed", "TimedOut") else "green"
        table.add_row(escape(str(row["slug"])), f"[{color}]{row['state']}[/{color}]", escape(shorten(row["message"] or "")))
    console.print(table)
    if not isinstance(state.result, dict) and state.message:
        console.print(f"[red]{escape(state.message)}[/red]")


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_command(as_json: bool) -> None:
    """List the loaded plugins: name, version and the hooks they implement."""
    from runwright.plugins import get_plugin_manager

    infos = get_plugin_manager().plugin_infos()
    if as_json:
        click.echo(json.dumps([info.__dict__ for info in infos], indent=2))
        return
    for info in infos:
        origin = "built-in" if info.builtin else (info.dist or "?")
        click.echo(f"{info.name} {info.version or ''} ({origin})")
        for hook in info.hooks:
            click.echo(f"    {hook}")


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_command(as_json: bool) -> None:
    """Print the effective configuration: the packaged and the installed plugins' defaults,
    the user file, the environment. An unknown key is an error naming it."""
    from runwright.config import user_config_path
    from runwright.plugins import get_plugin_manager

    pm = get_plugin_manager()
    pm.check_config()
    config = pm.config_with_defaults()
    if as_json:
        click.echo(json.dumps(config, indent=2, default=str))
        return
    click.echo(f"# user config file: {user_config_path()}")
    _print_toml(config, [])


def _print_toml(table: dict[str, Any], path: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        click.echo(f"\n[{'.'.join(path)}]")
    for key, value in scalars.items():
        click.echo(f"{key} = {json.dumps(value, default=str)}")
    for key, value in tables.items():
        _print_toml(value, [*path, key])
