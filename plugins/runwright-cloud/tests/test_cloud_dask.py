"""Cloud runs on Dask worker processes: the workers report with what the run context carries."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator

import cloudpickle
import pytest

from runwright import Flow, task
from runwright.config import temporary_config
from runwright_cloud import CloudFlowRunner
from runwright_cloud.client import Client, TaskRunInfo
from runwright_cloud.reporting import ChildRuns
from runwright_cloud.result_handler import CloudResultHandler
from runwright_server.testing import TestServer, unique

distributed = pytest.importorskip("distributed")
runwright_dask = pytest.importorskip("runwright_dask")


@task
def numbers() -> list[int]:
    return [1, 2, 3, 4]

@task
def square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x

@task
def total(pairs: list[tuple[int, int]]) -> int:
    return sum(value for _, value in pairs)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.CRITICAL,
        )
    try:
        yield local.scheduler_address
    finally:
        local.close()


def test_mapped_children_on_worker_processes_are_reported(server: TestServer, cluster: str) -> None:
    with Flow(unique()) as flow:
        result = total(square.map(numbers()))
    client = Client(server.url, server.token_a)
    structure = flow.structure()
    run_id = client.create_flow_run(client.register_flow(structure["name"], structure["tasks"], structure["edges"]))
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        state = flow.run(
            runner_cls=CloudFlowRunner,
            context={"flow_run_id": run_id},
            executor=runwright_dask.DaskExecutor(cluster),
        )
    assert state.is_successful() and state.result[result].result == 30
    runs = client.get_flow_run_task_runs(run_id)
    children = [t for t in runs if t.task_slug == "square-1" and t.map_index >= 0]
    assert sorted(t.map_index for t in children) == [0, 1, 2, 3]
    for child in children:
        history = client.get_task_run_states(child.id)
        assert [r["state"]["type"] for r in history][1:] == ["Running", "Success"]
        # stored with the run's server and token from the context: the workers have no [cloud] config
        stored = history[-1]["state"]["_result"]
        assert stored["type"] == "SafeResult" and stored["value"].startswith("rwcloud://"), stored
        with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a}):
            assert CloudResultHandler().read(stored["value"])[1] == (child.map_index + 1) ** 2
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"


def test_the_children_runs_fetched_by_the_parent_travel_to_the_workers() -> None:
    runs = {i: TaskRunInfo(f"id-{i}", "square-1", i, 1, {"type": "Pending"}) for i in range(3)}
    travelled = cloudpickle.loads(cloudpickle.dumps(ChildRuns("square-1", runs)))
    assert isinstance(travelled, ChildRuns) and travelled.slug == "square-1" and travelled == runs


@pytest.fixture(scope="module")
def fragile_cluster() -> Iterator[str]:
    """Two worker processes; a task whose worker dies is KilledWorker at once (no Dask
    retries), so runwright's own retry decision applies."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.CRITICAL,
        )
    try:
        yield local.scheduler_address
    finally:
        local.close()


def test_a_task_run_lost_with_its_worker_is_reported(server: TestServer, fragile_cluster: str) -> None:  # type: ignore[no-untyped-def]
    """A task that kills its worker process (os._exit) is recorded by the client through the
    normal task-run path (initialize, state change, end): the server gets its Retrying (a
    first loss is not blamed) and Failed states, each saying the worker died.

    One task alone: with several, a task whose finished state or whose run's shared runner
    died with the worker before reaching this process can fail too under the cloud backend
    (docs/dask.md, "Known limit")."""

    @task
    def always_dies() -> int:
        os._exit(1)

    with Flow(unique()) as flow:
        dead = always_dies()
    client = Client(server.url, server.token_a)
    structure = flow.structure()
    run_id = client.create_flow_run(client.register_flow(structure["name"], structure["tasks"], structure["edges"]))
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        state = flow.run(
            runner_cls=CloudFlowRunner,
            context={"flow_run_id": run_id},
            executor=runwright_dask.DaskExecutor(fragile_cluster),
        )
    assert state.is_failed() and "worker died" in state.result[dead].message
    runs = {(t.task_slug, t.map_index): t for t in client.get_flow_run_task_runs(run_id)}
    history = [r["state"] for r in client.get_task_run_states(runs[(dead.slug, -1)].id)]
    # a worker's queued claim to Running may die with it: only the client's records count here
    assert [s["type"] for s in history if s["type"] != "Running"] == ["Pending", "Retrying", "Failed"]
    assert all("worker died" in s["message"] for s in history if s["type"] in ("Retrying", "Failed"))
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Failed"
