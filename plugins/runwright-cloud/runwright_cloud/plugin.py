"""Hook implementations of the cloud plugin (entry point ``cloud = runwright_cloud.plugin``).

Every run hook returns at once unless the run's backend is ``"cloud"`` (``--backend cloud``,
``[engine] backend = "cloud"``, or the cloud runners), so installing the plugin changes
nothing for local runs. For cloud runs (see :mod:`runwright_cloud.reporting`):

* ``runwright_flow_run_initialize``: create the flow run unless the context names one
  (``flow_run_id``), load its state, version, parameters, context and task runs, make
  ``cloud`` the default result handler;
* ``runwright_flow_state_change``: write the flow run's state, version-checked; a refusal or
  an unreachable server ends the run (``ENDRUN``) with the state it tried to write;
* ``runwright_task_run_initialize`` / ``runwright_task_state_change``: the same for task runs
  (the claim to Running is synchronous, later states go to the batching writer; a refused
  claim ends the task run as ``ClientFailed``);
* ``runwright_check_task_is_cached``: Cached states from the server;
* ``runwright_*_run_end``: flush, stop heartbeats.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runwright import hookimpl
from runwright.context import context as runtime_context

#: The context key of a task run's report (see :mod:`runwright_cloud.reporting`).
TASK_REPORT_KEY = "cloud_task_run"

if TYPE_CHECKING:
    import click

    from runwright.engine.flow_runner import FlowRunner, FlowRunSetup
    from runwright.engine.state import Cached, State
    from runwright.engine.task_runner import TaskRunner, TaskRunSetup
    from runwright.flow import Flow
    from runwright.task import Task


@hookimpl
def runwright_register_result_handlers(register: Callable[..., None]) -> None:
    from runwright_cloud.result_handler import CloudResultHandler

    register(CloudResultHandler, "cloud")


@hookimpl
def runwright_register_commands(cli: click.Group) -> None:
    from runwright_cloud.commands import register_commands

    register_commands(cli)


def _reporting() -> Any:
    """The reporting module once a cloud run started in this process, else None.

    Reporting (and the HTTP client, requests included) is imported only by a cloud run, so
    loading the plugin costs local runs nothing.
    """
    return sys.modules.get("runwright_cloud.reporting")


@hookimpl
def runwright_flow_run_initialize(runner: FlowRunner, flow: Flow, setup: FlowRunSetup) -> None:
    if setup.context.get("backend") == "cloud":
        from runwright_cloud import reporting

        reporting.initialize_flow_run(runner, flow, setup)


@hookimpl
def runwright_flow_state_change(runner: FlowRunner, new_state: State) -> None:
    reporting = _reporting()
    if reporting is not None and reporting.flow_reports and runner in reporting.flow_reports:
        reporting.report_flow_state(runner, new_state)


@hookimpl
def runwright_flow_run_end(runner: FlowRunner, state: State) -> None:
    reporting = _reporting()
    if reporting is not None and reporting.flow_reports and runner in reporting.flow_reports:
        flow_run_id = reporting.end_flow_run(runner, state)
        if flow_run_id is not None:
            _tell_cli_user(flow_run_id)


@hookimpl
def runwright_task_run_initialize(runner: TaskRunner, task: Task, setup: TaskRunSetup) -> None:
    context = setup.context
    if (context.get("backend") or runtime_context.get("backend")) == "cloud":
        from runwright_cloud import reporting

        reporting.initialize_task_run(runner, task, setup)


@hookimpl
def runwright_task_state_change(new_state: State) -> None:
    if TASK_REPORT_KEY in runtime_context:
        from runwright_cloud import reporting

        reporting.report_task_state(new_state)


@hookimpl
def runwright_task_run_end(runner: TaskRunner, state: State) -> None:
    reporting = _reporting()
    if reporting is not None and reporting._stack():
        reporting.end_task_run(runner, state)


@hookimpl(tryfirst=True)
def runwright_check_task_is_cached(task: Task, inputs: dict[str, Any], parameters: dict[str, Any]) -> Cached | None:
    if TASK_REPORT_KEY not in runtime_context:
        return None
    from runwright_cloud import reporting

    return reporting.check_cached(task, inputs, parameters)


def _tell_cli_user(flow_run_id: str) -> None:
    """Under ``runwright run``: print where to look at the run, and let the summary show its id."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command.name != "run":
        return
    runtime_context["flow_run_id"] = flow_run_id  # the command's summary (and --json) print it
    if not ctx.params.get("as_json"):
        click.echo(f"Flow run {flow_run_id}: see `runwright runs show {flow_run_id}`", file=sys.stderr)


def _preload_for_configured_cloud_runs() -> None:
    """A process whose configuration makes its runs cloud runs (``[engine] backend = "cloud"``
    or ``RUNWRIGHT__ENGINE__BACKEND=cloud``) loads the reporting code and the HTTP client
    (requests) with the plugin, as other engines load their client when imported, so its
    first flow run does not pay ~50-80 ms of imports. Any other process loads them with its
    first cloud run: local runs still import no requests."""
    try:
        from runwright.config import get_config

        if get_config().get_nested("engine.backend", "local") == "cloud":
            import runwright_cloud.embedded
            import runwright_cloud.reporting
            import runwright_cloud.resume  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken config or install shows at the run instead
        pass


_preload_for_configured_cloud_runs()
