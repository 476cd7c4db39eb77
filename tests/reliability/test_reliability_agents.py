"""Agents and run control, end to end: a real server, real ``runwright agent start``
subprocesses running real flow-run processes (docs/reliability.md, "Agents")."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import LiveServer, Processes, make_server, no_traceback, wait_until
from tests.reliability.orchestration import (
    MARKED_FLOW,
    Agents,
    deploy,
    flow_run,
    history,
    marks,
    run_deployment,
    session,
    state_of,
    task_states,
    wait_finished,
)

#: the server's zombie timeout in these tests (the agents' [cloud] zombie_timeout matches)
ZOMBIE_TIMEOUT = "3"


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = make_server(
        tmp_path_factory.mktemp("server"), ["--zombie-timeout", ZOMBIE_TIMEOUT, "--sweep-interval", "0.5"]
    )
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture
def agents(processes: Processes, server: LiveServer, tmp_path: Path) -> Agents:
    return Agents(processes, server, tmp_path / "marks.txt")


def _pid_of_run(server: LiveServer, run_id: str) -> int:
    """The flow-run process's pid, from the lease holder ("host:pid") of the Running run."""
    holder = flow_run(server, server.a.token, run_id)["lease_holder"]
    return int(holder.rpartition(":")[2])


def _registered_agents(server: LiveServer) -> int:
    with sqlite3.connect(server.db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM agents").fetchone()[0])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie child of a dead agent is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_three_agents_racing_start_every_queued_run_exactly_once(server: LiveServer, agents: Agents) -> None:
    token = server.a.token
    deploy(server, token, MARKED_FLOW, "race")
    run_ids = [run_deployment(server, token, "race") for _ in range(12)]
    started = [agents.start("--limit", "3", "--name", f"racer-{i}") for i in range(3)]
    wait_finished(server, token, run_ids, 90)
    for run_id in run_ids:
        assert state_of(server, token, run_id) == "Success"
        assert Counter(history(server, token, run_id)) == Counter({"Scheduled": 1, "Submitted": 1, "Running": 1, "Success": 1})
    counts = Counter(marks(agents.marks_path))
    assert set(counts.values()) == {1} and len(counts) == 3 * len(run_ids)  # every task of every run once
    for proc in started:
        code, log = agents.stop(proc)
        assert code == 0, log
        no_traceback(log)


def test_a_run_whose_agent_is_killed_is_finished_by_another_without_rerunning_finished_tasks(
    server: LiveServer, agents: Agents
) -> None:
    token = server.a.token
    deploy(server, token, MARKED_FLOW, "takeover")
    run_id = run_deployment(server, token, "takeover", seconds=60)
    doomed = agents.start("--name", "doomed")
    wait_until(lambda: (run_id, "slow") in marks(agents.marks_path), 60, "the slow task to start", 0.1)
    child = _pid_of_run(server, run_id)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=30)
    wait_until(lambda: _gone(child), 5, "the flow-run process to die with its agent")
    rescuer = agents.start("--name", "rescuer")
    wait_finished(server, token, [run_id], 60)
    assert state_of(server, token, run_id) == "Success"
    counts = Counter(marks(agents.marks_path))
    assert counts[(run_id, "first")] == 1  # finished before the kill: not run again
    assert counts[(run_id, "slow")] == 2 and counts[(run_id, "last")] == 1
    assert history(server, token, run_id).count("Submitted") == 2
    code, log = agents.stop(rescuer)
    assert code == 0 and f"Flow run {run_id}: Success" in log, log


def test_agents_reconnect_after_the_server_is_killed_and_restarted(server: LiveServer, agents: Agents) -> None:
    token = server.a.token
    deploy(server, token, MARKED_FLOW, "restart")
    waiting = [agents.start("--name", f"patient-{i}") for i in range(2)]
    wait_until(lambda: _registered_agents(server) == 2, 60, "both agents to register", 0.1)
    time.sleep(0.5)  # both are in their long poll
    server.kill()
    time.sleep(2.0)
    server.start()
    run_id = run_deployment(server, token, "restart")
    wait_finished(server, token, [run_id], 30)
    assert state_of(server, token, run_id) == "Success"
    assert history(server, token, run_id).count("Submitted") == 1
    for proc in waiting:
        code, log = agents.stop(proc)
        assert code == 0, log
        assert log.count("Lost the runwright server") == 1, log  # one line, not one per retry
        assert log.count("Reconnected to the runwright server") == 1, log
        no_traceback(log)


