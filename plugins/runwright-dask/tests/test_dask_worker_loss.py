"""A finished task never runs twice: a worker that dies after a task run finished on it
loses that run's result, and Dask would compute it again; runwright refuses to and gives the
downstream runs the state it kept instead (real LocalCluster of worker processes)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from runwright import Flow, task
from runwright.engine.state import Mapped
from runwright_dask import DaskExecutor

pytestmark = pytest.mark.timeout(90)


def _append(path: Path, text: str) -> None:
    """One line per call, across processes (O_APPEND)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def _run_in_thread(flow: Flow, executor: DaskExecutor) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("state", flow.run(executor=executor)), daemon=True)
    thread.start()
    return thread, out


def _kill_worker_of(marker: Path) -> None:
    """SIGKILL the worker process that wrote ``marker`` (its first line is its pid)."""
    pid = int(marker.read_text().split()[0])
    time.sleep(0.5)  # the run's state has reached the client by now
    os.kill(pid, signal.SIGKILL)


def test_a_task_whose_worker_dies_after_it_finished_is_not_run_again(process_cluster: str, tmp_path: Path) -> None:
    ran = tmp_path / "upstream-ran"
    go = tmp_path / "go"

    @task
    def upstream() -> int:
        _append(ran, str(os.getpid()))
        return 21

    @task
    def downstream(x: int) -> int:
        _wait_for(go)  # runs (or waits in the queue) while the upstream's worker is killed
        return 2 * x

    with Flow("dask-lost-result") as flow:
        up = upstream()
        down = downstream(up)

    thread, out = _run_in_thread(flow, DaskExecutor(process_cluster))
    _wait_for(ran)
    _kill_worker_of(ran)
    go.touch()
    thread.join(60)
    state = out["state"]
    assert ran.read_text().count("\n") == 1, ran.read_text()  # the upstream body ran once
    assert state.result[up].is_successful() and state.result[up].result == 21  # type: ignore[attr-defined]
    assert state.result[down].is_successful(), state.result[down]  # type: ignore[attr-defined]
    assert state.result[down].result == 42  # type: ignore[attr-defined]


def test_mapped_children_whose_worker_dies_after_they_finished_are_not_run_again(process_cluster: str, tmp_path: Path) -> None:
    ran = tmp_path / "children-ran"
    go = tmp_path / "go"

    @task
    def items() -> list[int]:
        return [1, 2, 3, 4]

    @task
    def child(x: int) -> int:
        _append(ran, f"{os.getpid()} {x}")
        return 10 * x

    @task
    def total(xs: list[int]) -> int:
        _wait_for(go)
        return sum(xs)

    with Flow("dask-lost-children") as flow:
        children = child.map(items())
        result = total(children)

    thread, out = _run_in_thread(flow, DaskExecutor(process_cluster))
    _wait_for(ran)
    deadline = time.monotonic() + 30
    while ran.read_text().count("\n") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    _kill_worker_of(ran)
    go.touch()
    thread.join(60)
    state = out["state"]
    lines = ran.read_text().splitlines()
    assert sorted(int(line.split()[1]) for line in lines) == [1, 2, 3, 4], lines  # each child ran once
    mapped = state.result[children]  # type: ignore[attr-defined]
    assert isinstance(mapped, Mapped) and [s.result for s in mapped.map_states] == [10, 20, 30, 40]
    assert state.result[result].result == 100, state.result[result]  # type: ignore[attr-defined]
