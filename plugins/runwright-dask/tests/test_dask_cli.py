"""``runwright run --executor dask`` as a user runs it: the progress display on worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

_FLOW = textwrap.dedent(
    """
    from runwright import Flow, task

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def double(x):
        return 2 * x

    @task
    def total(xs):
        return sum(xs)

    @task
    def broken():
        raise ValueError("on purpose")

    with Flow("cli-dask") as flow:
        total(double.map(numbers()))
        broken()
    """
)


def test_progress_shows_each_task_once_when_tasks_run_on_worker_processes(tmp_path: Path) -> None:
    path = tmp_path / "dask_flow.py"
    path.write_text(_FLOW)
    env = {**os.environ, "RUNWRIGHT__PLUGINS__DASK__LOCAL_PROCESSES": "true", "RUNWRIGHT__PLUGINS__DASK__N_WORKERS": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "runwright.cli", "run", str(path), "--executor", "dask"],
        capture_output=True, text=True, env=env, timeout=110,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # broken fails the run
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"], (lines, proc.stderr[-2000:])
    shown = {line.split("] ", 1)[1] for line in lines}
    assert shown == {"numbers: Success", "double: Mapped (3 children)", "total: Success", "broken: Failed"}, lines
