"""Cancel and retry on the real server: what each state allows, task runs, who is told."""

from __future__ import annotations

from typing import Any

import requests

from runwright_server.testing import TestServer, unique
from runwright_server.testing.orchestration import insert_deployment, queue_run


def _state(server: TestServer, s: requests.Session, kind: str, run_id: str, version: int, state: dict[str, Any]) -> None:
    r = s.post(f"{server.api}/{kind}/{run_id}/state", json={"version": version, "state": state})
    assert r.status_code == 200, r.text


def _types(server: TestServer, s: requests.Session, run_id: str) -> tuple[str, list[str]]:
    """The run's state type and its task runs' (by slug)."""
    run = s.get(f"{server.api}/flow_runs/{run_id}").json()
    return run["state"]["type"], [t["state"]["type"] for t in sorted(run["task_runs"], key=lambda t: t["task_slug"])]


def test_cancelling_a_scheduled_run_ends_it_and_its_task_runs(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    r = sa.post(f"{server.api}/flow_runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "Cancelled"
    assert _types(server, sa, run["id"]) == ("Cancelled", ["Cancelled", "Cancelled"])
    again = sa.post(f"{server.api}/flow_runs/{run['id']}/cancel")
    assert again.status_code == 409 and "already finished (Cancelled)" in again.json()["detail"]


def test_cancelling_a_running_run_asks_its_runner_and_agent(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    flow = server.make_flow(sa)
    dep = insert_deployment(server.db_url, "a", flow["id"], queue=queue)
    run = sa.post(f"{server.api}/flow_runs", json={"flow_id": flow["id"]}).json()
    queue_run(server.db_url, run["id"], dep, queue)
    agent = sa.post(f"{server.api}/agents", json={"queues": [queue]}).json()["id"]
    poll = {"queues": [queue], "free_slots": 1, "wait_seconds": 0}
    assert sa.post(f"{server.api}/agents/{agent}/poll", json=poll).json()["claimed"]
    _state(server, sa, "flow_runs", run["id"], 1, {"type": "Running"})
    done, running = sorted(run["task_runs"], key=lambda t: t["task_slug"])
    _state(server, sa, "task_runs", done["id"], 0, {"type": "Success"})
    _state(server, sa, "task_runs", running["id"], 0, {"type": "Running"})
    assert sa.post(f"{server.api}/flow_runs/{run['id']}/heartbeat").json()["cancel"] is False
    premature = sa.post(f"{server.api}/flow_runs/{run['id']}/cancelled", json={})
    assert premature.status_code == 409 and "runs cancel" in premature.json()["detail"]

    r = sa.post(f"{server.api}/flow_runs/{run['id']}/cancel")
    assert r.status_code == 202 and r.json() == {"id": run["id"], "state": "Running", "cancel_requested": True}
    assert sa.post(f"{server.api}/flow_runs/{run['id']}/heartbeat").json()["cancel"] is True
    answer = sa.post(f"{server.api}/agents/{agent}/poll", json=poll).json()
    assert answer["cancel"] == [run["id"]]
    quiet = sa.post(f"{server.api}/agents/{agent}/poll", json={**poll, "cancelling": [run["id"]]}).json()
    assert quiet == {"claimed": [], "cancel": []}

    r = sa.post(f"{server.api}/flow_runs/{run['id']}/cancelled", json={"message": "stopped by its agent"})
    assert r.status_code == 200 and r.json()["state"] == "Cancelled"
    assert _types(server, sa, run["id"]) == ("Cancelled", ["Success", "Cancelled"])
    assert sa.post(f"{server.api}/flow_runs/{run['id']}/cancelled", json={}).status_code == 200  # idempotent
    # the runner's own late write is refused (version-checked)
    late = sa.post(f"{server.api}/flow_runs/{run['id']}/state", json={"version": 2, "state": {"type": "Success"}})
    assert late.status_code == 409


def test_retry_keeps_successful_task_runs_and_reschedules(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa, slugs=("a", "b", "c"))
    a, b, _c = sorted(run["task_runs"], key=lambda t: t["task_slug"])
    assert sa.post(f"{server.api}/flow_runs/{run['id']}/retry").status_code == 409  # not finished
    _state(server, sa, "flow_runs", run["id"], 0, {"type": "Running"})
    _state(server, sa, "task_runs", a["id"], 0, {"type": "Success"})
    _state(server, sa, "task_runs", b["id"], 0, {"type": "Failed", "message": "boom"})
    _state(server, sa, "flow_runs", run["id"], 1, {"type": "Failed", "message": "Some reference tasks failed."})
    r = sa.post(f"{server.api}/flow_runs/{run['id']}/retry")
    assert r.status_code == 200 and r.json()["state"] == "Scheduled"
    state, tasks = _types(server, sa, run["id"])
    assert (state, tasks) == ("Scheduled", ["Success", "Pending", "Pending"])
    history = [h["state"]["type"] for h in sa.get(f"{server.api}/task_runs/{b['id']}/states").json()]
    assert history == ["Pending", "Failed", "Pending"]


def test_run_control_of_another_tenants_run_is_not_found(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    run = server.make_run(sa)
    for action in ("cancel", "cancelled", "retry"):
        r = sb.post(f"{server.api}/flow_runs/{run['id']}/{action}", json={})
        assert r.status_code == 404, (action, r.text)
    assert sa.get(f"{server.api}/flow_runs/{run['id']}").json()["state"]["type"] == "Scheduled"
    assert sa.post(f"{server.api}/flow_runs/not-an-id!/cancel").status_code == 404
    assert sa.post(f"{server.api}/flow_runs/{run['id']}/cancelled", json={"message": 5}).status_code == 422
