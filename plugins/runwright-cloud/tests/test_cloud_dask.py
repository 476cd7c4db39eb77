"""Cloud runs on Dask worker processes: the workers report with what the run context carries."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from runwright import Flow, task
from runwright.config import temporary_config
from runwright.engine.state import Failed
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
        # a fresh map's child is created by its first write, on the worker: no Pending row
        assert [r["state"]["type"] for r in history] == ["Running", "Success"]
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
    first loss is not blamed) and Failed states, each saying the worker died. (The tests
    below add innocent tasks and dependants.)"""

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


def _append(path: Path, text: str) -> None:
    """One line per call, across processes (O_APPEND)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def fragile_cluster_2x2() -> Iterator[str]:
    """Two worker processes of two threads each; KilledWorker at once (no Dask retries)."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.CRITICAL,
        )
    try:
        yield local.scheduler_address
    finally:
        local.close()


def _run_cloud(server: TestServer, flow: Flow, address: str) -> tuple[Client, str, Any]:
    client = Client(server.url, server.token_a)
    structure = flow.structure()
    run_id = client.create_flow_run(client.register_flow(structure["name"], structure["tasks"], structure["edges"]))
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id}, executor=runwright_dask.DaskExecutor(address))
    return client, run_id, state


def _assert_recorded_once(client: Client, run_id: str, slug: str, final: str) -> None:
    """The server holds ``final`` as the run's state, and exactly one finished state."""
    runs = {(t.task_slug, t.map_index): t for t in client.get_flow_run_task_runs(run_id)}
    history = [r["state"]["type"] for r in client.get_task_run_states(runs[(slug, -1)].id)]
    finished = [t for t in history if t not in ("Pending", "Running", "Retrying", "Scheduled")]
    assert finished == [final], (slug, history)


def test_only_the_task_that_kills_its_worker_fails_while_others_run_beside_it(
    server: TestServer, fragile_cluster_2x2: str, tmp_path: Path
) -> None:
    """Four slots, the culprit and three innocents running at once: exactly one innocent runs
    beside the culprit on the worker it kills. That innocent is run again; every innocent and
    every dependant ends Success, recorded once; only the culprit fails."""
    started, dying = tmp_path / "started", tmp_path / "dying"

    @task
    def innocent(x: int) -> int:
        _append(started, f"{x} {os.getpid()}")
        _wait_until(dying.exists, "the culprit")  # still running when its neighbour dies
        return x

    @task
    def culprit() -> int:
        _wait_until(lambda: len({line.split()[0] for line in _lines(started)}) == 3, "three innocents running")
        dying.touch()
        os._exit(1)

    @task
    def dependant(x: int) -> int:
        return 10 * x

    with Flow(unique()) as flow:
        dead = culprit()
        firsts = [innocent(i) for i in range(3)]
        seconds = [dependant(f) for f in firsts]

    client, run_id, state = _run_cloud(server, flow, fragile_cluster_2x2)
    assert isinstance(state.result[dead], Failed) and "worker died" in state.result[dead].message
    assert [state.result[t].result for t in firsts] == [0, 1, 2], [state.result[t] for t in firsts]
    assert [state.result[t].result for t in seconds] == [0, 10, 20], [state.result[t] for t in seconds]
    killed_beside = [line for line in _lines(started) if int(line.split()[1]) != os.getpid()]
    assert len(killed_beside) == 4, _lines(started)  # one innocent ran twice: it shared the culprit's worker
    for t in [*firsts, *seconds]:
        _assert_recorded_once(client, run_id, t.slug, "Success")
    _assert_recorded_once(client, run_id, dead.slug, "Failed")


def _gone(pid: int) -> bool:
    """True once process ``pid`` has died (a zombie not reaped yet counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_a_finished_task_whose_state_dies_with_its_worker_keeps_its_server_state(
    server: TestServer, fragile_cluster_2x2: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An innocent finishes on the worker the culprit then kills, before its state reached
    the flow runner's process: the server holds its Success, which the run keeps (the body
    does not run again, nothing is written over it); its dependant gets its value.

    The link from the workers to this process is made slow on purpose (the one fault a real
    cluster does not produce on demand): the keeper fetches a finished state only once the
    culprit's worker is dead, so the state of the innocent that shared it is lost on the way."""
    from runwright_dask import keeping

    started, asked, dying = tmp_path / "started", tmp_path / "asked", tmp_path / "dying"
    keep, fetch = keeping.StateKeeper.keep, keeping.StateKeeper._fetch

    def keep_noted(self: Any, future: Any, done: Any) -> None:
        _append(asked, str(future.key))
        keep(self, future, done)

    def slow_fetch(self: Any, futures: list[Any]) -> Any:
        _wait_until(lambda: dying.exists() and bool(dying.read_text()) and _gone(int(dying.read_text())), "the culprit's death")
        return fetch(self, futures)

    monkeypatch.setattr(keeping.StateKeeper, "keep", keep_noted)
    monkeypatch.setattr(keeping.StateKeeper, "_fetch", slow_fetch)

    @task
    def innocent(x: int) -> int:
        _append(started, f"{x} {os.getpid()}")
        # four slots: the culprit and three innocents at once, so one innocent shares its worker
        _wait_until(lambda: len({line.split()[0] for line in _lines(started)}) >= 3, "three innocents running")
        return x

    @task
    def culprit() -> int:
        _wait_until(lambda: sum(line.startswith("innocent") for line in _lines(asked)) >= 3, "three innocents finished")
        tmp = dying.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(dying)
        os._exit(1)

    @task
    def dependant(x: int) -> int:
        return 10 * x

    with Flow(unique()) as flow:
        dead = culprit()
        firsts = [innocent(i) for i in range(3)]
        seconds = [dependant(f) for f in firsts]

    client, run_id, state = _run_cloud(server, flow, fragile_cluster_2x2)
    assert isinstance(state.result[dead], Failed) and "worker died" in state.result[dead].message
    assert [state.result[t].result for t in firsts] == [0, 1, 2], [state.result[t] for t in firsts]
    assert [state.result[t].result for t in seconds] == [0, 10, 20], [state.result[t] for t in seconds]
    culprit_pid = int(dying.read_text())
    assert sorted(line.split()[0] for line in _lines(started)) == ["0", "1", "2"], _lines(started)  # each ran once
    assert [line for line in _lines(started) if int(line.split()[1]) == culprit_pid], "no innocent shared the culprit's worker"
    for t in [*firsts, *seconds]:
        _assert_recorded_once(client, run_id, t.slug, "Success")
    _assert_recorded_once(client, run_id, dead.slug, "Failed")


