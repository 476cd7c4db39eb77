"""The zombie sweeper, on a server with a 1 s heartbeat timeout set through the environment."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from runwright_server import migrate
from runwright_server.auth import create_token
from runwright_server.db import make_engine
from runwright_server.testing import ServerProcess, TestServer


@pytest.fixture(scope="module")
def zombie_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestServer, requests.Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('zombie') / 'z.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    token = create_token(engine, "z")
    engine.dispose()
    env = {"RUNWRIGHT__SERVER__ZOMBIE_TIMEOUT": "1", "RUNWRIGHT__SERVER__SWEEP_INTERVAL": "0.2"}
    proc = ServerProcess(url, env=env).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        yield TestServer(proc.url, url, token, token, token, proc, 0), session
    finally:
        session.close()
        proc.stop()


def test_running_runs_without_heartbeat_fail(zombie_server: tuple[TestServer, requests.Session]) -> None:
    srv, s = zombie_server
    api = srv.api
    dead, alive = srv.make_run(s), srv.make_run(s)
    dead_task = dead["task_runs"][0]["id"]
    for run in (dead, alive):
        assert s.post(f"{api}/flow_runs/{run['id']}/state", json={"version": 0, "state": {"type": "Running"}}).ok
    assert s.post(f"{api}/task_runs/{dead_task}/state", json={"version": 0, "state": {"type": "Running"}}).ok
    pending_task = dead["task_runs"][1]["id"]
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        s.post(f"{api}/flow_runs/{alive['id']}/heartbeat")
        time.sleep(0.2)

    run = s.get(f"{api}/flow_runs/{dead['id']}").json()
    assert run["state"] == {"type": "Failed", "message": "no heartbeat for 1 s"}
    assert run["version"] == 2
    assert [h["state"]["type"] for h in s.get(f"{api}/flow_runs/{dead['id']}/states").json()] == [
        "Scheduled",
        "Running",
        "Failed",
    ]
    task = s.get(f"{api}/task_runs/{dead_task}").json()
    assert task["state"]["type"] == "Failed" and task["version"] == 2
    assert s.get(f"{api}/task_runs/{pending_task}").json()["state"]["type"] == "Pending"  # only Running fails
    assert s.get(f"{api}/flow_runs/{alive['id']}").json()["state"]["type"] == "Running"
    # the runner that comes back is told it lost the run
    late = s.post(f"{api}/flow_runs/{dead['id']}/state", json={"version": 1, "state": {"type": "Success"}})
    assert late.status_code == 409 and late.json()["current_state"]["type"] == "Failed"
    # a resuming runner claims the swept runs straight back to Running (no other finished
    # state allows that); the Running it writes is version-checked like any write
    assert s.post(f"{api}/flow_runs/{dead['id']}/state", json={"version": 2, "state": {"type": "Running"}}).ok
    assert s.post(f"{api}/task_runs/{dead_task}/state", json={"version": 2, "state": {"type": "Running"}}).ok


def test_runs_of_a_vanished_agent_go_back_to_scheduled(zombie_server: tuple[TestServer, requests.Session]) -> None:
    """A Submitted run whose agent stopped polling, and a Running run of a deployment whose
    heartbeat stopped, are scheduled again for another agent (not failed)."""
    from runwright_server.testing.orchestration import insert_deployment, queue_run

    srv, s = zombie_server
    api = srv.api
    flow = srv.make_flow(s)
    engine = make_engine(srv.db_url)
    from sqlalchemy import select

    from runwright_server import models

    with engine.connect() as conn:
        tenant = conn.execute(select(models.tenants.c.name)).scalars().first()
    engine.dispose()
    dep = insert_deployment(srv.db_url, tenant, flow["id"], queue="zq")
    runs = [s.post(f"{api}/flow_runs", json={"flow_id": flow["id"]}).json() for _ in range(2)]
    for run in runs:
        queue_run(srv.db_url, run["id"], dep, "zq")
    agent = s.post(f"{api}/agents", json={"queues": ["zq"]}).json()["id"]
    claimed = s.post(f"{api}/agents/{agent}/poll", json={"queues": ["zq"], "free_slots": 2, "wait_seconds": 0}).json()
    assert len(claimed["claimed"]) == 2
    started = runs[1]["id"]
    assert s.post(f"{api}/flow_runs/{started}/state", json={"version": 1, "state": {"type": "Running"}}).ok
    time.sleep(2.5)  # neither the agent nor the run's runner is heard from
    for run in runs:
        got = s.get(f"{api}/flow_runs/{run['id']}").json()
        assert got["state"]["type"] == "Scheduled", got["state"]
    history = [h["state"]["type"] for h in s.get(f"{api}/flow_runs/{started}/states").json()]
    assert history == ["Scheduled", "Submitted", "Running", "Scheduled"]
    other = s.post(f"{api}/agents", json={"queues": ["zq"]}).json()["id"]
    again = s.post(f"{api}/agents/{other}/poll", json={"queues": ["zq"], "free_slots": 2, "wait_seconds": 0}).json()
    assert sorted(c["flow_run"]["id"] for c in again["claimed"]) == sorted(r["id"] for r in runs)
