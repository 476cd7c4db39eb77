"""``get_flow_run_info`` / ``get_task_run_info`` return runwright ``State`` objects, as the
seed's client did; a state this client cannot rebuild is an ``UnknownState``, which a read
shows and a resume refuses with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runwright import Flow, task
from runwright.config import temporary_config
from runwright.engine.result import Result
from runwright.engine.state import Pending, Retrying, Running, Scheduled, Success
from runwright_cloud import CloudFlowRunner
from runwright_cloud.client import Client
from runwright_cloud.received_states import UnknownState
from runwright_local import LocalResultHandler
from runwright_server.db import make_engine
from runwright_server.testing import TestServer, unique


@pytest.fixture
def cloud(server: TestServer) -> Iterator[Client]:
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        yield Client(server.url, server.token_a)


def one_task_flow() -> Flow:
    @task
    def a() -> int:
        return 1

    with Flow(unique()) as flow:
        a()
    return flow


def create_run(client: Client, flow: Flow) -> str:
    structure = flow.structure()
    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
    return client.create_flow_run(flow_id)


def store_as_a_newer_runwright_would(db_url: str, task_run_id: str, state: dict[str, object]) -> None:
    """Write a task run's state straight into the server's database (a state type this
    runwright does not know cannot go through its server)."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE task_runs SET state = :state, state_type = :kind WHERE id = :id"),
                {"state": json.dumps(state), "kind": state["type"], "id": task_run_id},
            )
    finally:
        engine.dispose()


def test_infos_carry_state_objects_with_their_results(cloud: Client, tmp_path: Path) -> None:
    run_id = create_run(cloud, one_task_flow())
    info = cloud.get_flow_run_info(run_id)
    assert isinstance(info.state, Scheduled) and info.serialized_state["type"] == "Scheduled"
    assert [type(t.state) for t in info.task_runs] == [Pending]

    version = cloud.set_flow_run_state(run_id, info.version, Running("claimed"))
    task_run = cloud.get_task_run_info(run_id, "a-1")
    task_version = cloud.set_task_run_state(task_run.id, task_run.version, Running())
    result = Result({"rows": 3}, LocalResultHandler(dir=str(tmp_path)))
    cloud.set_task_run_state(task_run.id, task_version, Success("done", result=result))

    stored = cloud.get_task_run_info(run_id, "a-1").state
    assert isinstance(stored, Success) and stored.message == "done"
    assert stored._result.to_result().value == {"rows": 3}  # read back through its handler
    assert type(cloud.get_flow_run_info(run_id).state) is Running
    cloud.set_flow_run_state(run_id, version, Retrying("again", run_count=2))
    again = cloud.get_flow_run_info(run_id).state
    assert isinstance(again, Retrying) and again.run_count == 2


def test_a_state_this_client_cannot_read_is_shown_and_refused_on_resume(cloud: Client, server: TestServer) -> None:
    flow = one_task_flow()
    run_id = create_run(cloud, flow)
    task_run = cloud.get_task_run_info(run_id, "a-1")
    store_as_a_newer_runwright_would(server.db_url, task_run.id, {"type": "Frozen", "message": "kept for later"})

    read = cloud.get_task_run_info(run_id, "a-1").state
    assert isinstance(read, UnknownState) and (read.type_name, read.message) == ("Frozen", "kept for later")
    assert "Unknown state type 'Frozen'" in read.reason
    assert not read.is_finished() and not read.is_pending()
    assert isinstance(cloud.get_flow_run_info(run_id).task_runs[0].state, UnknownState)

    env = dict(os.environ, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a)
    shown = subprocess.run(
        [sys.executable, "-m", "runwright.cli", "runs", "show", run_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert any(line.split()[:3] == ["a-1", "Frozen", "kept"] for line in shown.stdout.splitlines()), shown.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "runwright.cli", "runs", "show", run_id, "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert json.loads(as_json.stdout)["task_runs"][0]["state"] == {"type": "Frozen", "message": "kept for later"}

    final = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert final.is_failed()
    assert "stored as a 'Frozen' state that this runwright cannot read" in str(final.message)
    assert "Install the runwright version" in str(final.message)


def test_a_result_handler_not_installed_here_keeps_the_state_type(cloud: Client) -> None:
    run_id = create_run(cloud, one_task_flow())
    task_run = cloud.get_task_run_info(run_id, "a-1")
    handler = {"type": "runwright_nowhere.handlers:Vault"}
    written = {"type": "Success", "message": "m", "_result": {"type": "SafeResult", "value": "v://1", "result_handler": handler}}
    cloud.set_task_run_state(task_run.id, task_run.version, written)

    read = cloud.get_task_run_info(run_id, "a-1")
    assert isinstance(read.state, UnknownState) and read.state.type_name == "Success"
    assert "runwright_nowhere.handlers:Vault cannot be imported here" in read.state.reason
    assert read.serialized_state == written
