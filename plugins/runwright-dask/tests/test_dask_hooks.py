"""Plugins' hooks fire where the task runs: on the Dask workers, in every worker process."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

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
