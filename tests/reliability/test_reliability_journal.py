"""A run that outlives its server loses nothing: a task that finishes while the server is down
(longer than ``[cloud] outage_tolerance``) has its state kept in the flow run's local journal
(``~/.runwright/journal/<id>.jsonl``), and the journal is replayed before anything else when
the run is resumed, or by ``runwright runs show ID``: that task never runs again. The server
is a real subprocess, SIGKILLed by its PID and restarted on the same port and database."""

from __future__ import annotations

import json
import runpy
import time
from pathlib import Path

from .conftest import LiveServer, Processes, marker_counts, no_traceback, stored_value, wait_until

BRANCHES = '''
import time
from pathlib import Path

from runwright import Flow, task

HERE = Path(__file__).parent


def mark(name):
    with open(HERE / "marks" / (name + ".count"), "a") as f:
        f.write("x\\n")


def wait_for(name):
    deadline = time.monotonic() + 30
    while not (HERE / name).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@task
def slow():
    mark("slow")
    wait_for("release-slow")
    return "slow"


@task
def fast():
    mark("fast")
    wait_for("release-fast")
    return "fast"


with Flow("journal-branches") as flow:
    slow()
    fast()
'''


def outage_run(live_server: LiveServer, processes: Processes, tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """Run the flow; ``fast`` finishes while the server is down, ``slow`` once it is back.
    Returns the flow run id, the environment and the flow file."""
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(BRANCHES)
    (tmp_path / "marks").mkdir()
    flow = runpy.run_path(str(flow_file))["flow"]
    client = live_server.a.client(live_server.url)
    s = flow.structure()
    run_id = client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))
    env = processes.env(live_server, RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2", RUNWRIGHT__CLOUD__OUTAGE_TOLERANCE="0")
    proc = processes.start(["run", str(flow_file), "--flow-run-id", run_id, "--executor", "threads", "--json"], env)
    wait_until(lambda: len(marker_counts(tmp_path / "marks")) == 2 or proc.poll() is not None, 60, "both tasks to start")
    wait_until(
        lambda: [type(t.state).__name__ for t in client.get_flow_run_task_runs(run_id)] == ["Running", "Running"]
        or proc.poll() is not None,
        60,
        "both claims on the server",
    )
    assert proc.poll() is None, proc.communicate()
    live_server.kill()
    (tmp_path / "release-fast").touch()  # fast finishes while the server is down
    journal = Path(env["HOME"]) / ".runwright" / "journal" / f"{run_id}.jsonl"
    wait_until(journal.exists, 60, "fast's undelivered Success to be journaled")
    live_server.start()
    (tmp_path / "release-slow").touch()  # slow finishes once the server is back
    _out, err = processes.wait(proc, timeout=60)
    no_traceback(err)
    assert proc.returncode != 0, "the run cannot be recorded Success while fast's state is not on the server"
    assert "kept on this machine" in err, err[-3000:]
    assert journal.stat().st_mode & 0o777 == 0o600
    assert journal.parent.stat().st_mode & 0o777 == 0o700
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Running"
    return run_id, env, flow_file


def test_a_task_finished_during_an_outage_never_runs_again_on_resume(
    live_server: LiveServer, processes: Processes, tmp_path: Path
) -> None:
    run_id, env, flow_file = outage_run(live_server, processes, tmp_path)
    client = live_server.a.client(live_server.url)
    # resumed at once: the journal lands first, the dead runner's lease is taken over
    resumed = processes.run(["run", str(flow_file), "--flow-run-id", run_id, "--executor", "threads", "--json"], env)
    no_traceback(resumed.stderr)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"
    final = {t.task_slug: t for t in client.get_flow_run_task_runs(run_id)}
    assert {slug: type(t.state).__name__ for slug, t in final.items()} == dict.fromkeys(final, "Success")
    assert sorted(stored_value(client, t.state) for t in final.values()) == ["fast", "slow"]
    assert marker_counts(tmp_path / "marks") == {"fast": 1, "slow": 1}  # neither ran again
    assert not (Path(env["HOME"]) / ".runwright" / "journal" / f"{run_id}.jsonl").exists()


def test_runs_show_records_the_journal_of_its_flow_run(
    live_server: LiveServer, processes: Processes, tmp_path: Path
) -> None:
    run_id, env, _ = outage_run(live_server, processes, tmp_path)
    shown = processes.run(["runs", "show", run_id, "--json"], env)
    assert shown.returncode == 0, shown.stderr
    states = {t["task_slug"]: t["state"]["type"] for t in json.loads(shown.stdout)["task_runs"]}
    assert states == {"fast-1": "Success", "slow-1": "Success"}
    assert not (Path(env["HOME"]) / ".runwright" / "journal" / f"{run_id}.jsonl").exists()
    time.sleep(0.1)
    client = live_server.a.client(live_server.url)
    fast = next(t for t in client.get_flow_run_task_runs(run_id) if t.task_slug == "fast-1")
    assert stored_value(client, fast.state) == "fast"  # its inline result was kept too
