"""What a (re)started flow run takes over from the states the server holds.

* A finished state (Success with its stored result, Failed, Skipped, Cached, ...) is kept:
  the task does not run again and downstream tasks read its result from the server.
* A Retrying or Pending state with stored inputs is kept (the task runs with those inputs).
* ``Running`` whose last heartbeat is older than ``zombie_timeout`` belonged to a runner
  that is gone: the task run starts afresh (its claim to Running names the current version,
  so two runners cannot both take it over). A fresher ``Running`` belongs to a live runner:
  this run leaves it alone.
* ``Failed("no heartbeat ...")``, written by the server's sweeper, starts afresh too, for
  task runs and for the flow run itself.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from runwright.engine.state import Failed, Pending, Running, State
from runwright_cloud.received_states import require_known

#: How the server's sweeper words the Failed state of a run whose heartbeat stopped.
SWEEPER_MESSAGE_PREFIX = "no heartbeat"


def lost_heartbeat(state: State) -> bool:
    """True for the Failed state the server's sweeper writes."""
    return type(state) is Failed and (state.message or "").startswith(SWEEPER_MESSAGE_PREFIX)


def this_runner() -> str:
    """Who this runner is, as stored with the lease it holds: ``"host:pid"``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_gone(lease_holder: str | None) -> bool:
    """True when the lease holder is provably gone: it ran on this host and no process with
    its id exists any more. Another host, an unknown holder, this very process, or a process
    id in use (possibly by another program) are not proof."""
    if not lease_holder:
        return False
    host, _, pid_text = lease_holder.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process, say)
        return False
    return False


def is_stale(heartbeat: datetime | None, zombie_timeout: float) -> bool:
    if heartbeat is None:
        return True
    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=UTC)
    return datetime.now(UTC) - heartbeat > timedelta(seconds=zombie_timeout)


def restore_task_state(stored: State, heartbeat: datetime | None, zombie_timeout: float) -> State | None:
    """The state a task run resumes from (``stored`` is its state on the server), or None to
    run it afresh. A state this process cannot read raises
    :class:`~runwright_cloud.received_states.UnknownStateError`."""
    state = require_known(stored, "task run")
    if type(state) is Pending and not state.cached_inputs:
        return None
    if isinstance(state, Running) and is_stale(heartbeat, zombie_timeout):
        return None
    if lost_heartbeat(state):
        return None
    return state


def restore_flow_state(stored: State) -> State:
    """The state a flow run resumes from; a run the sweeper failed starts again."""
    state = require_known(stored, "flow run")
    if lost_heartbeat(state):
        return Pending("Resuming a flow run whose runner stopped sending heartbeats.")
    return state
