"""Races: two processes start the same flow run at the same moment. Every task body runs
exactly once (counted with O_APPEND marker files); the flow run ends Success, at once or
after resuming the same id."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

from .conftest import LiveServer, Processes, marker_counts, no_traceback, stored_value, wait_until

FLOW = '''
import os
import time
from pathlib import Path

from runwright import Flow, task

HERE = Path(os.environ["RW_MARKS"])

# a start barrier: both processes are loaded and waiting, then released together
(HERE / f"ready-{os.getpid()}").touch()
_deadline = time.monotonic() + 30
while not (HERE / "go").exists() and time.monotonic() < _deadline:
    time.sleep(0.002)


def mark(name):
    fd = os.open(HERE / (name + ".count"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{os.getpid()}\\n".encode())
    os.close(fd)


@task
def leaf(k):
    mark(f"leaf{k}")
    time.sleep(0.02)
    return k * k


@task
def combine(a, b):
    mark(f"combine{a}-{b}")
    return a + b


with Flow("races") as flow:
    squares = [leaf(k) for k in range(6)]
    combine(combine(squares[0], squares[1]), combine(squares[2], combine(squares[3], combine(squares[4], squares[5]))))
'''

BODIES = 6 + 5


@pytest.mark.parametrize("trial", range(4))
@pytest.mark.parametrize("executor", ["threads", "local"])
def test_two_processes_starting_the_same_flow_run_run_each_task_once(
    shared_server: LiveServer, processes: Processes, tmp_path: Path, trial: int, executor: str
) -> None:
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(FLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "go").touch()  # let the test process load the flow
    env = processes.env(shared_server, RW_MARKS=str(marks))
    os.environ["RW_MARKS"] = str(marks)
    try:
        flow = runpy.run_path(str(flow_file))["flow"]
    finally:
        del os.environ["RW_MARKS"]
    for ready in marks.glob("ready-*"):
        ready.unlink()
    (marks / "go").unlink()
    client = shared_server.a.client(shared_server.url)
    s = flow.structure()
    run_id = client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))
    args = ["run", str(flow_file), "--flow-run-id", run_id, "--executor", executor, "--json"]

    procs = [processes.start(args, env) for _ in range(2)]
    wait_until(lambda: len(list(marks.glob("ready-*"))) == 2, 60, "both processes to load the flow")
    (marks / "go").touch()
    codes = []
    for proc in procs:
        _out, err = processes.wait(proc, timeout=60)
        no_traceback(err)
        codes.append(proc.returncode)
    counts = marker_counts(marks)
    assert all(n == 1 for n in counts.values()), counts  # no body ran in both processes

    if type(client.get_flow_run_info(run_id).state).__name__ != "Success":
        # both lost some claims to the other: neither could finish; resuming completes it
        assert codes == [1, 1], codes
        resumed = processes.run(args, env)
        no_traceback(resumed.stderr)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
    else:
        assert 0 in codes, codes
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"
    counts = marker_counts(marks)
    assert len(counts) == BODIES and all(n == 1 for n in counts.values()), counts
    task_runs = client.get_flow_run_task_runs(run_id)
    terminal = {t.slug for t in flow.terminal_tasks()}
    (final,) = [t for t in task_runs if t.task_slug in terminal]
    assert stored_value(client, final.state) == sum(k * k for k in range(6))
    for task_run in task_runs:
        history = [h["state"]["type"] for h in client.get_task_run_states(task_run.id)]
        assert history.count("Running") == 1 and history[-1] == "Success", (task_run.task_slug, history)
