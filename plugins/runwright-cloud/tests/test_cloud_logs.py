"""Log shipping and the run-reading commands, with real flow-run processes: every record of a
cloud run reaches the server before its final state; ``runs logs`` (``--follow``, ``--task``,
``--level``, ``--json``), ``runs watch``, the ``runs`` filters and ``flows``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runwright_cloud.client import Client
from runwright_server.testing import TestServer, unique

LINES = 1500

FLOW_SOURCE = '''
import warnings
from runwright import Flow, Parameter, get_run_logger, task

@task(log_stdout=True)
def chatty(n: int) -> int:
    logger = get_run_logger()
    for i in range(n):
        logger.info("line %d", i)
    print("printed by chatty")
    warnings.warn("careful now")
    return n

@task
def broken(x: int) -> int:
    raise ValueError("boom in broken")

with Flow("FLOW_NAME") as flow:
    broken(chatty(Parameter("n", default=10)))
'''


def runwright(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runwright.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runwright.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.wait()
    return proc.returncode, out, err


@pytest.fixture
def env(server: TestServer, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    return dict(base, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a,
                RUNWRIGHT__CLOUD__AUTO_START="false", HOME=str(tmp_path))


@pytest.fixture
def flow_file(tmp_path: Path) -> tuple[Path, str]:
    name = unique("shipping")
    path = tmp_path / "shipping.py"
    path.write_text(FLOW_SOURCE.replace("FLOW_NAME", name))
    return path, name


def test_every_record_of_a_run_is_on_the_server_before_its_final_state(
    server: TestServer, env: dict[str, str], flow_file: tuple[Path, str]
) -> None:
    path, name = flow_file
    created = runwright(env, "runs", "create", str(path), "--param", f"n={LINES}")
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    # started before the run: it follows until the run is finished and every record is printed
    follower = start(env, "runs", "logs", run_id, "--follow", "--json")
    watcher = start(env, "runs", "watch", run_id)
    done = runwright(env, "run", str(path), "--flow-run-id", run_id)
    assert done.returncode != 0  # the flow fails: broken raises
    # the print is on the console once (standard output), not again as a log line
    assert done.stdout.count("printed by chatty") == 1 and "printed by chatty" not in done.stderr

    code, out, err = finish(follower)
    assert code == 0, err
    followed = [json.loads(line) for line in out.splitlines()]
    client = Client(server.url, server.token_a)
    stored = client.get_flow_run_logs(run_id, limit=10_000, after_id=0)
    assert [r["id"] for r in followed] == [r["id"] for r in stored]  # --follow printed every record, once

    tasks = {t.task_slug.split("-")[0]: t.id for t in client.get_flow_run_task_runs(run_id)}
    lines = [r for r in stored if r["message"].startswith("line ")]
    assert [r["message"] for r in lines] == [f"line {i}" for i in range(LINES)]
    assert {r["task_run_id"] for r in lines} == {tasks["chatty"]} and {r["task"] for r in followed if r["message"] == "line 0"} == {"chatty-1"}
    printed = [r for r in stored if r["message"] == "printed by chatty"]
    assert [(r["level"], r["task_run_id"]) for r in printed] == [("INFO", tasks["chatty"])]
    warned = [r for r in stored if r["name"] == "py.warnings"]
    assert len(warned) == 1 and "careful now" in warned[0]["message"] and warned[0]["level"] == "WARNING"
    tracebacks = [r for r in stored if "Traceback" in r["message"]]
    assert len(tracebacks) == 1 and "ValueError: boom in broken" in tracebacks[0]["message"]
    assert tracebacks[0]["level"] == "ERROR" and tracebacks[0]["task_run_id"] == tasks["broken"]
    assert any(r["task_run_id"] is None and "Flow run FAILED" in r["message"] for r in stored)  # the flow runner's

    code, out, err = finish(watcher)
    assert code == 1, err  # the run failed
    assert "task chatty-1" in out and "Failed" in out and out.rstrip().endswith(f"Flow run {run_id} ended Failed")

    # filters of `runs logs`
    only_errors = runwright(env, "runs", "logs", run_id, "--level", "error", "--task", "broken")
    assert only_errors.returncode == 0, only_errors.stderr
    assert "boom in broken" in only_errors.stdout and "line 0" not in only_errors.stdout
    bad = runwright(env, "runs", "logs", run_id, "--level", "LOUD")
    assert bad.returncode == 2 and "LOUD" in bad.stderr and "Traceback" not in bad.stderr

    # `runs` filters and `flows`
    failed = json.loads(runwright(env, "runs", "--flow", name, "--state", "Failed", "--json").stdout)
    assert [r["id"] for r in failed] == [run_id]
    assert json.loads(runwright(env, "runs", "--flow", name, "--state", "Success", "--json").stdout) == []
    wrong = runwright(env, "runs", "--state", "Happy")
    assert wrong.returncode == 1 and "not a state type" in wrong.stderr and "Traceback" not in wrong.stderr
    flows = {f["name"]: f for f in json.loads(runwright(env, "flows", "--json").stdout)}
    assert flows[name]["run_count"] == 1 and flows[name]["last_run"]["state_type"] == "Failed"
    assert name in runwright(env, "flows").stdout


def test_logs_and_events_of_another_tenants_run_are_not_found(
    server: TestServer, env: dict[str, str], flow_file: tuple[Path, str]
) -> None:
    path, _ = flow_file
    run_id = runwright(env, "runs", "create", str(path), "--param", "n=3").stdout.strip()
    assert runwright(env, "run", str(path), "--flow-run-id", run_id).returncode != 0
    assert Client(server.url, server.token_a).get_flow_run_logs(run_id)
    other = dict(env, RUNWRIGHT__CLOUD__API_TOKEN=server.token_b)
    for command in (("runs", "logs", run_id), ("runs", "watch", run_id)):
        done = runwright(other, *command)
        assert done.returncode == 1 and "Not found" in done.stderr and "line" not in done.stdout, command


def test_a_full_log_queue_drops_records_and_the_run_says_how_many(server: TestServer, env: dict[str, str], flow_file: tuple[Path, str]) -> None:
    path, _ = flow_file
    run_id = runwright(env, "runs", "create", str(path), "--param", "n=5000").stdout.strip()
    small = dict(env, RUNWRIGHT__CLOUD__LOG_QUEUE_SIZE="100")
    started = time.monotonic()
    assert runwright(small, "run", str(path), "--flow-run-id", run_id).returncode != 0
    assert time.monotonic() - started < 60
    stored = Client(server.url, server.token_a).get_flow_run_logs(run_id, limit=10_000, after_id=0)
    lines = [r for r in stored if r["message"].startswith("line ")]
    notices = [r for r in stored if "were not shipped" in r["message"]]
    dropped = sum(int(r["message"].split()[0]) for r in notices)
    assert notices and all(r["level"] == "WARNING" for r in notices)
    # every record is either on the server or counted
    assert len(lines) + dropped >= 5000 and len(lines) < 5000



def test_the_final_state_is_written_only_after_the_logs_are_on_the_server(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Observed at the moment the runner sends the final state (a spy around the client's
    state write; the write itself goes through): every record logged so far is stored."""
    from runwright import Flow, get_run_logger, task
    from runwright.config import temporary_config
    from runwright_cloud import CloudFlowRunner

    @task
    def noisy() -> int:
        for i in range(LINES):
            get_run_logger().info("record %d", i)
        return 1

    with Flow(unique("final")) as flow:
        noisy()
    reader = Client(server.url, server.token_a)
    seen_at_final: list[int] = []
    send = Client.set_flow_run_state

    def observed(self: Client, flow_run_id: str, version: int, state: Any, **kwargs: Any) -> int:
        if state.get("type") in ("Success", "Failed"):
            seen_at_final.append(len(reader.get_flow_run_logs(flow_run_id, limit=10_000, after_id=0)))
        return send(self, flow_run_id, version, state, **kwargs)

    monkeypatch.setattr(Client, "set_flow_run_state", observed)
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        state = flow.run(runner_cls=CloudFlowRunner)
    assert state.is_successful()
    run_id = reader.list_flow_runs(flow=flow.name)[0]["id"]
    stored = reader.get_flow_run_logs(run_id, limit=10_000, after_id=0)
    assert sum(r["message"].startswith("record ") for r in stored) == LINES
    before_final = [r for r in stored if "Flow run SUCCESS" in r["message"]]
    assert before_final and seen_at_final
    assert seen_at_final[0] >= stored.index(before_final[0]) + 1 >= LINES


