"""Caching across processes: flow files run in fresh Python interpreters, several at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLOW_FILE = """
import datetime, sys
from runwright import Flow, Parameter, task
from runwright_cache import Inputs, Parameters, TaskSource

RUNS = {runs!r}

@task(cache_for=datetime.timedelta(hours=1), cache_validator={policy})
def expensive(x):
    with open(RUNS, "a") as fh:
        fh.write(f"{{x}}\\n")
    return x * 2

with Flow("cross-process") as flow:
    doubled = expensive(Parameter("x"))
    flow.add_task(Parameter("label", default="a"))

state = flow.run(x=int(sys.argv[1]), label=sys.argv[2] if len(sys.argv) > 2 else "a")
assert state.is_successful(), state
print("RESULT", state.result[doubled].result, type(state.result[doubled]).__name__)
"""


def runs_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_flow_run_twice_in_two_processes_runs_the_task_once(tmp_path: Path, run_script: Callable[..., Any]) -> None:
    runs = tmp_path / "runs.txt"
    source = FLOW_FILE.format(runs=str(runs), policy="Inputs() + TaskSource()")
    first = run_script(source, "21")
    second = run_script(source, "21")
    assert "RESULT 42" in first.stdout and "RESULT 42" in second.stdout
    assert runs_of(runs) == ["21"]


def test_changing_an_input_or_a_parameter_invalidates_per_policy(tmp_path: Path, run_script: Callable[..., Any]) -> None:
    runs = tmp_path / "runs.txt"
    inputs_only = FLOW_FILE.format(runs=str(runs), policy="Inputs()")
    run_script(inputs_only, "1", "a")
    run_script(inputs_only, "2", "a")  # input changed: runs
    run_script(inputs_only, "1", "b")  # parameter is not part of Inputs(): cached
    assert runs_of(runs) == ["1", "2"]
    with_parameters = FLOW_FILE.format(runs=str(runs), policy="Inputs() + Parameters()")
    run_script(with_parameters, "1", "a", name="with_parameters.py")  # another policy: new key
    run_script(with_parameters, "1", "b", name="with_parameters.py")  # parameter changed: runs
    run_script(with_parameters, "1", "b", name="with_parameters.py")
    assert runs_of(runs) == ["1", "2", "1", "1"]


def test_editing_the_task_source_invalidates_its_cache(tmp_path: Path, run_script: Callable[..., Any]) -> None:
    runs = tmp_path / "runs.txt"
    source = FLOW_FILE.format(runs=str(runs), policy="Inputs() + TaskSource()")
    run_script(source, "3")
    run_script("# an unrelated edit outside the task\n" + source, "3")
    assert runs_of(runs) == ["3"]
    edited = source.replace("return x * 2", "return x * 2  # edited")
    done = run_script(edited, "3")
    assert runs_of(runs) == ["3", "3"] and "RESULT 6" in done.stdout


WRITER = """
import sys
from runwright_cache.identity import TaskIdentity
from runwright_cache.store import CacheStore

store = CacheStore(sys.argv[1], busy_timeout=30)
worker, count = sys.argv[2], int(sys.argv[3])
for i in range(count):
    store.add(TaskIdentity("concurrent", f"task-{worker}-{i}", None), "task", '{"type": "Cached"}', cache_key=str(i))
    # every write also reads, as a running flow does
    store.candidates(TaskIdentity("concurrent", f"task-{worker}-{i}", None))
"""


def _run_all(commands: list[list[str]], env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    try:
        results = []
        for command, process in zip(commands, processes):
            out, err = process.communicate(timeout=60)
            results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_several_processes_writing_at_once_lose_no_writes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    workers, count = 8, 60
    results = _run_all([[sys.executable, str(script), str(db), str(w), str(count)] for w in range(workers)])
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM cache_entries").fetchone()[0] == workers * count


def test_flows_running_in_several_processes_at_once_all_cache(
    tmp_path: Path, subprocess_env: dict[str, str], cache_db: Path
) -> None:
    runs = tmp_path / "runs.txt"
    flow_file = tmp_path / "many.py"
    flow_file.write_text(
        textwrap.dedent(
            f"""
            import datetime, sys
            from runwright import Flow, Parameter, task

            @task(cache_for=datetime.timedelta(hours=1), cache_validator="inputs")
            def step(x, i):
                with open({str(runs)!r}, "a") as fh:
                    fh.write(f"{{x}}-{{i}}\\n")
                return x + i

            with Flow("many") as flow:
                x = Parameter("x")
                for i in range(20):
                    step(x, i)
            assert flow.run(x=int(sys.argv[1])).is_successful()
            """
        )
    )
    commands = [[sys.executable, str(flow_file), str(n)] for n in range(6)]
    first = _run_all(commands, env=subprocess_env)
    assert all(r.returncode == 0 for r in first), [r.stderr for r in first if r.returncode]
    second = _run_all(commands, env=subprocess_env)
    assert all(r.returncode == 0 for r in second), [r.stderr for r in second if r.returncode]
    assert len(runs_of(runs)) == 6 * 20  # the second round was served entirely from the cache
    with sqlite3.connect(cache_db) as conn:
        assert conn.execute("SELECT count(*) FROM cache_entries").fetchone()[0] == 6 * 20
