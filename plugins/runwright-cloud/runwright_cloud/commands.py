"""``runwright runs ...``: flow runs on the server.

``runwright runs`` lists flow runs with their states, ``runwright runs create FLOW.py``
creates one (and prints its id) for ``runwright run FLOW.py --flow-run-id ID`` to run or
resume, ``runwright runs show ID`` shows its task runs, ``runs logs ID`` its logs and
``runs watch ID`` its state changes live (:mod:`runwright_cloud.run_reads`, with
``runwright flows``). ``runwright server ...`` belongs to
the runwright-server distribution; without it, ``runwright server`` says what to install.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import click

from runwright_cloud.cli_support import configured_client, one_line_errors

_one_line_errors = one_line_errors
_client = configured_client


def _state_name(state: dict[str, Any]) -> str:
    return str(state.get("type", "?"))


@click.group("runs", invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--flow", "flow_name", default=None, metavar="NAME", help="Only runs of this flow.")
@click.option("--state", default=None, metavar="TYPE", help="Only runs in this state (Failed: TimedOut, TriggerFailed too).")
@click.option("--deployment", default=None, metavar="NAME", help="Only runs of this deployment.")
@click.pass_context
@_one_line_errors
def runs_group(
    ctx: click.Context, limit: int, as_json: bool, flow_name: str | None, state: str | None, deployment: str | None
) -> None:
    """Flow runs on the runwright server: list (default), create, show, logs, watch."""
    if ctx.invoked_subcommand is not None:
        return
    runs = _client(start=False).list_flow_runs(limit=limit, flow=flow_name, state=state, deployment=deployment)
    if as_json:
        click.echo(json.dumps(runs, indent=2, default=str))
        return
    if not runs:
        filtered = flow_name is not None or state is not None or deployment is not None
        click.echo("No flow runs match." if filtered else "No flow runs yet: `runwright run FLOW.py --backend cloud` creates one.")
        return
    click.echo(f"{'ID':36}  {'FLOW':20}  {'STATE':10}  {'SCHEDULED START':20}  CREATED")
    for run in runs:
        state = _state_name(run["state"]) + (" (late)" if run.get("late") else "")
        start = str(run.get("scheduled_start_time") or "")[:19].replace("T", " ")
        created = str(run["created"])[:19].replace("T", " ")
        click.echo(f"{run['id']:36}  {run['flow_name'][:20]:20}  {state:10}  {start:20}  {created}")


@runs_group.command("create")
@click.argument("path")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A flow parameter (repeatable).")
@click.option("--flow", "flow_name", default=None, help="The flow to use when the file defines several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def runs_create(path: str, params: tuple[str, ...], flow_name: str | None, as_json: bool) -> None:
    """Register the flow in PATH and create a flow run of it; print the run's id."""
    from runwright.cli.loading import load_flow, parse_params

    flow = load_flow(path, flow_name)
    parameters = parse_params(params, flow)
    try:
        json.dumps(parameters)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"Parameters must be JSON values: {exc}") from None
    client = _client()
    structure = flow.structure()
    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
    flow_run_id = client.create_flow_run(flow_id, parameters=parameters)
    if as_json:
        click.echo(json.dumps({"flow_id": flow_id, "flow_run_id": flow_run_id}))
    else:
        click.echo(flow_run_id)


@runs_group.command("show")
@click.argument("flow_run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def runs_show(flow_run_id: str, as_json: bool) -> None:
    """Show a flow run and its task runs (mapped children included). Task run states this
    machine kept during an outage (its journal) are recorded first."""
    from runwright_cloud import journal
    from runwright_cloud.received_states import state_name

    client = _client(start=False)
    journal.replay(client, flow_run_id)
    info = client.get_flow_run_info(flow_run_id)
    task_runs = client.get_flow_run_task_runs(flow_run_id)
    if as_json:
        data = {
            "id": info.id,
            "flow_name": info.flow_name,
            "state": info.serialized_state,
            "version": info.version,
            "parameters": info.parameters,
            "task_runs": [
                {"id": t.id, "task_slug": t.task_slug, "map_index": t.map_index, "version": t.version, "state": t.serialized_state}
                for t in task_runs
            ],
        }
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo(f"Flow run {info.id} of {info.flow_name!r}: {state_name(info.state)} (version {info.version})")
    if info.state.message:
        click.echo(f"  {info.state.message}")
    for t in task_runs:
        slug = t.task_slug if t.map_index == -1 else f"{t.task_slug}[{t.map_index}]"
        message = (t.state.message or "")[:80]
        click.echo(f"  {slug:30}  {state_name(t.state):12}  {message}")


SERVER_DIST = "runwright-server"


@click.command(
    "server",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def server_not_installed() -> None:
    """The runwright server (not installed: pip install runwright-server)."""
    raise click.ClickException(
        f"`runwright server` needs the runwright server, which is not installed: pip install {SERVER_DIST}"
    )


def register_commands(cli: click.Group) -> None:
    """Add ``runs`` (with ``logs``, ``watch``, ``cancel``, ``retry``), ``agent`` and ``flows``;
    add a ``server`` placeholder that names the package to install when runwright-server
    (which registers the real ``server`` group) is not installed."""
    from runwright_cloud.agent.command import agent_group
    from runwright_cloud.run_commands import runs_cancel, runs_retry
    from runwright_cloud.run_reads import flows_command, runs_logs, runs_watch

    for command in (runs_logs, runs_watch, runs_cancel, runs_retry):
        runs_group.add_command(command)
    cli.add_command(runs_group)
    cli.add_command(agent_group)
    cli.add_command(flows_command)
    if importlib.util.find_spec("runwright_server") is None:
        cli.add_command(server_not_installed)
