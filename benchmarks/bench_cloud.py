"""Reporting to a backend: runwright's cloud runners vs Prefect 3 with its own server.

    .venv/bin/python benchmarks/bench_cloud.py              # N = 1,000, all workloads
    .venv/bin/python benchmarks/bench_cloud.py --tasks 200 --engines runwright

Workloads (trivial task bodies, so the numbers are engine + reporting overhead):

* W1: a chain of N tasks;
* W2: one root, N independent tasks on it, a reducer over all of them;
* W2-map: the same with ``task.map`` (N mapped children, each its own task run).

Engines, each in a fresh process, one run each:

* ``runwright-local``: no backend (the floor);
* ``runwright-cloud``: ``[engine] backend = "cloud"`` reporting to a runwright server
  (``python -m runwright_server`` on 127.0.0.1, a new SQLite file), with the default
  cloud settings: checkpointed results (inline in the batches), task claims queued under the
  flow run's lease (``task_claims = "lease"``), every task-run write batched;
* ``prefect3``: Prefect 3 reporting to ``prefect server start`` (its own venv under
  ``benchmarks/.venvs/prefect3``, bound to 127.0.0.1, stopped by its process id).

"per task" is the flow-run time divided by N; "overhead" subtracts runwright-local's time.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engines import WORKLOAD_TASKS, RunwrightServer, ensure_venv, log, print_table, run_json_script  # noqa: E402

WORKLOADS = ("W1", "W2", "W2-map")

RUNWRIGHT = """
import json, sys, time
WORKLOAD, N = sys.argv[1], int(sys.argv[2])
from runwright import Flow, task
from runwright.plugins import get_plugin_manager
get_plugin_manager().registry

""" + WORKLOAD_TASKS + """
with Flow("bench-" + WORKLOAD) as flow:
    if WORKLOAD == "W1":
        last = one()
        for _ in range(N - 1):
            last = inc(last)
    elif WORKLOAD == "W2":
        root = one()
        last = total([inc(root) for _ in range(N)])
    else:
        last = total(inc.map(list(range(N))))
t0 = time.perf_counter()
state = flow.run()
t1 = time.perf_counter()
assert state.is_successful(), state
print(json.dumps({"run": t1 - t0}))
"""

PREFECT3 = """
import json, sys, time
WORKLOAD, N = sys.argv[1], int(sys.argv[2])
from prefect import flow, task

""" + WORKLOAD_TASKS + """
@flow(name="bench-" + WORKLOAD)
def bench():
    if WORKLOAD == "W1":
        last = one()
        for _ in range(N - 1):
            last = inc(last)
        return last
    if WORKLOAD == "W2":
        root = one()
        return total([inc(root) for _ in range(N)])
    return total(inc.map(list(range(N))))

t0 = time.perf_counter()
bench()
t1 = time.perf_counter()
print(json.dumps({"run": t1 - t0}))
"""


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server we started, by its process id (its own session: its children too)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_runwright(work: Path, n: int, cloud: bool) -> dict[str, dict[str, Any]]:
    script = work / "runwright_flow.py"
    script.write_text(RUNWRIGHT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWRIGHT", "PREFECT"))}
    config = work / "config.toml"
    config.write_text("")
    env.update(
        RUNWRIGHT_CONFIG=str(config),
        RUNWRIGHT__LOGGING__LEVEL="WARNING",
        RUNWRIGHT__PLUGINS__LOCAL__DIR=str(work / "results"),
        HOME=str(work),
    )
    server: RunwrightServer | None = None
    if cloud:
        server = RunwrightServer(work)
        env.update(server.env)
    try:
        return {w: run_json_script(sys.executable, script, [w, str(n)], timeout=1800, env=env) for w in WORKLOADS}
    finally:
        if server is not None:
            server.stop()


def run_prefect3(work: Path, n: int) -> dict[str, dict[str, Any]] | str:
    python, why = ensure_venv("prefect3", "prefect>=3,<4")
    if python is None:
        return why
    script = work / "prefect3_flow.py"
    script.write_text(PREFECT3)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWRIGHT", "PREFECT"))}
    env.update(
        PREFECT_HOME=str(work / "prefect-home"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
    )
    server_env = dict(env)
    server_env.pop("PREFECT_API_URL")
    server = subprocess.Popen(
        [str(python), "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health", server)
        return {w: run_json_script(python, script, [w, str(n)], timeout=1800, env=env) for w in WORKLOADS}
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000, help="N (default 1000)")
    parser.add_argument("--engines", default="runwright,prefect3", help="runwright (local + cloud), prefect3")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    n = args.tasks
    results: dict[str, dict[str, dict[str, Any]]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-cloud-") as tmp:
        root = Path(tmp)
        if "runwright" in engines:
            for name, cloud in (("runwright-local", False), ("runwright-cloud", True)):
                log(f"running {name} (N = {n}) ...")
                (root / name).mkdir()
                results[name] = run_runwright(root / name, n, cloud)
        if "prefect3" in engines:
            log(f"running prefect3 with its server (N = {n}) ...")
            (root / "prefect3").mkdir()
            outcome = run_prefect3(root / "prefect3", n)
            if isinstance(outcome, str):
                notes.append(f"prefect3: skipped, {outcome}")
            else:
                results["prefect3"] = outcome

    def run_time(engine: str, workload: str) -> float | None:
        value = results.get(engine, {}).get(workload, {}).get("run")
        return float(value) if value is not None else None

    rows = []
    for workload in WORKLOADS:
        floor = run_time("runwright-local", workload)
        cloud = run_time("runwright-cloud", workload)
        for engine in results:
            outcome = results[engine][workload]
            if "error" in outcome:
                rows.append([workload, engine, outcome["error"], "", "", ""])
                continue
            seconds = float(outcome["run"])
            overhead = "" if floor is None or engine == "runwright-local" else f"{(seconds - floor) / n * 1000:.2f}"
            ratio = "" if cloud is None or engine != "prefect3" else f"{seconds / cloud:.1f}x"
            rows.append([workload, engine, f"{seconds:.2f}", f"{seconds / n * 1000:.2f}", overhead, ratio])
    print(f"\nFlow-run time, N = {n}, one run each (ms per task = run time / N)")
    print_table(["workload", "engine", "run s", "ms/task", "overhead ms/task", "prefect3 / runwright-cloud"], rows)
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
