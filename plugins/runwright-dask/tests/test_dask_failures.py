"""Failures on workers end as Failed task states, honour retries and never hang the run."""

from __future__ import annotations

import datetime
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from runwright import Flow, task, triggers
from runwright.engine.state import Failed, Mapped, TriggerFailed
from runwright_dask import DaskExecutor

pytestmark = pytest.mark.timeout(60)


def _attempt(marker_dir: Path, name: str) -> int:
    """Count this attempt (across processes); return its number, from 1."""
    (marker_dir / f"{name}-{uuid.uuid4().hex}").touch()
    return len(list(marker_dir.glob(f"{name}-*")))


def test_exception_on_worker_is_a_failed_state_and_downstream_trigger_fails(cluster_address: str) -> None:
    @task
    def broken() -> int:
        raise ValueError("boom on a worker")

    @task
    def after(x: int) -> int:
        return x

    with Flow("dask-exception") as flow:
        b = broken()
        a = after(b)

    state = flow.run(executor=DaskExecutor(cluster_address))

    assert state.is_failed()
    assert isinstance(state.result[b], Failed)
    assert "boom on a worker" in state.result[b].message
    assert isinstance(state.result[b].result, ValueError)
    assert isinstance(state.result[a], TriggerFailed)


def test_retries_on_a_worker_then_success(cluster_address: str, marker_dir: Path) -> None:
    @task(max_retries=2, retry_delay=datetime.timedelta(seconds=0.1))
    def flaky() -> int:
        attempt = _attempt(marker_dir, "flaky")
        if attempt < 3:
            raise RuntimeError(f"attempt {attempt} fails")
        return attempt

    with Flow("dask-retries") as flow:
        f = flaky()

    state = flow.run(executor=DaskExecutor(cluster_address))

    assert state.is_successful(), state
    assert state.result[f].result == 3


def test_reducer_waits_for_every_retried_child(cluster_address: str, marker_dir: Path) -> None:
    @task
    def items() -> list[int]:
        return list(range(8))

    @task(max_retries=1, retry_delay=datetime.timedelta(seconds=0.3))
    def child(x: int) -> int:
        if x % 3 == 0 and _attempt(marker_dir, f"child{x}") == 1:
            raise RuntimeError("first attempt fails")
        return x * 10

    @task
    def total(xs: list[int]) -> list[int]:
        return xs

    with Flow("dask-reducer-retries") as flow:
        out = total(child.map(items()))

    state = flow.run(executor=DaskExecutor(cluster_address, map_chunk_size=1))

    assert state.is_successful(), state
    assert state.result[out].result == [x * 10 for x in range(8)]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_worker_fails_the_task_and_the_run_ends(process_cluster: str) -> None:
    @task
    def killer() -> int:
        _die()
        return 1

    @task
    def after(x: int) -> int:
        return x

    @task(trigger=triggers.always_run)
    def cleanup(x: int) -> str:
        return "cleaned"

    with Flow("dask-killed") as flow:
        k = killer()
        a = after(k)
        c = cleanup(a)

    started = time.monotonic()
    state = flow.run(executor=DaskExecutor(process_cluster))

    assert time.monotonic() - started < 30
    assert state.is_failed() or state.is_successful()
    killed = state.result[k]
    assert isinstance(killed, Failed)
    assert "worker died" in killed.message and "killer" in killed.message
    assert isinstance(state.result[a], TriggerFailed)
    assert state.result[c].result == "cleaned"


def test_killed_worker_is_retried_as_max_retries_allow(process_cluster: str, marker_dir: Path) -> None:
    @task(max_retries=1, retry_delay=datetime.timedelta(seconds=0.1))
    def dies_once() -> int:
        if _attempt(marker_dir, "dies_once") == 1:
            _die()
        return os.getpid()

    @task
    def after(pid: int) -> int:
        return pid

    with Flow("dask-killed-retry") as flow:
        a = after(dies_once())

    state = flow.run(executor=DaskExecutor(process_cluster))

    assert state.is_successful(), state
    assert len(list(marker_dir.glob("dies_once-*"))) == 2
    assert state.result[a].result != os.getpid()


