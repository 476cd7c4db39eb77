"""A run that outlives its server loses nothing: a task that finishes while the server is down
(longer than ``[cloud] outage_tolerance``) has its state kept in the flow run's local journal
(``~/.runwright/journal/<id>.jsonl``), and the journal is replayed before anything else when
the run is resumed, or by ``runwright runs show ID``: that task never runs again. The server
is a real subprocess, SIGKILLed by its PID and restarted on the same port and database."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .conftest import LiveServer, OutageRun, Processes, no_traceback, stored_value, wait_until


def journal_of(run: OutageRun) -> Path:
    return Path(run.env["HOME"]) / ".runwright" / "journal" / f"{run.run_id}.jsonl"


def end_with_fast_journaled(live_server: LiveServer, processes: Processes, run: OutageRun) -> None:
    """``fast`` finishes while the server is down, ``slow`` once it is back: the run ends
    recoverably, with fast's undelivered Success kept in the journal."""
    run.release("fast")
    journal = journal_of(run)
    wait_until(journal.exists, 60, "fast's undelivered Success to be journaled")
    live_server.start()
    run.release("slow")
    _out, err = processes.wait(run.proc, timeout=60)
    no_traceback(err)
    assert run.proc.returncode != 0, "the run cannot be recorded Success while fast's state is not on the server"
    assert "kept on this machine" in err, err[-3000:]
    assert journal.stat().st_mode & 0o777 == 0o600
    assert journal.parent.stat().st_mode & 0o777 == 0o700
    assert type(run.client.get_flow_run_info(run.run_id).state).__name__ == "Running"


def test_a_task_finished_during_an_outage_never_runs_again_on_resume(
    live_server: LiveServer, processes: Processes, server_down_mid_run: OutageRun
) -> None:
    run = server_down_mid_run
    end_with_fast_journaled(live_server, processes, run)
    client = run.client
    # resumed at once: the journal lands first, the dead runner's lease is taken over
    resumed = processes.run(["run", str(run.flow_file), "--flow-run-id", run.run_id, "--executor", "threads", "--json"], run.env)
    no_traceback(resumed.stderr)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert type(client.get_flow_run_info(run.run_id).state).__name__ == "Success"
    final = {t.task_slug: t for t in client.get_flow_run_task_runs(run.run_id)}
    assert {slug: type(t.state).__name__ for slug, t in final.items()} == dict.fromkeys(final, "Success")
    assert sorted(stored_value(client, t.state) for t in final.values()) == ["fast", "slow"]
    assert run.counts() == {"fast": 1, "slow": 1}  # neither ran again
    assert not journal_of(run).exists()


def test_runs_show_records_the_journal_of_its_flow_run(
    live_server: LiveServer, processes: Processes, server_down_mid_run: OutageRun
) -> None:
    run = server_down_mid_run
    end_with_fast_journaled(live_server, processes, run)
    shown = processes.run(["runs", "show", run.run_id, "--json"], run.env)
    assert shown.returncode == 0, shown.stderr
    states = {t["task_slug"]: t["state"]["type"] for t in json.loads(shown.stdout)["task_runs"]}
    assert states == {"fast-1": "Success", "slow-1": "Success"}
    assert not journal_of(run).exists()
    time.sleep(0.1)
    fast = next(t for t in run.client.get_flow_run_task_runs(run.run_id) if t.task_slug == "fast-1")
    assert stored_value(run.client, fast.state) == "fast"  # its inline result was kept too
