"""Process faults: the flow-run process is SIGKILLed at random points — during a task (a real
kill at a seeded random time), during a state write and during a result write (fault
injection: a real kill cannot hit those on demand) — and the flow run, resumed with the same
id, finishes with the same task results as an undisturbed run. A task recorded Success
before the kill never runs again.

Fault injection lives in the flow file and is off unless ``RW_FAULT`` is set: a test plugin
that SIGKILLs its own process inside the ``runwright_result_write`` hook (before or after the
upload), or around the client's N-th state write (before it is sent, or after it was applied
and before the answer is read).
"""

from __future__ import annotations

import random
import runpy
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import LiveServer, Processes, marker_counts, no_traceback, stored_value, succeeded_task_slugs, wait_until

FLOW = '''
import os
import signal
import threading
import time
from pathlib import Path

from runwright import Flow, hookimpl, task
from runwright.plugins import get_plugin_manager

MARKS = Path(os.environ["RW_MARKS"])
FAULT = os.environ.get("RW_FAULT", "")
AT = int(os.environ.get("RW_FAULT_AT", "0"))
AFTER = os.environ.get("RW_FAULT_AFTER") == "1"
_lock = threading.Lock()
_seen = [0]


def _hit():
    with _lock:
        _seen[0] += 1
        return _seen[0] == AT


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


if FAULT == "result_write":
    class ResultWriteFault:
        @hookimpl(tryfirst=True)
        def runwright_result_write(self, value, handler):
            if _hit():
                if AFTER:
                    handler.write(value)
                _die()
            return None

    get_plugin_manager().register(ResultWriteFault(), name="fault-injection")
elif FAULT == "state_write":
    from runwright_cloud.client import Client

    _original = Client._request

    def _request(self, method, path, **kwargs):
        if method == "POST" and (path.endswith("/state") or path == "/task_run_states") and _hit():
            if AFTER:
                _original(self, method, path, **kwargs)
            _die()
        return _original(self, method, path, **kwargs)

    Client._request = _request


HOLD = os.environ.get("RW_HOLD", "")


def mark(name):
    fd = os.open(MARKS / (name + ".count"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"x\\n")
    os.close(fd)
    if name == HOLD:  # the test kills the process while this task body is running
        time.sleep(60)


@task
def start():
    mark("start")
    time.sleep(0.03)
    return 3


@task
def work(x, k):
    mark("work" + str(k))
    time.sleep(0.03)
    return x * 10 + k


@task
def total(a, b, c, d):
    mark("total")
    time.sleep(0.03)
    return a + b + c + d


@task
def final(t, x):
    mark("final")
    return {"total": t, "x": x}


with Flow("process-faults") as flow:
    x = start()
    final(total(*[work(x, k) for k in range(4)]), x)
'''

TRIALS = 24
KINDS = ("task", "state_write", "result_write")
SEED = 20240508


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flow") / "flow.py"
    path.write_text(FLOW)
    return path


def _create_run(server: LiveServer, flow_file: Path) -> str:
    flow = _flow(flow_file)
    client = server.a.client(server.url)
    s = flow.structure()
    return client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))


def _flow(flow_file: Path) -> Any:
    import os

    os.environ.setdefault("RW_MARKS", str(flow_file.parent))
    return runpy.run_path(str(flow_file))["flow"]


def _results(server: LiveServer, run_id: str) -> dict[str, Any]:
    client = server.a.client(server.url)
    return {t.task_slug: stored_value(client, t.state) for t in client.get_flow_run_task_runs(run_id)}


def _args(flow_file: Path, run_id: str) -> list[str]:
    return ["run", str(flow_file), "--flow-run-id", run_id, "--executor", "threads", "--json"]


@pytest.fixture(scope="module")
def undisturbed(shared_server: LiveServer, flow_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The task results (and the run's duration after its first task started) of an
    undisturbed run."""
    where = tmp_path_factory.mktemp("undisturbed")
    procs = Processes(where)
    try:
        run_id = _create_run(shared_server, flow_file)
        env = procs.env(shared_server, RW_MARKS=str(where))
        proc = procs.start(_args(flow_file, run_id), env)
        wait_until(lambda: (where / "start.count").exists() or proc.poll() is not None, 60, "the first task")
        began = time.monotonic()
        _out, err = procs.wait(proc)
        duration = time.monotonic() - began
        assert proc.returncode == 0, err
        results = _results(shared_server, run_id)
        assert results and all(n == 1 for n in marker_counts(where).values())
        yield {"results": results, "duration": duration}
    finally:
        procs.cleanup()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_run_killed_at_a_random_point_resumes_to_the_undisturbed_results(
    shared_server: LiveServer, flow_file: Path, undisturbed: dict[str, Any], processes: Processes, tmp_path: Path, trial: int
) -> None:
    rng = random.Random(SEED + trial)
    kind = KINDS[trial % len(KINDS)]
    marks = tmp_path / "marks"
    marks.mkdir()
    run_id = _create_run(shared_server, flow_file)
    env = processes.env(shared_server, RW_MARKS=str(marks), RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2")
    if kind != "task":
        # 7 tasks (the literal k of each work task is bound, not a task): 7 result writes happen
        # in every run, and >= 6 state-write requests (task claims and states travel in batches
        # under the flow run's lease: the flow-run claim and final state, and a batch per tier
        # of tasks, each tier sleeping longer than the linger)
        at = rng.randint(1, 7) if kind == "result_write" else rng.randint(1, 6)
        env.update(RW_FAULT=kind, RW_FAULT_AT=str(at), RW_FAULT_AFTER=str(rng.randint(0, 1)))
    if kind == "task":
        # the kill lands inside a randomly chosen task body, whatever the machine's speed
        held = rng.choice(["start", "work0", "work1", "work2", "work3", "total", "final"])
        env["RW_HOLD"] = held
    proc = processes.start(_args(flow_file, run_id), env)
    if kind == "task":
        wait_until(lambda: (marks / f"{held}.count").exists() or proc.poll() is not None, 60, f"task {held}")
        time.sleep(rng.uniform(0.0, 0.05))
        assert proc.poll() is None, "the run finished before the kill: the trial would prove nothing"
        processes.kill(proc)
    else:
        processes.wait(proc, timeout=60)
    assert proc.returncode == -signal.SIGKILL, (kind, env.get("RW_FAULT_AT"), proc.returncode)
    recorded = succeeded_task_slugs(shared_server.db_path, run_id)

    time.sleep(0.5)  # the killed runner's claims are now older than the zombie timeout below
    resumed = processes.run(_args(flow_file, run_id), dict(env, RW_FAULT="", RW_HOLD="", RUNWRIGHT__CLOUD__ZOMBIE_TIMEOUT="0.4"))
    no_traceback(resumed.stderr)
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    client = shared_server.a.client(shared_server.url)
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"
    assert _results(shared_server, run_id) == undisturbed["results"]
    counts = marker_counts(marks)
    names = {t.slug: t.name for t in _flow(flow_file).tasks}
    for task_run in client.get_flow_run_task_runs(run_id):
        history = [h["state"]["type"] for h in client.get_task_run_states(task_run.id)]
        assert history.count("Success") == 1, (task_run.task_slug, history)
    for slug in recorded:  # finished before the kill: never ran again
        body = names[slug]
        if body == "work":
            body = f"work{undisturbed['results'][slug] - 30}"  # work(3, k) returns 30 + k
        if body in counts:  # constants have no marker
            assert counts[body] == 1, (slug, counts)
    assert all(1 <= n <= 2 for n in counts.values()), counts
