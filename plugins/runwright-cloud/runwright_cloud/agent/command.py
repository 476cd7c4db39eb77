"""``runwright agent start [--queue QUEUE ...] [--limit N] [--name NAME]``."""

from __future__ import annotations

import logging
import sys

import click

from runwright_cloud.agent.loop import POLL_WAIT
from runwright_cloud.cli_support import one_line_errors as _one_line_errors


@click.group("agent")
def agent_group() -> None:
    """Run the flow runs of deployments as they come due (see docs/orchestration.md)."""


@agent_group.command("start")
@click.option("--queue", "queues", multiple=True, metavar="QUEUE", help="A work queue to take runs from (repeatable; default: default).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N runs at once (default: no limit).")
@click.option("--name", default=None, help="The agent's name (default: HOST:PID).")
@_one_line_errors
def agent_start(queues: tuple[str, ...], limit: int | None, name: str | None) -> None:
    """Take due runs of the queues from the server and run each in its own process, until
    SIGTERM or Ctrl-C (running runs finish first; claimed ones that had not started go back)."""
    from runwright_cloud import embedded
    from runwright_cloud.agent.loop import Agent
    from runwright_cloud.client import Client
    from runwright_cloud.cloud_settings import load_settings

    for queue in queues:
        if not queue or len(queue) > 200:
            raise click.BadParameter(f"a queue name is 1 to 200 characters, not {len(queue)}", param_hint="--queue")
    settings = embedded.prepare(load_settings(), start=False)
    if not settings.api_token:
        raise click.ClickException(
            "No API token for the runwright server: set [cloud] api_token or RUNWRIGHT__CLOUD__API_TOKEN "
            "(create one with `runwright server token create --name NAME`)."
        )
    _log_to_stderr()
    # one request waits up to POLL_WAIT seconds on the server: the client waits longer
    client = Client(settings.api, settings.api_token, timeout=POLL_WAIT + 15, retries=0)
    agent = Agent(client, name=name, queues=list(queues) or None, limit=limit)
    sys.exit(agent.run())


def _log_to_stderr() -> None:
    logger = logging.getLogger("runwright.agent")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
