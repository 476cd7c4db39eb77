"""The Prefect 3 side of bench_orchestration.py: its server, a ``process`` work pool and
``prefect worker start`` processes, measured like runwright's (server-side timestamps).

The driver (``DRIVER``) runs inside the Prefect 3 venv against the server this module starts;
it starts and stops the workers itself (by PID, each in its own session) and prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import requests
from _engines import ensure_venv, log

PREFECT_REQUIREMENT = "prefect>=3,<4"

FLOW = """
import time

from prefect import flow, task


@task
def work(seconds):
    time.sleep(seconds)
    return 1


@flow(name="bench-orchestration")
def trivial(seconds: float = 0.0):
    work(seconds)
"""

DRIVER = textwrap.dedent(
    r'''
    import json, os, signal, subprocess, sys, time
    from datetime import timedelta

    from prefect import flow as _flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    code_dir, server_pid, runs, scheduled, idle_seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
    out = {}
    workers = []

    def log(message):
        print(message, file=sys.stderr, flush=True)

    def start_worker(*args):
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "prefect"), "worker", "start", "--pool", "bench", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        workers.append(proc)
        return proc

    def stop_workers():
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait(10)
        workers.clear()

    def group_cpu(leader):
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == leader:  # pgid
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def flow_pid(run_id):
        needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if needle in f.read():
                            return int(pid)
                except OSError:
                    pass
        return None

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="bench", type="process"))
            source = _flow.from_source(source=code_dir, entrypoint="flow.py:trivial")
            source.deploy(name="trivial", work_pool_name="bench", print_next_steps=False)
            name = "bench-orchestration/trivial"

            def state_stamp(run_id, state_type):
                for s in client.read_flow_run_states(run_id):
                    if s.type.value == state_type:
                        return s.timestamp.timestamp()
                return None

            def wait(run_id, states, timeout):
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    run = client.read_flow_run(run_id)
                    if run.state and run.state.type.value in states:
                        return run
                    time.sleep(0.05)
                return client.read_flow_run(run_id)

            start_worker()
            time.sleep(8)
            delays = []
            for _ in range(5):
                run = run_deployment(name, timeout=0)
                wait(run.id, FINISHED, 120)
                running = state_stamp(run.id, "RUNNING")
                delays.append(None if running is None else running - run.created.timestamp())
                time.sleep(0.5)
            out["run_to_running"] = delays
            log(f"prefect3: deployment run -> Running {delays}")

            gone_times, cancelled_times = [], []
            for _ in range(3):
                run = run_deployment(name, timeout=0, parameters={"seconds": 120})
                wait(run.id, {"RUNNING"}, 120)
                time.sleep(1.0)
                pid = flow_pid(run.id)
                started = time.monotonic()
                client.set_flow_run_state(run.id, Cancelling(), force=True)
                gone = cancelled = None
                while time.monotonic() - started < 60 and (gone is None or cancelled is None):
                    if gone is None and (pid is None or not alive(pid)):
                        gone = time.monotonic() - started
                    if cancelled is None and client.read_flow_run(run.id).state.type.value == "CANCELLED":
                        cancelled = time.monotonic() - started
                    time.sleep(0.02)
                gone_times.append(gone)
                cancelled_times.append(cancelled)
            out["cancel_gone"], out["cancel_cancelled"] = gone_times, cancelled_times
            log(f"prefect3: cancel -> gone {gone_times}, Cancelled {cancelled_times}")

            for _ in range(9):
                start_worker()
            time.sleep(15)
            cpu0, wall0 = group_cpu(server_pid), time.monotonic()
            time.sleep(idle_seconds)
            out["idle_cpu"] = (group_cpu(server_pid) - cpu0) / (time.monotonic() - wall0)
            log(f"prefect3: server CPU with 10 idle workers {out['idle_cpu']:.2%}")
            stop_workers()

            start_worker("--limit", "4")
            time.sleep(8)
            ids = [run_deployment(name, timeout=0).id for _ in range(runs)]
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                states = [client.read_flow_run(i).state.type.value for i in ids]
                if all(s in FINISHED for s in states):
                    break
                time.sleep(1.0)
            first = client.read_flow_run(ids[0]).created.timestamp()
            last = max(client.read_flow_run(i).state.timestamp.timestamp() for i in ids)
            out["burst_seconds"] = last - first
            out["burst_not_success"] = sum(client.read_flow_run(i).state.type.value != "COMPLETED" for i in ids)
            log(f"prefect3: {runs} runs with --limit 4 in {last - first:.1f} s")
            stop_workers()

            start_worker()
            time.sleep(5)
            begin = time.time()
            source.deploy(name="every-second", work_pool_name="bench", interval=timedelta(seconds=1), print_next_steps=False)
            time.sleep(scheduled + 15)
            lateness = []
            for run in client.read_flow_runs(limit=200):
                if run.expected_start_time and run.expected_start_time.timestamp() >= begin and run.state and run.state.type.value in FINISHED:
                    running = state_stamp(run.id, "RUNNING")
                    if running is not None and run.deployment_id is not None:
                        lateness.append(running - run.expected_start_time.timestamp())
            out["lateness"] = sorted(lateness)
        except Exception as exc:  # the measures so far still count
            out["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            stop_workers()
    print(json.dumps(out))
    '''
)


def _start_server(python: Path, tmp: Path, timeout: float = 120.0) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    from runwright_server.testing import free_port

    port = free_port()
    home = tmp / "prefect-home"
    home.mkdir()
    env = dict(
        os.environ,
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
    )
    env.pop("PREFECT_API_URL", None)
    with open(tmp / "prefect-server.log", "wb") as out:
        proc = subprocess.Popen(
            [str(python.parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}: see {tmp / 'prefect-server.log'}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError("prefect server did not become healthy in time")
        time.sleep(0.2)
    env["PREFECT_API_URL"] = url
    return proc, url, env


def bench_prefect3(args: argparse.Namespace) -> dict[str, Any]:
    python, why = ensure_venv("prefect3", PREFECT_REQUIREMENT)
    if python is None:
        return {"error": why}
    with tempfile.TemporaryDirectory(prefix="rw-bench-orch-prefect3-") as tmp_name:
        tmp = Path(tmp_name)
        code = tmp / "code"
        code.mkdir()
        (code / "flow.py").write_text(FLOW)
        driver = tmp / "driver.py"
        driver.write_text(DRIVER)
        try:
            proc, _url, env = _start_server(python, tmp)
        except RuntimeError as exc:
            return {"error": str(exc)}
        try:
            run = subprocess.run(
                [str(python), str(driver), str(code), str(proc.pid), str(args.prefect_runs), str(args.scheduled), str(args.idle_seconds)],
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
                cwd=code,
            )
            for line in run.stderr.splitlines():
                if line.startswith("prefect3:"):
                    log(line)
            lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
            if run.returncode != 0 or not lines:
                tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["?"]
                return {"error": f"driver exit {run.returncode}: {tail[0][:160]}"}
            result: dict[str, Any] = json.loads(lines[-1])
            return result
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