def test_a_deployment_whose_code_fails_to_load_fails_its_run_and_the_agent_goes_on(
    server: LiveServer, agents: Agents
) -> None:
    token = server.a.token
    deploy(server, token, "import runwright\nraise RuntimeError('the flow file is broken on purpose')\n", "broken")
    deploy(server, token, MARKED_FLOW, "fine")
    agent = agents.start("--name", "steady")
    broken = run_deployment(server, token, "broken")
    wait_finished(server, token, [broken], 30)
    run = flow_run(server, token, broken)
    assert run["state"]["type"] == "Failed"
    assert "could not be loaded" in run["state"]["message"]
    assert "the flow file is broken on purpose" in run["state"]["message"]
    fine = run_deployment(server, token, "fine")
    wait_finished(server, token, [fine], 30)
    assert state_of(server, token, fine) == "Success"
    assert agent.poll() is None
    code, log = agents.stop(agent)
    assert code == 0, log


def test_cancel_during_a_long_task_body_stops_the_process_and_ends_the_run_cancelled(
    server: LiveServer, agents: Agents, processes: Processes
) -> None:
    token = server.a.token
    deploy(server, token, MARKED_FLOW, "long")
    agent = agents.start("--name", "canceller")
    run_id = run_deployment(server, token, "long", seconds=120)
    wait_until(lambda: (run_id, "slow") in marks(agents.marks_path), 60, "the slow task to start", 0.05)
    pid = _pid_of_run(server, run_id)
    started = time.monotonic()
    r = session(token).post(f"{server.url}/api/v1/flow_runs/{run_id}/cancel")
    assert r.status_code == 202, r.text
    wait_until(lambda: _gone(pid), 5, "the flow-run process to end", 0.01)
    gone = time.monotonic() - started
    wait_until(lambda: state_of(server, token, run_id) == "Cancelled", 5, "Cancelled", 0.01)
    cancelled = time.monotonic() - started
    # the targets are 1 s / 1.5 s; the margin is for a loaded test machine
    assert gone < 2.0 and cancelled < 2.5, (gone, cancelled)
    assert task_states(server, token, run_id) == {"first-1": "Success", "seconds": "Success", "slow-1": "Cancelled", "last-1": "Cancelled"}
    # the CLI on a finished run: a one-line error, no traceback
    env = processes.env(server)
    again = processes.run(["runs", "cancel", run_id], env)
    assert again.returncode == 1 and "already finished (Cancelled)" in again.stderr, again.stderr
    no_traceback(again.stderr)
    # and a retry runs the cancelled task again, keeping the finished one
    retried = processes.run(["runs", "retry", run_id], env)
    assert retried.returncode == 0 and "an agent of its queue runs it" in retried.stdout, retried.stderr
    wait_finished(server, token, [run_id], 60)
    assert state_of(server, token, run_id) == "Success"
    counts = Counter(marks(agents.marks_path))
    assert counts[(run_id, "first")] == 1 and counts[(run_id, "slow")] == 2
    code, log = agents.stop(agent)
    assert code == 0, log


