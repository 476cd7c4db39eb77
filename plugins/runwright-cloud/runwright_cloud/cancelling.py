"""The runner's side of ``runwright runs cancel``: a heartbeat answered ``cancel: true``
stops this process within a second.

The heartbeat thread calls :func:`stop_cancelled_run`: it records ``Cancelled`` for the run
and its unfinished task runs (``POST /flow_runs/{id}/cancelled``), says so on the log, and
ends the process at once (:func:`os._exit`): a task body cannot be interrupted from another
thread, and the run is over. Under an agent, the agent also learns of the cancel (its poll)
and kills the process if it is still there half a second later.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from runwright_cloud.errors import ClientError

if TYPE_CHECKING:
    from runwright_cloud.client import Client

logger = logging.getLogger("runwright.cloud")

#: the exit code of a flow-run process stopped by a cancel
CANCELLED_EXIT_CODE = 130


def stop_cancelled_run(flow_run_id: str, client: Client) -> None:
    from runwright_cloud.run_control import mark_cancelled

    try:
        mark_cancelled(client, flow_run_id, "Cancelled while running (runwright runs cancel): its runner stopped")
    except ClientError as exc:
        logger.error("Flow run %s was cancelled, but recording it failed: %s", flow_run_id, exc)
    logger.warning("Flow run %s was cancelled (runwright runs cancel): this process stops now", flow_run_id)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(CANCELLED_EXIT_CODE)
