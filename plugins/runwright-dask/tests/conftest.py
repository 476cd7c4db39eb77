"""Fixtures for runwright-dask's tests: real LocalClusters and a hook-recording plugin.

The recording plugin is a real distribution (a ``.dist-info`` with a ``runwright`` entry
point) in a temporary directory put on ``sys.path`` and ``PYTHONPATH``: spawned worker
processes find it exactly as they find any installed plugin, without touching the venv.
Its ``runwright_task_state_change`` appends ``pid<TAB>thread<TAB>task<TAB>old<TAB>new`` to the
file named by ``RUNWRIGHT_DASK_TEST_HOOK_LOG`` (``<initialize>`` or ``<cache check>`` as
``old`` for ``runwright_task_run_initialize`` and ``runwright_check_task_is_cached``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# HOME and the runwright config are isolated by the runwright pytest plugin
# (``runwright_isolated = true`` in tox.ini); the recorder lives in a directory of its own.
_RECORDER_ROOT = Path(tempfile.mkdtemp(prefix="runwright-dask-test-recorder-"))
RECORDER_DIR = _RECORDER_ROOT / "site"
HOOK_LOG = _RECORDER_ROOT / "hooks.log"
_RECORDER = textwrap.dedent(
    '''
    """Test plugin: log every task state change, with the process and thread it happened in."""
    import os
    import threading

    from runwright import hookimpl


    def _log(name, old, new):
        path = os.environ.get("RUNWRIGHT_DASK_TEST_HOOK_LOG")
        if path:
            with open(path, "a") as fh:
                fh.write(f"{os.getpid()}\\t{threading.current_thread().name}\\t{name}\\t{old}\\t{new}\\n")


    @hookimpl
    def runwright_task_state_change(runner, task, old_state, new_state):
        from runwright.context import context

        name = context.get("task_full_name") or task.name
        _log(name, type(old_state).__name__, type(new_state).__name__)


    @hookimpl
    def runwright_task_run_initialize(runner, task, setup):
        _log(setup.context.get("task_full_name") or task.name, "<initialize>", "-")


    @hookimpl
    def runwright_check_task_is_cached(runner, task, state, inputs, parameters):
        from runwright.context import context

        _log(context.get("task_full_name") or task.name, "<cache check>", "-")
    '''
)


def _install_recorder() -> None:
    RECORDER_DIR.mkdir(parents=True, exist_ok=True)
    (RECORDER_DIR / "runwright_dask_hook_recorder.py").write_text(_RECORDER)
    info = RECORDER_DIR / "runwright_dask_hook_recorder-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: runwright-dask-hook-recorder\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[runwright]\ndask_test_recorder = runwright_dask_hook_recorder\n")
    sys.path.insert(0, str(RECORDER_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(RECORDER_DIR), os.environ.get("PYTHONPATH")]))
    os.environ["RUNWRIGHT_DASK_TEST_HOOK_LOG"] = str(HOOK_LOG)


_install_recorder()

from runwright.plugins import set_plugin_manager

set_plugin_manager(None)


def _cluster(processes: bool, n_workers: int, threads_per_worker: int) -> Iterator[str]:
    import dask
    from distributed import LocalCluster

    options = {"host": "127.0.0.1"} if processes else {}
    # 0: a task on a worker that dies is KilledWorker at once (fast tests); the executor's
    # own retries (max_retries) then apply.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
            **options,
        )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def process_cluster() -> Iterator[str]:
    """The address of a LocalCluster of 2 worker processes with 1 thread each."""
    yield from _cluster(processes=True, n_workers=2, threads_per_worker=1)


@pytest.fixture(scope="session")
def process_cluster_2x2() -> Iterator[str]:
    """The address of a LocalCluster of 2 worker processes with 2 threads each."""
    yield from _cluster(processes=True, n_workers=2, threads_per_worker=2)


@pytest.fixture(scope="session")
def thread_cluster() -> Iterator[str]:
    """The address of a LocalCluster of 2 in-process workers with 2 threads each."""
    yield from _cluster(processes=False, n_workers=2, threads_per_worker=2)


@pytest.fixture(params=["processes", "threads"])
def cluster_address(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on both clusters."""
    name = "process_cluster" if request.param == "processes" else "thread_cluster"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def hook_lines() -> Callable[[str], list[tuple[int, str, str, str, str]]]:
    """``hook_lines(prefix)``: logged state changes of tasks whose name starts with prefix."""

    def read(prefix: str) -> list[tuple[int, str, str, str, str]]:
        if not HOOK_LOG.exists():
            return []
        out = []
        for line in HOOK_LOG.read_text().splitlines():
            pid, thread, name, old, new = line.split("\t")
            if name.startswith(prefix):
                out.append((int(pid), thread, name, old, new))
        return out

    return read


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """A directory tasks use to count their attempts across processes."""
    path = tmp_path / "markers"
    path.mkdir()
    return path