def test_a_runner_without_an_agent_stops_on_its_heartbeat_answer(server: LiveServer, processes: Processes, tmp_path: Path) -> None:
    """``runwright run FILE --flow-run-id`` by hand: the heartbeat answered ``cancel``
    stops the process and records Cancelled."""
    flow_file = tmp_path / "marked.py"
    flow_file.write_text(MARKED_FLOW)
    env = processes.env(server, RW_MARKS=str(tmp_path / "marks.txt"), RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2")
    created = processes.run(["runs", "create", str(flow_file), "--param", "seconds=120"], env)
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    runner = processes.start(["run", str(flow_file), "--flow-run-id", run_id], env)
    wait_until(lambda: (run_id, "slow") in marks(tmp_path / "marks.txt"), 60, "the slow task to start", 0.05)
    started = time.monotonic()
    assert session(server.a.token).post(f"{server.url}/api/v1/flow_runs/{run_id}/cancel").status_code == 202
    _out, err = processes.wait(runner, 10)
    assert time.monotonic() - started < 2.0
    assert runner.returncode == 130 and "was cancelled" in err, err
    assert state_of(server, server.a.token, run_id) == "Cancelled"
    assert task_states(server, server.a.token, run_id)["slow-1"] == "Cancelled"


def test_sigterm_lets_the_running_run_finish_and_takes_no_new_work(server: LiveServer, agents: Agents) -> None:
    token = server.a.token
    deploy(server, token, MARKED_FLOW, "drain")
    agent = agents.start("--name", "drainer", "--limit", "1")
    running = run_deployment(server, token, "drain", seconds=3)
    wait_until(lambda: (running, "slow") in marks(agents.marks_path), 60, "the slow task to start", 0.05)
    agent.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    waiting = run_deployment(server, token, "drain")
    code, log = agents.stop(agent)
    assert code == 0, log
    assert state_of(server, token, running) == "Success"
    assert state_of(server, token, waiting) == "Scheduled"  # left for another agent
    no_traceback(log)


def test_another_tenants_deployment_is_invisible_and_cannot_be_run_or_claimed(server: LiveServer, agents: Agents) -> None:
    a, b = server.a.token, server.b.token
    deploy(server, a, MARKED_FLOW, "private", queue="shared")
    run_id = run_deployment(server, a, "private")
    b_session = session(b)
    assert "private" not in [d["name"] for d in b_session.get(f"{server.url}/api/v1/deployments").json()]
    assert b_session.get(f"{server.url}/api/v1/deployments/private").status_code == 404
    assert b_session.post(f"{server.url}/api/v1/deployments/private/runs", json={"parameters": {}}).status_code == 404
    for action in ("cancel", "retry"):
        assert b_session.post(f"{server.url}/api/v1/flow_runs/{run_id}/{action}").status_code == 404
    other = agents.start("--queue", "shared", "--name", "tenant-b", token=b)
    wait_until(lambda: _registered_agents(server) == 1, 60, "the agent to register", 0.1)
    time.sleep(1.5)
    assert state_of(server, a, run_id) == "Scheduled"  # b's agent of the same queue name took nothing
    code, _log = agents.stop(other)
    assert code == 0
    mine = agents.start("--queue", "shared", "--name", "tenant-a")
    wait_finished(server, a, [run_id], 30)
    assert state_of(server, a, run_id) == "Success"
    agents.stop(mine)


def test_agent_start_refuses_bad_options_in_one_line(processes: Processes, server: LiveServer) -> None:
    env = processes.env(server)
    bad = processes.run(["agent", "start", "--limit", "0"], env)
    assert bad.returncode == 2 and "--limit" in bad.stderr
    no_traceback(bad.stderr)
    proc = subprocess.run(
        [sys.executable, "-m", "runwright.cli", "agent", "start", "--queue", ""], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "queue name" in proc.stderr


def test_an_agent_with_a_revoked_token_stops_with_a_one_line_error(processes: Processes, server: LiveServer) -> None:
    refused = processes.run(["agent", "start"], processes.env(server, server.revoked))
    assert refused.returncode == 1 and "refused the API token" in refused.stderr, refused.stderr
    no_traceback(refused.stderr)


def test_every_scheduled_start_gets_exactly_one_run_across_a_server_restart(
    server: LiveServer, agents: Agents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interval schedule of 1 s, an agent, the server SIGKILLed for 2 s and restarted: each
    start has one run (the missed ones created late), and each ran once."""
    from datetime import UTC, datetime, timedelta

    from runwright.schedules import IntervalSchedule

    server.stop()
    monkeypatch.setenv("RUNWRIGHT__SERVER__SCHEDULER_INTERVAL", "0.5")  # passes keep up with 1 s starts
    server.start()
    token = server.a.token
    source = MARKED_FLOW.replace('Flow("marked")', 'Flow("ticking")')
    first_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    schedule = IntervalSchedule(first_start, timedelta(seconds=1)).serialize()
    agent = agents.start("--name", "ticker")
    deploy(server, token, source, "ticking", flow_name="ticking", schedule=schedule)
    time.sleep(6)
    server.kill()
    time.sleep(2)
    server.start()
    time.sleep(4)
    assert session(token).post(f"{server.url}/api/v1/deployments/ticking/pause").status_code == 200
    last_start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    runs = [r for r in session(token).get(f"{server.url}/api/v1/flow_runs", params={"limit": 1000}).json() if r["flow_name"] == "ticking"]
    starts = [datetime.fromisoformat(r["scheduled_start_time"].replace("Z", "+00:00")) for r in runs]
    assert len(starts) == len(set(starts)), "two runs for one start"
    expected = {first_start + timedelta(seconds=i) for i in range(int((last_start - first_start).total_seconds()) + 1)}
    assert expected <= set(starts), (sorted(expected - set(starts)), sorted(starts))
    done = [r["id"] for r, when in zip(runs, starts, strict=True) if when in expected]
    wait_finished(server, token, done, 90)
    assert {state_of(server, token, run_id) for run_id in done} == {"Success"}
    counts = Counter(marks(agents.marks_path))
    assert all(counts[(run_id, "first")] == 1 for run_id in done)
    code, log = agents.stop(agent)
    assert code == 0, log
