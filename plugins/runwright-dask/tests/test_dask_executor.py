"""The dask executor runs flows on real LocalClusters: results, mapping, selection by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runwright import Flow, task
from runwright.config import temporary_config
from runwright.engine.state import Mapped
from runwright.plugins import get_plugin_manager
from runwright_dask import DaskExecutor


def _where() -> str:
    from distributed import get_worker

    return f"{os.getpid()}:{get_worker().address}"


def test_dask_is_a_registered_executor_name() -> None:
    assert get_plugin_manager().executor_class("dask") is DaskExecutor


def test_mapped_flow_gives_the_right_results_on_workers(cluster_address: str) -> None:
    offsets = {"base": 10}  # a closure over a local dict travels with cloudpickle

    @task
    def numbers(n: int) -> list[int]:
        return list(range(n))

    @task
    def shift(x: int) -> tuple[int, str]:
        return x + offsets["base"], _where()

    @task
    def total(pairs: list[tuple[int, str]]) -> int:
        return sum(value for value, _ in pairs)

    with Flow("dask-w2") as flow:
        children = shift.map(numbers(50))
        result = total(children)

    state = flow.run(executor=DaskExecutor(cluster_address))

    assert state.is_successful(), state
    assert state.result[result].result == sum(range(50)) + 50 * 10
    mapped = state.result[children]
    assert isinstance(mapped, Mapped) and len(mapped.map_states) == 50
    assert all(child.is_successful() for child in mapped.map_states)
    places = {where for _, where in mapped.result}
    assert all(place.split(":", 1)[1] for place in places)  # every child ran on a worker


def test_chained_maps_and_unmapped_fan_in(cluster_address: str) -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3, 4]

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def collect(xs: list[int], ys: list[int]) -> tuple[list[int], list[int]]:
        return xs, ys

    with Flow("dask-chained") as flow:
        doubled = double.map(numbers())
        quadrupled = double.map(doubled)
        summed = add.map(doubled, quadrupled)
        out = collect(summed, quadrupled)

    state = flow.run(executor=DaskExecutor(cluster_address, map_chunk_size=3))

    assert state.is_successful(), state
    assert state.result[out].result == ([6, 12, 18, 24], [4, 8, 12, 16])


def test_mapped_children_run_in_parallel(process_cluster: str) -> None:
    @task
    def items() -> list[int]:
        return [0, 1, 2, 3]

    @task
    def slow(x: int) -> int:
        time.sleep(0.6)
        return os.getpid()

    with Flow("dask-parallel") as flow:
        pids = slow.map(items())

    flow.run(executor=DaskExecutor(process_cluster, map_chunk_size=1))  # warm the workers
    started = time.perf_counter()
    state = flow.run(executor=DaskExecutor(process_cluster, map_chunk_size=1))
    elapsed = time.perf_counter() - started

    assert state.is_successful(), state
    assert len(set(state.result[pids].result)) == 2  # both worker processes
    assert os.getpid() not in state.result[pids].result
    assert elapsed < 2.0, f"4 x 0.6 s on 2 workers took {elapsed:.2f} s: children did not run in parallel"


def test_executor_selected_by_name_and_config(thread_cluster: str) -> None:
    @task
    def where() -> str:
        return threading.current_thread().name

    with Flow("dask-by-name") as flow:
        place = where()

    with temporary_config({"plugins.dask.address": thread_cluster}):
        by_name = flow.run(executor="dask")
        with temporary_config({"engine.executor": "dask"}):
            by_config = flow.run()

    for state in (by_name, by_config):
        assert state.is_successful(), state
        assert "Dask-Default-Threads" in state.result[place].result  # a Dask worker thread


def test_unknown_plugin_config_key_is_an_error() -> None:
    from runwright.config import ConfigError

    with temporary_config({"plugins.dask.adress": "tcp://x:1"}), pytest.raises(ConfigError, match="adress"):
        DaskExecutor()


def test_local_cluster_started_for_a_run_is_shut_down() -> None:
    @task
    def pid() -> int:
        return os.getpid()

    with Flow("dask-own-cluster") as flow:
        worker_pid = pid()

    executor = DaskExecutor(local_processes=True, n_workers=1, threads_per_worker=1)
    state = flow.run(executor=executor)

    assert state.is_successful(), state
    spawned = state.result[worker_pid].result
    assert spawned != os.getpid()
    deadline = time.monotonic() + 10
    while _alive(spawned) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(spawned), "the worker process of the executor's LocalCluster is still running"
    with pytest.raises(ValueError, match="not been started"):
        executor.submit(print)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    import psutil

    return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_flow_defined_in_a_main_script_runs_on_process_workers(tmp_path: Path) -> None:
    script = tmp_path / "flow_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from runwright import Flow, task
            from runwright_dask import DaskExecutor

            class Scale:
                def __init__(self, factor):
                    self.factor = factor

            scale = Scale(3)

            @task
            def numbers():
                return [1, 2, 3]

            @task
            def times(x):
                return (x * scale.factor, os.getpid())

            @task
            def total(pairs):
                return sum(v for v, _ in pairs), sorted({p for _, p in pairs})

            with Flow("script") as flow:
                out = total(times.map(numbers()))

            if __name__ == "__main__":
                state = flow.run(executor=DaskExecutor(local_processes=True, n_workers=2, threads_per_worker=1))
                value, pids = state.result[out].result
                print(state.is_successful(), value, os.getpid() not in pids)
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.stdout.split() == ["True", "18", "True"], done.stderr[-2000:]


def test_a_main_script_task_using_runwright_objects_runs_with_the_workers_context(tmp_path: Path) -> None:
    """A task body in a ``__main__`` script (pickled by value, with the globals it refers to)
    that uses the run context, the run logger, signals, a Parameter, the flow object and the
    task decorator runs on worker processes, and reads the worker's own context."""
    script = tmp_path / "context_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            import os
            import runwright
            from runwright import Flow, Parameter, context, get_run_logger, signals, task
            from runwright.context import context as ctx
            from runwright_dask import DaskExecutor

            factor = Parameter("factor", default=10)

            @task
            def numbers():
                return [1, 2, 3]

            @task
            def scaled(x, factor):
                get_run_logger().info("scaling %s", x)
                if x < 0:
                    raise signals.FAIL("negative")
                assert isinstance(factor_param, Parameter) and flow.name == "ctx-script" and callable(task)
                return {
                    "value": x * factor,
                    "index": context.get("map_index"),
                    "name": runwright.context.get("task_full_name"),
                    "same": ctx is context,
                    "pid": os.getpid(),
                }

            factor_param = factor
            with Flow("ctx-script") as flow:
                out = scaled.map(numbers(), runwright.unmapped(factor))

            if __name__ == "__main__":
                state = flow.run(executor=DaskExecutor(local_processes=True, n_workers=2, threads_per_worker=1))
                children = state.result[out].map_states if state.is_successful() else [state.result[out]]
                print(json.dumps({"ok": state.is_successful(), "main": os.getpid(),
                                  "children": [c.result if c.is_successful() else c.message for c in children]}))
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=90, env=os.environ)
    import json

    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-3000:]
    report = json.loads(lines[-1])
    assert report["ok"], report
    children = report["children"]
    assert [c["value"] for c in children] == [10, 20, 30]
    assert [c["index"] for c in children] == [0, 1, 2]
    assert [c["name"] for c in children] == ["scaled[0]", "scaled[1]", "scaled[2]"]
    assert all(c["same"] for c in children)
    assert report["main"] not in {c["pid"] for c in children}
