"""Plugins' hooks fire where the task runs: on the Dask workers, in every worker process."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

from runwright import Flow, task
from runwright_dask import DaskExecutor

HookLines = Callable[[str], list[tuple[int, str, str, str, str]]]


def _w2_flow(prefix: str, n: int) -> Flow:
    @task(name=f"{prefix}root")
    def root() -> list[int]:
        return list(range(n))

    @task(name=f"{prefix}child")
    def child(x: int) -> int:
        return x + 1

    @task(name=f"{prefix}reduce", cache_for=datetime.timedelta(minutes=1))
    def reduce(xs: list[int]) -> int:
        return sum(xs)

    with Flow(prefix) as flow:
        reduce(child.map(root()))
    return flow


def _expected_names(prefix: str, n: int) -> set[str]:
    return {f"{prefix}root", f"{prefix}child", f"{prefix}reduce"} | {f"{prefix}child[{i}]" for i in range(n)}


def test_state_change_hooks_fire_in_worker_processes(process_cluster: str, hook_lines: HookLines) -> None:
    state = _w2_flow("hooks-proc-", 12).run(executor=DaskExecutor(process_cluster, map_chunk_size=2))
    assert state.is_successful(), state

    lines = hook_lines("hooks-proc-")
    assert {name for _, _, name, _, _ in lines} == _expected_names("hooks-proc-", 12)
    pids = {pid for pid, *_ in lines}
    assert os.getpid() not in pids, "a state-change hook fired in the test process, not on a worker"
    for name in _expected_names("hooks-proc-", 12) - {"hooks-proc-child"}:
        transitions = [(old, new) for _, _, n, old, new in lines if n == name]
        assert ("Pending", "Running") in transitions, name
        assert ("Running", "Success") in transitions, name
    parent = [(old, new) for _, _, n, old, new in lines if n == "hooks-proc-child"]
    assert ("Pending", "Mapped") in parent
    initialized = {name for _, _, name, old, _ in lines if old == "<initialize>"}
    assert initialized == _expected_names("hooks-proc-", 12)
    assert [name for _, _, name, old, _ in lines if old == "<cache check>"] == ["hooks-proc-reduce"]


def test_state_change_hooks_fire_in_worker_threads(thread_cluster: str, hook_lines: HookLines) -> None:
    state = _w2_flow("hooks-thread-", 6).run(executor=DaskExecutor(thread_cluster))
    assert state.is_successful(), state

    lines = hook_lines("hooks-thread-")
    assert {name for _, _, name, _, _ in lines} == _expected_names("hooks-thread-", 6)
    assert all("Dask-Default-Threads" in thread for _, thread, *_ in lines)


def test_a_task_run_lost_with_its_worker_is_recorded_through_the_task_run_hooks(
    process_cluster: str, hook_recorder: Any
) -> None:
    """The client records a killed worker's task run through the normal task-run path:
    initialize, state change(s) and end fire in this process, ending Failed."""

    @task(name="hooks-lost-killer")
    def killer() -> int:
        os._exit(1)

    with Flow("hooks-lost") as flow:
        killed = killer()
    state = flow.run(executor=DaskExecutor(process_cluster))

    assert state.result[killed].is_failed() and "worker died" in state.result[killed].message

    def of(name: str) -> list[Any]:
        return [c for c in hook_recorder.calls_of(name) if c.kwargs["task"].name == "hooks-lost-killer"]

    # twice: the first loss (it might have been another task's doing), then alone
    initialized = of("runwright_task_run_initialize")
    assert len(initialized) == 2 and all(c.kwargs["setup"].lost is not None for c in initialized)
    changes = [(type(c.kwargs["old_state"]).__name__, type(c.kwargs["new_state"]).__name__) for c in of("runwright_task_state_change")]
    assert changes == [("Pending", "Retrying"), ("Retrying", "Failed")]
    ends = [type(c.kwargs["state"]).__name__ for c in of("runwright_task_run_end")]
    assert ends == ["Retrying", "Failed"]
