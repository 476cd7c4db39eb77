"""``runwright runs logs ID`` and ``runwright runs watch ID`` (a run's logs and its state
changes, live), and ``runwright flows`` (flows by name)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

import click

from runwright_cloud.cli_support import configured_client as _client
from runwright_cloud.cli_support import one_line_errors as _one_line_errors

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ``runs logs --follow`` looks for new records this often while the run is unfinished
FOLLOW_INTERVAL = 0.5
PAGE = 1000
#: ``runs watch`` reconnects for this long when the stream breaks (a server restart)
RECONNECT_SECONDS = 60.0


def _state_class(type_name: str) -> Any:
    from runwright.engine.state import ALL_STATES, State

    return ALL_STATES.get(type_name, State)


def is_finished(state: dict[str, Any]) -> bool:
    from runwright.engine.state import Finished

    return issubclass(_state_class(str(state.get("type"))), Finished)


def is_successful(state: dict[str, Any]) -> bool:
    from runwright.engine.state import Success

    return issubclass(_state_class(str(state.get("type"))), Success)


def _clock(value: str) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(value)


class _TaskNames:
    """Task run id -> ``slug`` or ``slug[i]`` (read again when an unknown id shows up)."""

    def __init__(self, client: Any, flow_run_id: str) -> None:
        self.client, self.flow_run_id = client, flow_run_id
        self.names: dict[str, str] = {}

    def get(self, task_run_id: str | None) -> str:
        if task_run_id is None:
            return ""
        if task_run_id not in self.names:
            for t in self.client.get_flow_run_task_runs(self.flow_run_id):
                self.names[t.id] = t.task_slug if t.map_index == -1 else f"{t.task_slug}[{t.map_index}]"
        return self.names.get(task_run_id, task_run_id)


@click.command("logs")
@click.argument("flow_run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records until the run is finished.")
@click.option("--task", "task_name", default=None, metavar="NAME", help="Only this task's records (its name or slug).")
@click.option(
    "--level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default=None,
    help="Only records at this level or above.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per record (JSON Lines).")
@_one_line_errors
def runs_logs(flow_run_id: str, follow: bool, task_name: str | None, level: str | None, as_json: bool) -> None:
    """Print the log records of a flow run (oldest first); --follow prints new ones as they
    arrive and ends once the run is finished and every record is printed."""
    client = _client(start=False)
    info = client.get_flow_run_info(flow_run_id)  # an unknown run is a one-line error
    names = _TaskNames(client, flow_run_id)
    last_id = 0
    while True:
        finished = is_finished(info.serialized_state)  # read before the records: a finished run's are all there
        while True:
            page = client.get_flow_run_logs(flow_run_id, limit=PAGE, after_id=last_id, task=task_name, level=level)
            for record in page:
                _print_record(record, names, as_json)
                last_id = max(last_id, int(record["id"]))
            if len(page) < PAGE:
                break
        if not follow or finished:
            return
        time.sleep(FOLLOW_INTERVAL)
        info = client.get_flow_run_info(flow_run_id)


def _print_record(record: dict[str, Any], names: _TaskNames, as_json: bool) -> None:
    task = names.get(record.get("task_run_id"))
    if as_json:
        click.echo(json.dumps({**record, "task": task or None}, default=str))
        return
    where = f" [{task}]" if task else ""
    click.echo(f"{_clock(record['timestamp'])} {record['level']:<8} {record['name']}{where} | {record['message']}")


@click.command("watch")
@click.argument("flow_run_id")
@click.option("--json", "as_json", is_flag=True, help="Print each state change as a JSON object (JSON Lines).")
@_one_line_errors
def runs_watch(flow_run_id: str, as_json: bool) -> None:
    """Follow a flow run live: one line per state change of the run or its task runs, until it
    ends. Exit code 0 when it ends successfully, 1 otherwise."""
    from runwright_cloud.errors import ClientError, NotFoundError

    client = _client(start=False)
    after: str | None = None
    broken_since: float | None = None
    while True:
        try:
            for kind, data, event_id in client.flow_run_events(flow_run_id, after=after):
                broken_since = None
                if kind == "end":
                    state = data["state"]
                    if not as_json:
                        click.echo(f"Flow run {flow_run_id} ended {state.get('type')}")
                    sys.exit(0 if is_successful(state) else 1)
                if kind == "state":
                    _print_change(data, as_json)
                    after = event_id or after
        except NotFoundError:
            raise
        except ClientError as exc:
            broken_since = broken_since or time.monotonic()
            if time.monotonic() - broken_since > RECONNECT_SECONDS:
                raise
            click.echo(f"(the event stream broke: {exc}; reconnecting)", err=True)
        else:
            broken_since = broken_since or time.monotonic()  # closed without `end`: reconnect
            if time.monotonic() - broken_since > RECONNECT_SECONDS:
                raise click.ClickException(f"The event stream of flow run {flow_run_id} keeps closing; try again later")
        time.sleep(1.0)


def _print_change(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(event, default=str))
        return
    state = event.get("state") or {}
    message = (state.get("message") or "").splitlines()[0][:100] if state.get("message") else ""
    if event.get("kind") == "task_run":
        index = event.get("map_index", -1)
        what = f"task {event['task_slug']}" + (f"[{index}]" if index is not None and index >= 0 else "")
    else:
        what = "flow run"
    line = f"{_clock(event['timestamp'])}  {what:<32} {state.get('type', '?'):<12} {message}"
    click.echo(line.rstrip())


@click.command("flows")
@click.option("--limit", default=100, show_default=True, help="How many flows, those with the newest runs first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def flows_command(limit: int, as_json: bool) -> None:
    """Flows on the runwright server, by name: versions, run count, last run."""
    flows = _client(start=False).list_flow_summaries(limit=limit)
    if as_json:
        click.echo(json.dumps(flows, indent=2, default=str))
        return
    if not flows:
        click.echo("No flows yet: `runwright run FLOW.py --backend cloud` registers one.")
        return
    click.echo(f"{'NAME':30}  {'VERSIONS':8}  {'RUNS':6}  LAST RUN")
    for flow in flows:
        last = flow["last_run"]
        last_text = f"{last['state_type']} {_clock(last['created'])} {last['id']}" if last else "-"
        click.echo(f"{flow['name'][:30]:30}  {len(flow['versions']):<8}  {flow['run_count']:<6}  {last_text}")
