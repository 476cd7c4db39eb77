"""``runwright runs cancel ID`` and ``runwright runs retry ID`` (sub-commands of ``runs``)."""

from __future__ import annotations

import json
import time

import click

from runwright_cloud.cli_support import configured_client as _client
from runwright_cloud.cli_support import one_line_errors as _one_line_errors

#: how long ``runs cancel`` waits for a Running run to end Cancelled
CANCEL_WAIT_SECONDS = 5.0


@click.command("cancel")
@click.argument("flow_run_id")
@click.option("--no-wait", is_flag=True, help="Do not wait for a Running run to end Cancelled.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def runs_cancel(flow_run_id: str, no_wait: bool, as_json: bool) -> None:
    """Cancel a flow run: one that has not started ends Cancelled at once; a Running one is
    stopped by its runner or agent (within a second under an agent) and ends Cancelled."""
    from runwright_cloud.errors import VersionConflict
    from runwright_cloud.run_control import cancel_flow_run

    client = _client(start=False)
    try:
        answer = cancel_flow_run(client, flow_run_id)
    except VersionConflict as exc:
        raise click.ClickException(str(exc).split(" (POST ")[0]) from None
    state = answer["state"]
    if state == "Running" and not no_wait:
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            state = str(client.get_flow_run_info(flow_run_id).serialized_state.get("type"))
            if state != "Running":
                break
            time.sleep(0.05)
    if as_json:
        click.echo(json.dumps({"id": flow_run_id, "state": state}))
    elif state == "Running":
        click.echo(
            f"Flow run {flow_run_id}: cancel requested; it is still Running (its runner stops at its next heartbeat; "
            "an agent's run stops within a second)"
        )
    else:
        click.echo(f"Flow run {flow_run_id}: {state}")


@click.command("retry")
@click.argument("flow_run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def runs_retry(flow_run_id: str, as_json: bool) -> None:
    """Run a finished flow run again: its failed, cancelled and unfinished task runs run
    again, its successful ones are kept. A run of a deployment is picked up by an agent."""
    from runwright_cloud.errors import VersionConflict
    from runwright_cloud.run_control import retry_flow_run

    client = _client(start=False)
    try:
        answer = retry_flow_run(client, flow_run_id)
    except VersionConflict as exc:
        raise click.ClickException(str(exc).split(" (POST ")[0]) from None
    deployment = answer.get("queue")
    if as_json:
        click.echo(json.dumps({"id": flow_run_id, "state": "Scheduled", "agent_picks_up": bool(deployment)}))
    elif deployment:
        click.echo(f"Flow run {flow_run_id}: Scheduled again; an agent of its queue runs it")
    else:
        click.echo(
            f"Flow run {flow_run_id}: Scheduled again. It has no deployment, so no agent runs it: resume it with "
            f"`runwright run FLOW_FILE --flow-run-id {flow_run_id}`"
        )