def test_records_of_tasks_on_dask_worker_processes_are_shipped_from_the_workers(server: TestServer) -> None:
    import logging
    import warnings

    distributed = pytest.importorskip("distributed")
    runwright_dask = pytest.importorskip("runwright_dask")
    from runwright import Flow, get_run_logger, task
    from runwright.config import temporary_config
    from runwright_cloud import CloudFlowRunner

    @task
    def items() -> list[int]:
        return [0, 1, 2, 3]

    @task(log_stdout=True)
    def work(x: int) -> int:
        for i in range(50):
            get_run_logger().info("child %d record %d", x, i)
        print(f"child {x} pid {os.getpid()}")
        return x

    with Flow(unique("dask-logs")) as flow:
        work.map(items())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    try:
        with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
            state = flow.run(runner_cls=CloudFlowRunner, executor=runwright_dask.DaskExecutor(cluster.scheduler_address))
    finally:
        cluster.close()
    assert state.is_successful()
    reader = Client(server.url, server.token_a)
    run_id = reader.list_flow_runs(flow=flow.name)[0]["id"]
    stored = reader.get_flow_run_logs(run_id, limit=10_000, after_id=0)
    children = {t.map_index: t.id for t in reader.get_flow_run_task_runs(run_id) if t.task_slug.startswith("work") and t.map_index >= 0}
    for x, task_run_id in children.items():
        mine = [r for r in stored if r["task_run_id"] == task_run_id]
        assert [r["message"] for r in mine if "record" in r["message"]] == [f"child {x} record {i}" for i in range(50)]
        printed = [r["message"] for r in mine if r["message"].startswith(f"child {x} pid")]
        assert len(printed) == 1 and int(printed[0].split()[-1]) != os.getpid()  # logged in a worker process
