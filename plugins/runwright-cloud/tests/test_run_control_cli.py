"""``runwright runs cancel`` and ``runs retry`` on runs without a deployment (no agent): the
messages say what happened and how to go on; resuming a retried run keeps its successes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runwright_server.testing import TestServer

FLOW = """
import os
from runwright import Flow, task

@task
def ok():
    return 1

@task
def flaky(x):
    if os.environ.get("RW_FAIL") == "1":
        raise ValueError("failing on purpose")
    return x + 1

with Flow("retry-me") as flow:
    flaky(ok())
"""


def _cli(server: TestServer, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    base["HOME"] = str(home)
    base.update(RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a, RUNWRIGHT__CLOUD__AUTO_START="false")
    base.update(env)
    return subprocess.run([sys.executable, "-m", "runwright.cli", *args], env=base, capture_output=True, text=True, timeout=90)


def test_cancel_a_scheduled_run_then_retry_and_resume_it(server: TestServer, tmp_path: Path) -> None:
    flow_file = tmp_path / "retry_me.py"
    flow_file.write_text(FLOW)
    run_id = _cli(server, tmp_path, "runs", "create", str(flow_file)).stdout.strip()
    cancelled = _cli(server, tmp_path, "runs", "cancel", run_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"Flow run {run_id}: Cancelled", cancelled.stderr
    again = _cli(server, tmp_path, "runs", "cancel", run_id)
    assert again.returncode == 1 and "already finished (Cancelled): nothing to cancel" in again.stderr
    assert "Traceback" not in again.stderr

    retried = _cli(server, tmp_path, "runs", "retry", run_id)
    assert retried.returncode == 0, retried.stderr
    assert f"runwright run FLOW_FILE --flow-run-id {run_id}" in retried.stdout  # no agent runs it
    failed = _cli(server, tmp_path, "run", str(flow_file), "--flow-run-id", run_id, RW_FAIL="1")
    assert failed.returncode == 1
    retried = _cli(server, tmp_path, "runs", "retry", run_id)
    assert retried.returncode == 0, retried.stderr
    done = _cli(server, tmp_path, "run", str(flow_file), "--flow-run-id", run_id, "--json")
    assert done.returncode == 0, done.stderr
    shown = _cli(server, tmp_path, "runs", "show", run_id, "--json")
    task_runs = {t["task_slug"]: t for t in json.loads(shown.stdout)["task_runs"]}
    assert task_runs["ok-1"]["state"]["type"] == "Success"
    assert task_runs["flaky-1"]["state"]["type"] == "Success"
    ok_history = server.session().get(f"{server.api}/task_runs/{task_runs['ok-1']['id']}/states").json()
    assert [h["state"]["type"] for h in ok_history].count("Running") == 1  # kept by the retry, not run again


def test_retry_of_an_unfinished_run_and_unknown_ids_are_one_line_errors(server: TestServer, tmp_path: Path) -> None:
    flow_file = tmp_path / "retry_me.py"
    flow_file.write_text(FLOW)
    run_id = _cli(server, tmp_path, "runs", "create", str(flow_file)).stdout.strip()
    unfinished = _cli(server, tmp_path, "runs", "retry", run_id)
    assert unfinished.returncode == 1 and "is not finished (Scheduled)" in unfinished.stderr
    unknown = _cli(server, tmp_path, "runs", "cancel", "0" * 36)
    assert unknown.returncode == 1 and "Not found" in unknown.stderr
    for result in (unfinished, unknown):
        assert "Traceback" not in result.stderr