def test_killed_mapped_child_fails_alone(process_cluster: str, marker_dir: Path) -> None:
    @task
    def items() -> list[int]:
        return list(range(6))

    @task
    def child(x: int) -> int:
        _attempt(marker_dir, f"kid{x}")
        if x == 3:
            _die()
        return x

    @task(trigger=triggers.always_run)
    def total(xs: list[object]) -> int:
        return sum(x for x in xs if isinstance(x, int))

    with Flow("dask-killed-child") as flow:
        children = child.map(items())
        out = total(children)

    # all six children in one Dask task: the lost chunk is run again child by child
    state = flow.run(executor=DaskExecutor(process_cluster, map_chunk_size=6))

    mapped = state.result[children]
    assert isinstance(mapped, Mapped)
    kinds = [type(s).__name__ for s in mapped.map_states]
    assert kinds == ["Success", "Success", "Success", "Failed", "Success", "Success"]
    assert "child[3]" in mapped.map_states[3].message and "worker died" in mapped.map_states[3].message
    assert state.result[out].result == 0 + 1 + 2 + 4 + 5
    assert state.is_successful()  # the reference (terminal) task is the always_run reducer


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_only_the_task_that_kills_its_worker_fails(process_cluster_2x2: str, marker_dir: Path) -> None:
    """Independent tasks and their dependants share the workers with one that kills its
    worker once every independent task has finished (some of them on that worker, their
    states possibly on the way): only the culprit fails, every other task keeps its outcome.
    Two threads a worker: the killer, waiting, never holds up the tasks it waits for."""

    @task
    def killer() -> int:
        _wait_until(lambda: all(list(marker_dir.glob(f"innocent{x}-*")) for x in range(4)), "the innocents")
        _die()
        return 1

    @task
    def innocent(x: int) -> int:
        _attempt(marker_dir, f"innocent{x}")
        return x

    @task
    def dependant(x: int) -> int:
        return 10 * x

    with Flow("dask-culprit") as flow:
        k = killer()
        others = [innocent(i) for i in range(4)]
        below = [dependant(o) for o in others]

    state = flow.run(executor=DaskExecutor(process_cluster_2x2))

    assert isinstance(state.result[k], Failed) and "worker died" in state.result[k].message
    assert [state.result[o].result for o in others] == [0, 1, 2, 3]
    assert [state.result[o].result for o in below] == [0, 10, 20, 30]
    assert all(state.result[o].is_successful() for o in [*others, *below])


def test_only_the_task_that_kills_its_worker_fails_while_others_run_beside_it(
    process_cluster_2x2: str, marker_dir: Path
) -> None:
    """Four slots, the killer and three innocents running at once: exactly one innocent runs
    beside the killer on the worker it kills. That one runs again; only the killer fails."""
    started, dying = marker_dir / "started", marker_dir / "dying"

    @task
    def innocent(x: int) -> int:
        _attempt(marker_dir, f"innocent{x}")
        started.joinpath(str(x)).touch()
        _wait_until(dying.exists, "the killer")  # still running when its neighbour dies
        return x

    @task
    def killer() -> int:
        _wait_until(lambda: len(list(started.iterdir())) == 3, "three innocents running")
        dying.touch()
        _die()
        return 1

    @task
    def dependant(x: int) -> int:
        return 10 * x

    started.mkdir()
    with Flow("dask-culprit-beside") as flow:
        k = killer()
        others = [innocent(i) for i in range(3)]
        below = [dependant(o) for o in others]

    state = flow.run(executor=DaskExecutor(process_cluster_2x2))

    assert isinstance(state.result[k], Failed) and "worker died" in state.result[k].message
    assert [state.result[o].result for o in others] == [0, 1, 2]
    assert [state.result[o].result for o in below] == [0, 10, 20]
    runs = sorted(len(list(marker_dir.glob(f"innocent{x}-*"))) for x in range(3))
    assert runs == [1, 1, 2], runs  # the one beside the killer ran again


def test_only_the_task_that_kills_its_worker_fails_beside_mapped_children_and_dependants(
    process_cluster_2x2: str, marker_dir: Path
) -> None:
    """Chunks of mapped children in flight on both workers, an independent task and its
    dependant, and a killer that kills its worker (and again when run alone): every child,
    the reducer and the dependant keep their outcome; the killer ran twice, then failed."""
    started, dying = marker_dir / "started", marker_dir / "dying"
    started.mkdir()

    @task
    def items() -> list[int]:
        return list(range(8))

    @task
    def child(x: int) -> int:
        (started / f"{x}-{uuid.uuid4().hex}").touch()
        _wait_until(dying.exists, "the killer")  # in flight when the killer's worker dies
        return 10 * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    @task
    def killer() -> int:
        (marker_dir / f"killer-{uuid.uuid4().hex}").touch()
        _wait_until(lambda: len({p.name.split("-")[0] for p in started.iterdir()}) >= 2, "children running")
        dying.touch()
        os.kill(os.getpid(), signal.SIGKILL)
        return 1

    @task
    def innocent() -> int:
        return 5

    @task
    def dependant(x: int) -> int:
        return x + 1

    with Flow("dask-culprit-busy") as flow:
        k = killer()
        children = child.map(items())
        out = total(children)
        d = dependant(innocent())

    state = flow.run(executor=DaskExecutor(process_cluster_2x2, map_chunk_size=2))

    assert isinstance(state.result[k], Failed) and "worker died" in state.result[k].message
    mapped = state.result[children]
    assert isinstance(mapped, Mapped)
    assert [s.result for s in mapped.map_states] == [10 * x for x in range(8)], mapped.map_states
    assert state.result[out].result == 280
    assert state.result[d].result == 6
    assert len(list(marker_dir.glob("killer-*"))) == 2  # its first run, then alone


def test_a_mapped_task_over_a_failed_upstream_is_trigger_failed(cluster_address: str) -> None:
    @task
    def extract() -> list[int]:
        raise ValueError("no data")

    @task
    def load(x: int) -> int:
        return x

    with Flow("dask-map-over-failed") as flow:
        loaded = load.map(extract())

    state = flow.run(executor=DaskExecutor(cluster_address))
    assert isinstance(state.result[loaded], TriggerFailed), state.result[loaded]
    assert "has no length" not in state.result[loaded].message
