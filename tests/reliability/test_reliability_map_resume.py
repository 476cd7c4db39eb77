"""A fresh map's runner killed halfway: its children's runs are created on the server by
their first writes (docs/cloud.md), so at the kill some children exist there and others do
not. Resumed with the same flow-run id, every child ends Success exactly once, a child
recorded Success before the kill never runs again, and the reducer gets every child's value
(the map goes over the restored list of items, the restored children's results are read
back)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

from .conftest import LiveServer, Processes, marker_counts, no_traceback, server_rows, stored_value, wait_until

CHILDREN = 400
HELD = 250  # the child whose body the kill lands in

FLOW = f'''
import os
import time
import uuid
from pathlib import Path

from runwright import Flow, task

MARKS = Path(os.environ["RW_MARKS"])
HOLD = os.environ.get("RW_HOLD") == "1"


@task
def items():
    return list(range({CHILDREN}))


@task
def child(x):
    fd = os.open(MARKS / ("child" + str(x) + ".count"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"x\\n")
    os.close(fd)
    if HOLD and x == {HELD}:
        time.sleep(60)  # the test kills the process here
    time.sleep(0.002)
    return x * x


@task
def total(xs):
    return sum(xs)


with Flow("map-resume") as flow:
    total(child.map(items()))
'''


def _child_runs(db_path: Path, run_id: str) -> dict[int, list[str]]:
    """Each child run's history (state types by version), straight from the server's file."""
    rows = server_rows(
        db_path,
        "SELECT t.map_index, s.state_type FROM task_runs t JOIN task_run_states s ON s.task_run_id = t.id "
        "WHERE t.flow_run_id = ? AND t.map_index >= 0 ORDER BY t.map_index, s.version",
        (run_id,),
    )
    out: dict[int, list[str]] = {}
    for index, state_type in rows:
        out.setdefault(int(index), []).append(str(state_type))
    return out


def test_a_fresh_map_killed_halfway_resumes_with_every_child_once(
    shared_server: LiveServer, processes: Processes, tmp_path: Path
) -> None:
    flow_file = tmp_path / "flow.py"
    name = f"map-resume-{uuid.uuid4().hex[:8]}"
    flow_file.write_text(FLOW.replace("map-resume", name))
    marks = tmp_path / "marks"
    marks.mkdir()
    client = shared_server.a.client(shared_server.url)
    env = processes.env(shared_server, RW_MARKS=str(marks), RW_HOLD="1", RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2")
    args = ["run", str(flow_file), "--backend", "cloud", "--json"]
    proc = processes.start(args, env)
    wait_until(lambda: (marks / f"child{HELD}.count").exists() or proc.poll() is not None, 60, f"child {HELD}")
    time.sleep(0.3)  # the writes of the children before it reach the server
    assert proc.poll() is None, "the run finished before the kill: the test would prove nothing"
    processes.kill(proc)
    assert proc.returncode == -signal.SIGKILL
    (run,) = [r for r in client.list_flow_runs(flow=name) if r["state"]["type"] == "Running"]
    before = _child_runs(shared_server.db_path, run["id"])
    finished = {index for index, history in before.items() if "Success" in history}
    # a fresh map: the children that ran have runs (created by their writes, no Pending row),
    # the ones after the kill have none yet
    assert finished and max(finished) < HELD
    assert all(before[index] == ["Running", "Success"] for index in finished)
    assert not any(index > HELD for index in before)

    time.sleep(0.5)  # the killed runner's claims are older than the zombie timeout below
    resumed = processes.run(
        ["run", str(flow_file), "--flow-run-id", run["id"], "--json"],
        dict(env, RW_HOLD="", RUNWRIGHT__CLOUD__ZOMBIE_TIMEOUT="0.4"),
    )
    no_traceback(resumed.stderr)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert type(client.get_flow_run_info(run["id"]).state).__name__ == "Success"
    after = _child_runs(shared_server.db_path, run["id"])
    assert sorted(after) == list(range(CHILDREN))  # one run per child
    assert all(history.count("Success") == 1 for history in after.values()), after
    counts = marker_counts(marks)
    assert all(counts[f"child{index}"] == 1 for index in finished)  # never ran again
    assert all(counts[f"child{index}"] >= 1 for index in range(CHILDREN))
    # the reducer got every child's value: the restored children's results were read back,
    # and the map went over the restored list of items, not over its stored location
    summary = json.loads(resumed.stdout)
    assert summary["state"] == "Success"
    (total,) = [t for t in client.get_flow_run_task_runs(run["id"]) if t.task_slug.startswith("total")]
    assert stored_value(client, total.state) == sum(x * x for x in range(CHILDREN))
