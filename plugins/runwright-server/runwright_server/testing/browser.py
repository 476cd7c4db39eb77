"""Test helpers of the web UI's browser tests: Debian's Chromium driven by playwright (no
browser download, launched with ``executable_path``), sign-in, and an :class:`Api` that makes
flows, runs, states and logs through the HTTP API as a runner writes them.

Needs ``playwright`` (``.ci/requirements-test.txt``) and ``/usr/bin/chromium`` (``.ci/test``
installs Debian's ``chromium`` when it is missing), or ``RUNWRIGHT_CHROMIUM``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import requests

from runwright_server.testing import TestServer, unique

CHROMIUM = os.environ.get("RUNWRIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def sign_in(page: Any, server: TestServer, token: str) -> None:
    page.goto(server.url + "/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("header.top")


def local_only(route: Any) -> None:
    """Every request to another host fails: the UI must not need the internet."""
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


class Api:
    """Flows, runs, states and logs through the HTTP API, as a runner writes them."""

    def __init__(self, server: TestServer, token: str) -> None:
        self.server = server
        self.http = server.session(token)

    def flow(self, slugs: list[str], edges: list[tuple[str, str]] | None = None, name: str | None = None) -> dict[str, Any]:
        body = {
            "name": name or unique(),
            "tasks": [{"slug": s, "name": s} for s in slugs],
            "edges": [{"upstream": u, "downstream": d} for u, d in (edges or [])],
        }
        r = self.http.post(self.server.api + "/flows", json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def run(self, flow: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.http.post(self.server.api + "/flow_runs", json={"flow_id": flow["id"], "parameters": parameters or {}})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get_run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"{self.server.api}/flow_runs/{run_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def set_run_state(self, run_id: str, state_type: str, message: str | None = None) -> None:
        version = self.get_run(run_id)["version"]
        r = self.http.post(
            f"{self.server.api}/flow_runs/{run_id}/state",
            json={"version": version, "state": {"type": state_type, "message": message}},
        )
        assert r.status_code == 200, r.text

    def task_runs(self, run_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"{self.server.api}/flow_runs/{run_id}/task_runs")
        assert r.status_code == 200, r.text
        return list(r.json())

    def children(self, run_id: str, slug: str, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, count, 5000):
            body = {"flow_run_id": run_id, "task_slug": slug, "map_indexes": list(range(start, min(count, start + 5000)))}
            r = self.http.post(self.server.api + "/task_runs/batch", json=body)
            assert r.status_code == 200, r.text
            out += r.json()["task_runs"]
        return out

    def set_task_states(self, task_runs: list[dict[str, Any]], state_type: str, chunk: int = 2000) -> None:
        for start in range(0, len(task_runs), chunk):
            part = task_runs[start : start + chunk]
            writes = [{"task_run_id": t["id"], "version": t["version"], "state": {"type": state_type, "message": None}} for t in part]
            r = self.http.post(self.server.api + "/task_run_states", json={"writes": writes})
            assert r.status_code == 200, r.text
            for t, res in zip(part, r.json()["results"], strict=True):
                assert res["status"] == "ok", res
                t["version"] = res["version"]

    def log(self, run_id: str, message: str, level: str = "INFO", task_run_id: str | None = None) -> None:
        line = {
            "flow_run_id": run_id, "task_run_id": task_run_id, "level": level, "name": "test",
            "message": message, "timestamp": datetime.now(UTC).isoformat(),
        }
        r = self.http.post(self.server.api + "/logs", json={"logs": [line]})
        assert r.status_code == 201, r.text


def seed_deployment(
    server: TestServer, flow: dict[str, Any], parameters: dict[str, Any], token: str | None = None, name: str | None = None
) -> str:
    """An hourly deployment of ``flow`` (``POST /deployments``); its name."""
    name = name or unique("dep")
    body = {
        "name": name, "flow_id": flow["id"], "flow_name": flow["name"], "storage": "server",
        "storage_ref": {"digest": "0" * 64, "filename": "flow.py"},
        "schedule": {"type": "IntervalSchedule", "interval": 3600, "start_date": "2026-01-01T00:00:00+00:00"},
        "parameters": parameters, "queue": "default",
    }
    r = server.session(token).post(server.api + "/deployments", json=body)
    assert r.status_code in (200, 201), r.text
    return name


def seed_agent(server: TestServer, name: str, token: str | None = None, queues: list[str] | None = None) -> str:
    """An agent registered by ``POST /agents`` (seen now); its id."""
    body = {"name": name, "queues": queues or ["default"], "run_limit": 4}
    r = server.session(token).post(server.api + "/agents", json=body)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def ui_session(server: TestServer, token: str) -> requests.Session:
    """A ``requests`` session signed in to the UI (cookie), for the non-browser checks."""
    s = requests.Session()
    r = s.post(server.url + "/login", data={"token": token}, allow_redirects=False)
    assert r.status_code == 303, r.text
    return s


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
