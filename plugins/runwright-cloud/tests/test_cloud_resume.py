"""Resume: a flow-run process killed with SIGKILL and started again with the same flow run id
finishes without re-running any task that had finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runwright_cloud.client import Client
from runwright_server import migrate
from runwright_server.auth import create_token
from runwright_server.db import make_engine
from runwright_server.testing import ServerProcess, TestServer

FLOW = '''
import time
from pathlib import Path
from runwright import Flow, task

HERE = Path(__file__).parent


def mark(name):
    with open(HERE / f"{name}.count", "a") as f:
        f.write("x\\n")


@task
def a():
    mark("a")
    return 1


@task
def b(x):
    mark("b")
    return x + 1


@task
def c(x):
    mark("c")
    if not (HERE / "go").exists():
        time.sleep(60)  # killed here on the first run
    return x * 10


@task
def d(x):
    mark("d")
    return x + 1


with Flow("resume-FLOWNAME") as flow:
    d(c(b(a())))
'''


def counts(where: Path) -> dict[str, int]:
    return {
        name: len((where / f"{name}.count").read_text().splitlines()) if (where / f"{name}.count").exists() else 0
        for name in "abcd"
    }


def start_run(where: Path, url: str, token: str, run_id: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environ = dict(
        os.environ,
        RUNWRIGHT__CLOUD__API=url,
        RUNWRIGHT__CLOUD__API_TOKEN=token,
        RUNWRIGHT__CLOUD__AUTO_START="false",
        **env,
    )
    command = [sys.executable, "-m", "runwright.cli", "run", str(where / "flow.py"), "--flow-run-id", run_id, "--json", *args]
    return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_and_kill(where: Path, url: str, token: str, run_id: str) -> None:
    proc = start_run(where, url, token, run_id, RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2")
    try:
        deadline = time.monotonic() + 30
        while not (where / "c.count").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "task c never started"
            time.sleep(0.02)
        time.sleep(0.3)  # let the writer send b's Success
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


def create(client: Client, where: Path, name: str) -> str:
    (where / "flow.py").write_text(FLOW.replace("FLOWNAME", name))
    slugs = ["a-1", "b-1", "c-1", "d-1"]
    flow_id = client.register_flow(
        f"resume-{name}", [{"slug": s, "name": s[0]} for s in slugs],
        [{"upstream": u, "downstream": v, "key": "x", "mapped": False} for u, v in zip(slugs, slugs[1:], strict=False)],
    )
    return client.create_flow_run(flow_id)


def finish(where: Path, url: str, token: str, run_id: str, *args: str, **env: str) -> None:
    (where / "go").touch()
    proc = start_run(where, url, token, run_id, *args, **env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)


def test_a_killed_run_resumes_without_rerunning_finished_tasks(server: TestServer, tmp_path: Path) -> None:
    client = Client(server.url, server.token_a)
    run_id = create(client, tmp_path, "kill")
    run_and_kill(tmp_path, server.url, server.token_a, run_id)
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 1, "d": 0}
    states = {t.task_slug: type(t.state).__name__ for t in client.get_flow_run_task_runs(run_id)}
    assert states == {"a-1": "Success", "b-1": "Success", "c-1": "Running", "d-1": "Pending"}

    time.sleep(0.6)  # c's heartbeat is now older than the zombie timeout below
    finish(tmp_path, server.url, server.token_a, run_id, RUNWRIGHT__CLOUD__ZOMBIE_TIMEOUT="0.5")
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 2, "d": 1}
    info = client.get_flow_run_info(run_id)
    assert type(info.state).__name__ == "Success"
    c_run = next(t for t in client.get_flow_run_task_runs(run_id) if t.task_slug == "c-1")
    assert [r["state"]["type"] for r in client.get_task_run_states(c_run.id)] == ["Pending", "Running", "Running", "Success"]


def held_elsewhere(server: TestServer, run_id: str) -> None:
    """Make the flow run's lease holder a runner on another host (not provably gone)."""
    engine = sa.create_engine(server.db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE flow_runs SET lease_holder = 'elsewhere.invalid:4242' WHERE id = :id"), {"id": run_id})
    engine.dispose()


def test_a_running_task_run_with_a_fresh_heartbeat_is_left_to_its_runner(server: TestServer, tmp_path: Path) -> None:
    client = Client(server.url, server.token_a)
    run_id = create(client, tmp_path, "fresh")
    run_and_kill(tmp_path, server.url, server.token_a, run_id)
    held_elsewhere(server, run_id)  # a runner on this host whose process is gone is taken over at once
    (tmp_path / "go").touch()
    proc = start_run(tmp_path, server.url, server.token_a, run_id)  # default zombie timeout: 120 s
    proc.communicate(timeout=60)
    assert proc.returncode == 1  # the flow run cannot finish while c belongs to another runner
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 1, "d": 0}


def test_a_run_resumes_at_once_after_its_runner_was_killed(server: TestServer, tmp_path: Path) -> None:
    client = Client(server.url, server.token_a)
    run_id = create(client, tmp_path, "at-once")
    run_and_kill(tmp_path, server.url, server.token_a, run_id)
    started = time.monotonic()
    finish(tmp_path, server.url, server.token_a, run_id)  # default zombie timeout (120 s), no waiting
    assert time.monotonic() - started < 60
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"


def test_a_run_held_by_a_runner_elsewhere_is_refused_naming_take_over(server: TestServer, tmp_path: Path) -> None:
    client = Client(server.url, server.token_a)
    run_id = create(client, tmp_path, "elsewhere")
    run_and_kill(tmp_path, server.url, server.token_a, run_id)
    held_elsewhere(server, run_id)
    (tmp_path / "go").touch()
    proc = start_run(tmp_path, server.url, server.token_a, run_id)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    text = (out + err).decode()
    assert "being run by another runner (elsewhere.invalid:4242)" in text and "--take-over" in text, text
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 1, "d": 0}
    finish(tmp_path, server.url, server.token_a, run_id, "--take-over")
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"


@pytest.fixture
def sweeping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('sweep') / 'server.db'}"
    engine = make_engine(db)
    migrate.upgrade(engine)
    token = create_token(engine, "sweep")
    engine.dispose()
    proc = ServerProcess(db, extra_args=["--zombie-timeout", "1", "--sweep-interval", "0.2"]).start()
    try:
        yield proc.url, token
    finally:
        proc.stop()


def test_runs_the_sweeper_failed_for_lost_heartbeats_run_again(sweeping_server: tuple[str, str], tmp_path: Path) -> None:
    url, token = sweeping_server
    client = Client(url, token)
    run_id = create(client, tmp_path, "sweep")
    run_and_kill(tmp_path, url, token, run_id)
    deadline = time.monotonic() + 15
    while True:
        info = client.get_flow_run_info(run_id)
        c_state = next(t for t in client.get_flow_run_task_runs(run_id) if t.task_slug == "c-1").state
        if type(info.state).__name__ == "Failed" and type(c_state).__name__ == "Failed":
            break
        assert time.monotonic() < deadline, "the sweeper did not fail the zombie runs"
        time.sleep(0.1)
    assert (c_state.message or "").startswith("no heartbeat")
    finish(tmp_path, url, token, run_id)
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"
