"""``runwright deploy`` and ``runwright deployments ...``: flows the server runs unattended.

``runwright deploy FILE --name NAME`` keeps the flow file's code in a storage (``--storage``,
``server`` by default), registers the flow, and registers or updates the deployment with its
schedule (``--interval`` / ``--cron``, else the flow's own ``schedule``), parameters, queue
and executor; deploying the same thing again changes nothing. ``runwright deployments``
lists them with their schedules and next starts; ``deployments run NAME`` creates a run due
now and prints its flow run id; ``deployments pause|resume|delete NAME``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from runwright_cloud.commands import _client, _one_line_errors

#: what the server accepts as a deployment or queue name
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 200 characters"


def _check_name(value: str, option: str) -> str:
    if not _NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a valid name: use {_NAME_RULE}", param_hint=option)
    return value


def _parse_param_items(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` items without a flow to check them against; values as JSON when they parse."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expects KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _seconds(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


def describe_schedule(schedule: dict[str, Any] | None) -> str:
    """A schedule (``serialize()``'s dict) in a few words: ``every 60 s``, ``cron '0 9 * * *' (UTC)``."""
    if not schedule:
        return "none (runs when asked)"
    kind = schedule.get("type")
    if kind == "IntervalSchedule":
        return f"every {_seconds(float(schedule.get('interval', 0)))} s"
    if kind == "CronSchedule":
        return f"cron {schedule.get('cron')!r} ({schedule.get('timezone') or 'UTC'})"
    if kind == "Schedule":
        return "; ".join(describe_schedule(clock) for clock in schedule.get("clocks", [])) or "no clocks"
    return str(kind)


def _interval_schedule(seconds: float, existing: dict[str, Any] | None) -> dict[str, Any]:
    """``--interval``: an IntervalSchedule starting now, or the deployment's current one when it
    already runs at that interval (so re-deploying keeps its phase and changes nothing)."""
    from runwright.schedules import IntervalSchedule

    current = (existing or {}).get("schedule")
    if (
        isinstance(current, dict)
        and current.get("type") == "IntervalSchedule"
        and float(current.get("interval", -1)) == float(seconds)
        and current.get("end_date") is None
        and not current.get("parameter_defaults")
    ):
        return current
    start = datetime.now(UTC).replace(microsecond=0)
    return IntervalSchedule(start, timedelta(seconds=seconds)).serialize()


def _cron_schedule(expression: str) -> dict[str, Any]:
    from runwright.schedules import CronSchedule, ScheduleError

    try:
        return CronSchedule(expression).serialize()
    except ScheduleError as exc:
        raise click.BadParameter(str(exc), param_hint="--cron") from None


def _existing(client: Any, name: str) -> dict[str, Any] | None:
    from runwright_cloud.errors import NotFoundError

    try:
        deployment: dict[str, Any] = client.get_deployment(name)
    except NotFoundError:
        return None
    return deployment


def _next_start(deployment: dict[str, Any]) -> str:
    if deployment.get("paused"):
        return "paused"
    starts = deployment.get("next_starts") or []
    return str(starts[0]) if starts else "-"


def _no_such_deployment(name: str) -> click.ClickException:
    return click.ClickException(f"No deployment named {name!r} on the runwright server (`runwright deployments` lists them)")


@click.command("deploy")
@click.argument("path")
@click.option("--name", required=True, help="The deployment's name (letters, digits, '.', '_', '-').")
@click.option("--flow", "flow_name", default=None, help="The flow to deploy when the file defines several.")
@click.option(
    "--interval", type=click.FloatRange(min=0, min_open=True), default=None, help="Run every SECONDS (from now on)."
)
@click.option("--cron", default=None, metavar="EXPR", help="Run at the times of a cron expression (UTC).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A default parameter (repeatable).")
@click.option("--queue", default="default", show_default=True, help="The work queue agents take its runs from.")
@click.option("--executor", default=None, help="The executor its runs use (default: the agent's).")
@click.option("--storage", "storage_name", default="server", show_default=True, help="Where its code is kept.")
@click.option(
    "--concurrency-limit", type=click.IntRange(min=0), default=None, help="At most N of its runs at once."
)
@click.option("--json", "as_json", is_flag=True, help="Print the deployment as JSON.")
@_one_line_errors
def deploy_command(
    path: str,
    name: str,
    flow_name: str | None,
    interval: float | None,
    cron: str | None,
    params: tuple[str, ...],
    queue: str,
    executor: str | None,
    storage_name: str,
    concurrency_limit: int | None,
    as_json: bool,
) -> None:
    """Register the flow in PATH with the runwright server as deployment NAME, with its code,
    for agents to run on its schedule (the flow's own unless --interval or --cron) or when
    asked (`runwright deployments run NAME`). Deploying the same thing again changes nothing."""
    from runwright.cli.loading import load_flow, parse_params
    from runwright.plugins import get_plugin_manager
    from runwright.storage import StorageError

    _check_name(name, "--name")
    _check_name(queue, "--queue")
    if executor is not None:
        _check_name(executor, "--executor")
    if interval is not None and cron is not None:
        raise click.UsageError("--interval and --cron both set a schedule: give one of them")
    flow = load_flow(path, flow_name)
    scheduled = interval is not None or cron is not None or flow.schedule is not None
    parameters = parse_params(params, flow, require_all=scheduled)
    try:
        json.dumps(parameters, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"Parameters must be JSON values: {exc}") from None
    storage = get_plugin_manager().storage(storage_name)

    client = _client()
    existing = _existing(client, name)
    if interval is not None:
        schedule: dict[str, Any] | None = _interval_schedule(interval, existing)
    elif cron is not None:
        schedule = _cron_schedule(cron)
    else:
        schedule = flow.schedule.serialize() if flow.schedule is not None else None
    try:
        storage_ref = storage.store(Path(path), client)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    structure = flow.structure()
    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
    deployment = client.create_deployment(
        name,
        flow_id,
        flow.name,
        storage_name,
        storage_ref,
        schedule=schedule,
        parameters=parameters,
        queue=queue,
        executor=executor,
        concurrency_limit=concurrency_limit,
    )
    if as_json:
        click.echo(json.dumps(deployment, indent=2, default=str))
        return
    if not deployment["changed"]:
        click.echo(f"Deployment {name!r} unchanged (version {deployment['version']}).")
        return
    what = "created" if existing is None else "updated"
    click.echo(
        f"Deployment {name!r} {what} (version {deployment['version']}): flow {flow.name!r}, "
        f"schedule {describe_schedule(deployment['schedule'])}, queue {deployment['queue']!r}, "
        f"next start {_next_start(deployment)}."
    )
    click.echo(f"Agents run it: `runwright agent start --queue {deployment['queue']}`.", err=True)


@click.group("deployments", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_one_line_errors
def deployments_group(ctx: click.Context, as_json: bool) -> None:
    """Deployments on the runwright server: list (default), run, pause, resume, delete."""
    if ctx.invoked_subcommand is not None:
        return
    deployments = _client(start=False).list_deployments()
    if as_json:
        click.echo(json.dumps(deployments, indent=2, default=str))
        return
    if not deployments:
        click.echo("No deployments yet: `runwright deploy FLOW.py --name NAME --interval SECONDS` creates one.")
        return
    click.echo(f"{'NAME':24}  {'FLOW':20}  {'SCHEDULE':28}  {'NEXT START':27}  QUEUE")
    for d in deployments:
        click.echo(
            f"{d['name'][:24]:24}  {d['flow_name'][:20]:20}  {describe_schedule(d['schedule'])[:28]:28}  "
            f"{_next_start(d)[:27]:27}  {d['queue']}"
        )


def _by_name(action: str, name: str) -> dict[str, Any]:
    """Call the client's ``<action>_deployment(name)``; an unknown name is a one-line error."""
    from runwright_cloud.errors import NotFoundError

    client = _client(start=False)
    try:
        result: dict[str, Any] = getattr(client, f"{action}_deployment")(name)
    except NotFoundError:
        raise _no_such_deployment(name) from None
    return result


@deployments_group.command("run")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter over the deployment's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def deployments_run(name: str, params: tuple[str, ...], as_json: bool) -> None:
    """Create a run of deployment NAME, due now; print its flow run id."""
    from runwright_cloud.errors import NotFoundError

    parameters = _parse_param_items(params)
    try:
        run = _client(start=False).run_deployment(name, parameters)
    except NotFoundError:
        raise _no_such_deployment(name) from None
    if as_json:
        fields = ("id", "flow_name", "parameters", "scheduled_start_time", "state")
        click.echo(json.dumps({"flow_run_id": run["id"], "deployment": name, **{k: run[k] for k in fields}}))
    else:
        click.echo(run["id"])


@deployments_group.command("pause")
@click.argument("name")
@_one_line_errors
def deployments_pause(name: str) -> None:
    """Stop scheduling runs of NAME (its scheduled runs that did not start go)."""
    _by_name("pause", name)
    click.echo(f"Deployment {name!r} paused: no scheduled runs until `runwright deployments resume {name}`.")


@deployments_group.command("resume")
@click.argument("name")
@_one_line_errors
def deployments_resume(name: str) -> None:
    """Schedule runs of NAME again, from its next start on."""
    deployment = _by_name("resume", name)
    click.echo(f"Deployment {name!r} resumed: next start {_next_start(deployment)}.")


@deployments_group.command("delete")
@click.argument("name")
@_one_line_errors
def deployments_delete(name: str) -> None:
    """Delete NAME and its runs that never started (finished runs stay)."""
    result = _by_name("delete", name)
    click.echo(f"Deployment {name!r} deleted ({result['dropped_runs']} run(s) that never started went with it).")


def register_deploy_commands(cli: click.Group) -> None:
    """Add ``deploy`` and ``deployments``."""
    cli.add_command(deploy_command)
    cli.add_command(deployments_group)
