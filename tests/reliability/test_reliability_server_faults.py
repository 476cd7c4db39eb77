"""Server faults: the server is SIGKILLed mid-run and restarted on the same port with the same
SQLite file. Within ``[cloud] outage_tolerance`` the run just pauses and completes; past it,
the run ends recoverably and resumes with the same flow run id. Either way nothing finished
runs twice and no stored result is lost."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest

from .conftest import (
    LiveServer,
    OutageRun,
    Processes,
    marker_counts,
    no_traceback,
    stored_value,
    succeeded_task_slugs,
    wait_until,
)

LENGTH = 30

FLOW = f'''
import os
import time
from pathlib import Path

from runwright import Flow, task

HERE = Path(__file__).parent


@task
def step(x):
    name = "step-" + str(x)
    fd = os.open(HERE / "marks" / (name + ".count"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, b"x\\n")
    os.close(fd)
    time.sleep(0.04)
    return x + 1


with Flow("server-faults") as flow:
    x = step(0)
    for _ in range({LENGTH - 1}):
        x = step(x)
'''


@pytest.mark.parametrize("downtime", [0.0, 3.0], ids=["restart-at-once", "down-3s"])
def test_a_server_killed_and_restarted_mid_run_loses_nothing(
    live_server: LiveServer, processes: Processes, tmp_path: Path, downtime: float
) -> None:
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(FLOW)
    (tmp_path / "marks").mkdir()
    flow = runpy.run_path(str(flow_file))["flow"]
    client = live_server.a.client(live_server.url)
    s = flow.structure()
    run_id = client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))
    env = processes.env(live_server, RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2")

    proc = processes.start(["run", str(flow_file), "--flow-run-id", run_id, "--json"], env)
    wait_until(lambda: len(marker_counts(tmp_path / "marks")) >= 10 or proc.poll() is not None, 60, "10 tasks to run")
    assert proc.poll() is None, proc.communicate()
    old_pid = live_server.pid
    live_server.kill()
    finished = succeeded_task_slugs(live_server.db_path, run_id)
    assert finished, "no task had finished before the crash"
    time.sleep(downtime)
    live_server.start()
    assert live_server.pid != old_pid
    _out, err = processes.wait(proc, timeout=120)
    no_traceback(err)
    attempts = 1
    if proc.returncode != 0:
        # Ended recoverably: resume the same flow run (its orphaned claims are zombies at once).
        time.sleep(0.5)
        resumed = processes.run(
            ["run", str(flow_file), "--flow-run-id", run_id, "--json"],
            dict(env, RUNWRIGHT__CLOUD__ZOMBIE_TIMEOUT="0.4"),
        )
        no_traceback(resumed.stderr)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        attempts = 2

    print(f"server fault ({downtime} s down): finished in {attempts} attempt(s); {len(finished)} tasks done at the crash")
    assert attempts == 1, "an outage shorter than [cloud] outage_tolerance (60 s) must not stop the run"
    info = client.get_flow_run_info(run_id)
    assert type(info.state).__name__ == "Success", (attempts, info.state)
    assert [h["version"] for h in client.get_flow_run_states(run_id)] == list(range(info.version + 1))
    counts = marker_counts(tmp_path / "marks")
    task_runs = {t.task_slug: t for t in client.get_flow_run_task_runs(run_id)}
    by_value = {}
    for task in flow.tasks:
        run = task_runs[task.slug]
        history = client.get_task_run_states(run.id)
        assert [h["version"] for h in history] == list(range(len(history))), task.slug
        assert [h["state"]["type"] for h in history].count("Success") == 1, (task.slug, history)
        by_value[stored_value(client, run.state)] = task.slug
    # no stored result lost: every task's result is on the server with the right value
    assert sorted(by_value) == list(range(1, LENGTH + 1))  # step results 1..30 (the literal 0 is no task)
    # nothing that had finished ran again; the rest ran at most once more than they were claimed
    for slug in finished:
        step_input = next(v for v, s in by_value.items() if s == slug) - 1
        assert counts[f"step-{step_input}"] == 1, (slug, counts)
    assert len(counts) == LENGTH and all(1 <= n <= 2 for n in counts.values()), counts


def test_a_task_state_lost_while_the_server_was_down_never_ends_in_a_successful_run(
    live_server: LiveServer, processes: Processes, server_down_mid_run: OutageRun
) -> None:
    """One branch finishes while the server is down for longer than the run tolerates (its
    Success cannot be sent), the other after it is back: the run must not be recorded Success
    with that task run left Running. It ends recoverably, and resuming the same flow run
    records everything."""
    run = server_down_mid_run
    client, run_id, flow_file, env, proc = run.client, run.run_id, run.flow_file, run.env, run.proc
    run.release("fast")  # fast finishes while the server is down
    time.sleep(3.0)  # longer than the client's retries
    live_server.start()
    run.release("slow")  # slow finishes once the server is back
    out, err = processes.wait(proc, timeout=60)
    no_traceback(err)
    info = client.get_flow_run_info(run_id)
    task_states = {t.task_slug: type(t.state).__name__ for t in client.get_flow_run_task_runs(run_id)}
    if type(info.state).__name__ == "Success":
        assert set(task_states.values()) == {"Success"}, f"the run is Success but its task runs are {task_states}"
    else:
        assert proc.returncode != 0, "the process reported success that the server does not have"
        assert type(info.state).__name__ == "Running", info.state
        time.sleep(0.5)
        resumed = processes.run(
            ["run", str(flow_file), "--flow-run-id", run_id, "--executor", "threads", "--json"],
            dict(env, RUNWRIGHT__CLOUD__ZOMBIE_TIMEOUT="0.4"),
        )
        no_traceback(resumed.stderr)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"
    final = {t.task_slug: t for t in client.get_flow_run_task_runs(run_id)}
    assert {slug: type(t.state).__name__ for slug, t in final.items()} == dict.fromkeys(final, "Success")
    assert sorted(stored_value(client, t.state) for t in final.values()) == ["fast", "slow"]
    counts = run.counts()
    assert counts["slow"] == 1, counts  # recorded Success before: never runs again