def test_a_mapped_child_that_kills_its_worker_fails_alone_and_finished_children_keep_their_server_state(
    server: TestServer, fragile_cluster: str, tmp_path: Path
) -> None:
    """Six children in one Dask task (one chunk); child 3 kills its worker. Children 0-2 had
    finished inside the lost chunk: the server holds their Success, which they keep (their
    bodies do not run again); 4 and 5 never started and run once; only child 3 fails."""
    ran = tmp_path / "ran"

    @task
    def items() -> list[int]:
        return list(range(6))

    @task
    def child(x: int) -> int:
        _append(ran, str(x))
        if x == 3:
            os._exit(1)
        return x

    with Flow(unique()) as flow:
        children = child.map(items())

    client = Client(server.url, server.token_a)
    structure = flow.structure()
    run_id = client.create_flow_run(client.register_flow(structure["name"], structure["tasks"], structure["edges"]))
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        state = flow.run(
            runner_cls=CloudFlowRunner,
            context={"flow_run_id": run_id},
            executor=runwright_dask.DaskExecutor(fragile_cluster, map_chunk_size=6),
        )
    kinds = [type(s).__name__ for s in state.result[children].map_states]
    assert kinds == ["Success", "Success", "Success", "Failed", "Success", "Success"], kinds
    assert [s.result for i, s in enumerate(state.result[children].map_states) if i != 3] == [0, 1, 2, 4, 5]
    assert sorted(_lines(ran)) == ["0", "1", "2", "3", "3", "4", "5"], _lines(ran)  # only the culprit ran twice
    runs = {(t.task_slug, t.map_index): t for t in client.get_flow_run_task_runs(run_id)}
    for index in range(6):
        history = [r["state"]["type"] for r in client.get_task_run_states(runs[(children.slug, index)].id)]
        finished = [t for t in history if t not in ("Pending", "Running", "Retrying", "Scheduled")]
        assert finished == (["Failed"] if index == 3 else ["Success"]), (index, history)


def test_only_the_task_that_kills_its_worker_fails_beside_mapped_children_and_dependants(
    server: TestServer, fragile_cluster_2x2: str, tmp_path: Path
) -> None:
    """Chunks of mapped children in flight on both workers, an independent task and its
    dependant, and a culprit that kills its worker (and again when run alone): every child,
    the reducer and the dependant end Success, each recorded on the server exactly once."""
    started, dying = tmp_path / "started", tmp_path / "dying"

    @task
    def items() -> list[int]:
        return list(range(8))

    @task
    def child(x: int) -> int:
        _append(started, str(x))
        _wait_until(dying.exists, "the culprit")  # in flight when the culprit's worker dies
        return 10 * x

    @task
    def reducer(xs: list[int]) -> int:
        return sum(xs)

    @task
    def culprit() -> int:
        _wait_until(lambda: len(set(_lines(started))) >= 2, "children running")
        dying.touch()
        os._exit(1)

    @task
    def innocent() -> int:
        return 5

    @task
    def dependant(x: int) -> int:
        return x + 1

    with Flow(unique()) as flow:
        dead = culprit()
        children = child.map(items())
        out = reducer(children)
        after = dependant(innocent())

    client = Client(server.url, server.token_a)
    structure = flow.structure()
    run_id = client.create_flow_run(client.register_flow(structure["name"], structure["tasks"], structure["edges"]))
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        state = flow.run(
            runner_cls=CloudFlowRunner,
            context={"flow_run_id": run_id},
            executor=runwright_dask.DaskExecutor(fragile_cluster_2x2, map_chunk_size=2),
        )
    assert isinstance(state.result[dead], Failed) and "worker died" in state.result[dead].message
    assert [s.result for s in state.result[children].map_states] == [10 * x for x in range(8)]
    assert state.result[out].result == 280 and state.result[after].result == 6
    runs = {(t.task_slug, t.map_index): t for t in client.get_flow_run_task_runs(run_id)}
    for index in range(8):
        history = [r["state"]["type"] for r in client.get_task_run_states(runs[(children.slug, index)].id)]
        assert [t for t in history if t not in ("Pending", "Running", "Retrying", "Scheduled")] == ["Success"], (index, history)
    for t in (out, after):
        _assert_recorded_once(client, run_id, t.slug, "Success")
    _assert_recorded_once(client, run_id, dead.slug, "Failed")
