"""Helpers of the agent and run-control reliability tests: deployments made through the
server's API (the built-in ``server`` storage), agents as ``runwright agent start``
subprocesses, and a flow whose tasks write down every time they run."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.reliability.conftest import LiveServer, Processes, wait_until

#: A flow whose tasks append "<flow run id> <task> <attempt>" to $RW_MARKS each time they
#: start; ``slow`` sleeps ``seconds`` on its first attempt of a run only.
MARKED_FLOW = '''
import os
import time

from runwright import Flow, Parameter, context, task


def mark(name):
    run_id = context.get("flow_run_id")
    with open(os.environ["RW_MARKS"], "a") as marks:
        marks.write(f"{run_id} {name} {os.getpid()}\\n")


def attempts(name):
    run_id = context.get("flow_run_id")
    with open(os.environ["RW_MARKS"]) as marks:
        return sum(line.split()[:2] == [run_id, name] for line in marks)


@task
def first():
    mark("first")
    return 1


@task
def slow(x, seconds):
    mark("slow")
    if attempts("slow") == 1:
        time.sleep(seconds)
    return x + 1


@task
def last(y):
    mark("last")
    return y


with Flow("marked") as flow:
    seconds = Parameter("seconds", default=0.0)
    last(slow(first(), seconds))
'''


@dataclass
class Deployment:
    name: str
    flow_id: str


def deploy(server: LiveServer, token: str, source: str, name: str, queue: str = "default", flow_name: str = "marked", **extra: Any) -> Deployment:
    """Store ``source`` with the server storage and register a deployment of its flow."""
    s = session(token)
    data = source.encode()
    digest = hashlib.sha256(data).hexdigest()
    r = s.put(f"{server.url}/api/v1/storage/{digest}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code in (200, 201), r.text
    flow_id = register_flow(server, token, source, flow_name)
    body = {
        "name": name,
        "flow_id": flow_id,
        "flow_name": flow_name,
        "storage": "server",
        "storage_ref": {"digest": digest, "filename": f"{name}.py"},
        "schedule": None,
        "parameters": {},
        "queue": queue,
        "executor": None,
        "concurrency_limit": None,
        **extra,
    }
    r = s.post(f"{server.url}/api/v1/deployments", json=body)
    assert r.status_code in (200, 201), r.text
    return Deployment(name, flow_id)


def register_flow(server: LiveServer, token: str, source: str, flow_name: str) -> str:
    """Register the flow ``source`` defines (as a deploy does); a source that does not load
    registers a one-task flow of that name (its runs fail to load in the agent)."""
    import tempfile

    from runwright.cli.loading import load_flow

    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "flow.py"
        path.write_text(source)
        try:
            structure = load_flow(str(path), flow_name).structure()
        except Exception:  # noqa: BLE001 - a deliberately broken file
            structure = {"name": flow_name, "tasks": [{"slug": "t", "name": "t"}], "edges": []}
    r = session(token).post(
        f"{server.url}/api/v1/flows", json={"name": structure["name"], "tasks": structure["tasks"], "edges": structure["edges"]}
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def run_deployment(server: LiveServer, token: str, name: str, **parameters: Any) -> str:
    r = session(token).post(f"{server.url}/api/v1/deployments/{name}/runs", json={"parameters": parameters})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def flow_run(server: LiveServer, token: str, run_id: str) -> dict[str, Any]:
    r = session(token).get(f"{server.url}/api/v1/flow_runs/{run_id}")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def state_of(server: LiveServer, token: str, run_id: str) -> str:
    return str(flow_run(server, token, run_id)["state"]["type"])


def history(server: LiveServer, token: str, run_id: str) -> list[str]:
    r = session(token).get(f"{server.url}/api/v1/flow_runs/{run_id}/states")
    return [h["state"]["type"] for h in r.json()]


def task_states(server: LiveServer, token: str, run_id: str) -> dict[str, str]:
    return {t["task_slug"]: t["state"]["type"] for t in flow_run(server, token, run_id)["task_runs"]}


def wait_finished(server: LiveServer, token: str, run_ids: list[str], timeout: float) -> None:
    finished = {"Success", "Failed", "Cancelled", "TriggerFailed"}
    try:
        wait_until(lambda: all(state_of(server, token, i) in finished for i in run_ids), timeout, "the runs to finish", 0.2)
    except AssertionError:
        unfinished = {i: (history(server, token, i), task_states(server, token, i)) for i in run_ids if state_of(server, token, i) not in finished}
        raise AssertionError(f"timed out waiting for the runs to finish; unfinished (history, task states): {unfinished}") from None


def marks(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split()[:2]) for line in path.read_text().splitlines()]  # type: ignore[misc]


class Agents:
    """``runwright agent start`` subprocesses of one test (tracked by ``processes``)."""

    def __init__(self, processes: Processes, server: LiveServer, marks_path: Path) -> None:
        self.processes = processes
        self.server = server
        self.marks_path = marks_path

    def start(self, *args: str, token: str | None = None) -> subprocess.Popen[str]:
        env = self.processes.env(
            self.server,
            token,
            RW_MARKS=str(self.marks_path),
            RUNWRIGHT__CLOUD__ZOMBIE_TIMEOUT="3",
            RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.5",
        )
        return self.processes.start(["agent", "start", *args], env)

    def stop(self, proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
        """SIGTERM by PID; its exit code and log."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = self.processes.wait(proc, timeout)
        return proc.returncode, err


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def monotonic_until(predicate: Any, timeout: float, interval: float = 0.01) -> float:
    """Seconds until ``predicate`` held (fails after ``timeout``)."""
    started = time.monotonic()
    wait_until(predicate, timeout, "the condition", interval)
    return time.monotonic() - started
