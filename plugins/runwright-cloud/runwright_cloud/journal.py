"""The local journal of task-run state writes the server never got.

When the background writer cannot deliver a batch (the server stayed unreachable for longer
than ``[cloud] outage_tolerance``), the batch's writes (task run id, expected version, the
serialized state) and its inline results are appended to a journal file of the flow run,
``~/.runwright/journal/<flow run id>.jsonl`` (one JSON line per batch, the file 0600 in a
0700 directory), and the file is fsync'd before the writer goes on: later writes of the same
task runs are journaled after them, never sent ahead of them.

The journal is replayed (:func:`replay`) before anything else when the flow run is resumed
(``runwright run --flow-run-id ID``), and by ``runwright runs show ID``: every write is sent
again, version-checked, with its results; a write the server already has (or that another
runner overtook) comes back as a conflict and is dropped. The file is removed once the server
has answered for all of it, and kept while it is unreachable.

Only failures touch the disk: while the server answers, nothing is written here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runwright_cloud.cloud_settings import runwright_home

if TYPE_CHECKING:
    from runwright_cloud.client import Client

logger = logging.getLogger("runwright.cloud.journal")

_SAFE_ID = re.compile(r"^[0-9A-Za-z_-]{1,100}$")
_lock = threading.Lock()


def journal_dir() -> Path:
    return runwright_home() / "journal"


def journal_path(flow_run_id: str) -> Path:
    if not _SAFE_ID.match(flow_run_id):
        raise ValueError(f"not a flow run id: {flow_run_id!r}")
    return journal_dir() / f"{flow_run_id}.jsonl"


def append(api: str, flow_run_id: str, writes: list[dict[str, Any]], results: list[dict[str, str]]) -> Path:
    """Append one undelivered batch to the flow run's journal, durably (fsync'd)."""
    path = journal_path(flow_run_id)
    line = json.dumps({"api": api, "writes": writes, "results": results}, separators=(",", ":")) + "\n"
    with _lock:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def pending(flow_run_id: str) -> bool:
    """True when the flow run has a journal of undelivered writes on this machine."""
    try:
        return journal_path(flow_run_id).exists()
    except ValueError:
        return False


def replay(client: Client, flow_run_id: str) -> int:
    """Send the flow run's journaled writes to ``client``'s server, oldest first; remove the
    journal once every batch was answered. Returns how many writes the server applied.
    Raises the client's error (the journal is kept) when the server cannot be reached."""
    if not pending(flow_run_id):
        return 0
    path = journal_path(flow_run_id)
    with _lock:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return 0
        applied = 0
        children: dict[str, str] = {}  # a journaled child run's id -> its run on the server
        for number, text in enumerate(lines, 1):
            try:
                batch = json.loads(text)
            except ValueError:  # a line cut by a crash while it was written: nothing after it
                logger.warning("Journal %s: line %d is incomplete and is skipped", path, number)
                continue
            if batch.get("api", client.api) != client.api:
                logger.warning("Journal %s: line %d is for the server at %s, not %s; skipped", path, number, batch.get("api"), client.api)
                continue
            writes = _with_children_on_the_server(client, flow_run_id, batch.get("writes", []), children)
            outcomes = client.set_task_run_states(writes, results=batch.get("results", []), brief=True)
            if outcomes is None:  # every write applied
                applied += len(writes)
            else:
                applied += sum(1 for outcome in outcomes if outcome.get("status") == "ok")
        path.unlink(missing_ok=True)
    if applied:
        logger.info("Flow run %s: %d task run state(s) kept locally during an outage were recorded", flow_run_id, applied)
    return applied


def _with_children_on_the_server(
    client: Client, flow_run_id: str, writes: list[dict[str, Any]], children: dict[str, str]
) -> list[dict[str, Any]]:
    """The journaled writes, each naming a run that exists on the server: a write that was
    to create its run (a fresh map's child, ``task_slug`` and ``map_index``) gets or creates
    that child's run first (the run the earlier delivery may have made, else a new Pending
    one), and the child's writes then name that run. The replay sends no lease, which
    creating writes need."""
    out = []
    for write in writes:
        slug, index = write.get("task_slug"), write.get("map_index")
        if slug is not None and index is not None and write["task_run_id"] not in children:
            children[write["task_run_id"]] = client.get_task_run_info(flow_run_id, slug, index).id
        run_id = children.get(write["task_run_id"], write["task_run_id"])
        out.append({"task_run_id": run_id, "version": write["version"], "state": write["state"]})
    return out
