"""Reads of run control: a run's logs filtered (after an id, by task, by level), its state
changes as server-sent events, the flow-run filters (flow, state, deployment) and the flows
by name; tenants never see each other's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine

from runwright_server import models
from runwright_server.testing import TestServer, unique


def write_logs(server: TestServer, sa: requests.Session, run: dict[str, Any], items: list[tuple[str, str | None, str]]) -> None:
    """``items``: (level, task slug or None, message)."""
    by_slug = {t["task_slug"]: t["id"] for t in run["task_runs"]}
    now = datetime.now(UTC).isoformat()
    logs = [
        {"flow_run_id": run["id"], "task_run_id": by_slug[slug] if slug else None, "timestamp": now, "level": level,
         "name": "runwright.Task", "message": message}
        for level, slug, message in items
    ]
    assert sa.post(server.api + "/logs", json={"logs": logs}).status_code == 201


def set_state(sa: requests.Session, url: str, version: int, state_type: str) -> int:
    r = sa.post(url, json={"version": version, "state": {"type": state_type, "message": None}})
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def test_logs_after_an_id_by_task_and_by_level(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    run = server.make_run(sa, ("extract", "load"))
    write_logs(server, sa, run, [("INFO", None, "flow starts"), ("DEBUG", "extract", "x1"), ("ERROR", "extract", "x2"),
                                 ("WARNING", "load", "l1"), ("INFO", "load", "l2")])
    url = f"{server.api}/flow_runs/{run['id']}/logs"
    every = sa.get(url, params={"after_id": 0}).json()
    assert [r["message"] for r in every] == ["flow starts", "x1", "x2", "l1", "l2"]
    after = sa.get(url, params={"after_id": every[2]["id"]}).json()
    assert [r["message"] for r in after] == ["l1", "l2"]
    # a task by its name (make_flow names task "load" "LOAD") or its slug
    assert [r["message"] for r in sa.get(url, params={"task": "EXTRACT"}).json()] == ["x1", "x2"]
    assert [r["message"] for r in sa.get(url, params={"task": "load"}).json()] == ["l1", "l2"]
    assert sa.get(url, params={"task": "nope"}).json() == []
    assert [r["message"] for r in sa.get(url, params={"level": "warning"}).json()] == ["x2", "l1"]
    assert [r["message"] for r in sa.get(url, params={"level": "ERROR", "task": "extract"}).json()] == ["x2"]
    assert len(sa.get(url, params={"after_id": 0, "limit": 2}).json()) == 2
    bad = sa.get(url, params={"level": "LOUD"})
    assert bad.status_code == 422 and "DEBUG" in bad.json()["detail"][0]["msg"]
    assert sa.get(url, params={"limit": 10_001}).status_code == 422
    assert sb.get(url).status_code == 404  # another tenant's run does not exist for tenant b


def read_events(response: requests.Response) -> list[tuple[str, dict[str, Any], str | None]]:
    """(event, data, id) of a server-sent event stream, until it closes."""
    events: list[tuple[str, dict[str, Any], str | None]] = []
    kind, data, event_id = "message", "", None
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                events.append((kind, json.loads(data), event_id))
            kind, data, event_id = "message", "", None
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line.startswith("id: "):
            event_id = line[4:]
    return events


def test_events_of_a_finished_run_then_end(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    run = server.make_run(sa, ("a",))
    flow_url = f"{server.api}/flow_runs/{run['id']}/state"
    task_url = f"{server.api}/task_runs/{run['task_runs'][0]['id']}/state"
    version = set_state(sa, flow_url, 0, "Running")
    set_state(sa, task_url, set_state(sa, task_url, 0, "Running"), "Success")
    set_state(sa, flow_url, version, "Success")
    with sa.get(f"{server.api}/flow_runs/{run['id']}/events", stream=True, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = read_events(r)
    states = [(data.get("kind"), data.get("task_slug"), data["state"]["type"]) for kind, data, _ in events if kind == "state"]
    assert states == [
        ("flow_run", None, "Scheduled"), ("task_run", "a", "Pending"), ("flow_run", None, "Running"),
        ("task_run", "a", "Running"), ("task_run", "a", "Success"), ("flow_run", None, "Success"),
    ]
    assert events[-1][0] == "end" and events[-1][1]["state"]["type"] == "Success"
    # a reader reconnecting after the fourth event gets the rest only
    resume = events[3][2]
    with sa.get(f"{server.api}/flow_runs/{run['id']}/events", headers={"Last-Event-ID": resume}, stream=True, timeout=10) as r:
        rest = read_events(r)
    assert [data["state"]["type"] for kind, data, _ in rest if kind == "state"] == ["Success", "Success"]
    assert sb.get(f"{server.api}/flow_runs/{run['id']}/events").status_code == 404
    assert sa.get(f"{server.api}/flow_runs/{run['id']}/events", params={"after": "x"}).status_code == 422


def test_events_arrive_live_and_the_stream_ends_with_the_run(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa, ("a",))
    got: list[tuple[float, str, dict[str, Any]]] = []

    def follow() -> None:
        with server.session() as session, session.get(f"{server.api}/flow_runs/{run['id']}/events", stream=True, timeout=30) as r:
            kind, data = "message", ""
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    got.append((time.monotonic(), kind, json.loads(data)))
                    data = ""

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:  # Scheduled, Pending: the stream is open
            time.sleep(0.02)
        flow_url = f"{server.api}/flow_runs/{run['id']}/state"
        written = time.monotonic()
        version = set_state(sa, flow_url, 0, "Running")
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(got) == 3 and got[2][2]["state"]["type"] == "Running"
        assert got[2][0] - written < 0.5  # woken by the write, not by the 1 s fallback
        set_state(sa, flow_url, version, "Failed")
    finally:
        reader.join(15)
    assert not reader.is_alive()  # the stream closed itself once the run finished
    assert [kind for _, kind, _ in got][-2:] == ["state", "end"]


def test_flow_run_filters_by_flow_state_and_deployment(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    name = unique()
    first = server.make_run(sa, ("a",), name=name)
    second = server.make_run(sa, ("a", "b"), name=name)  # another version of the same flow
    other = server.make_run(sa, ("a",))
    set_state(sa, f"{server.api}/flow_runs/{first['id']}/state", 0, "TimedOut")
    deployment_id = str(uuid.uuid4())
    engine = create_engine(server.db_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    deployment = unique("deploy")
    with engine.begin() as conn:
        conn.execute(models.deployments.insert().values(
            id=deployment_id, tenant_id=conn.execute(models.flow_runs.select().where(
                models.flow_runs.c.id == other["id"])).mappings().one()["tenant_id"],
            name=deployment, flow_id=other["flow_id"], flow_name=other["flow_name"], storage="server", storage_ref="{}",
            schedule=None, parameters="{}", queue="default", executor=None, concurrency_limit=None, paused=False,
            spec_hash="0" * 64, version=1, scheduled_until=None, created=now, updated=now))
        conn.execute(models.flow_runs.update().where(models.flow_runs.c.id == other["id"]).values(deployment_id=deployment_id))
    engine.dispose()
    url = server.api + "/flow_runs"
    assert [r["id"] for r in sa.get(url, params={"flow": name}).json()] == [second["id"], first["id"]]
    assert [r["id"] for r in sa.get(url, params={"flow": name, "state": "Failed"}).json()] == [first["id"]]  # a subtype
    assert [r["id"] for r in sa.get(url, params={"flow": name, "state": "scheduled"}).json()] == [second["id"]]
    assert [r["id"] for r in sa.get(url, params={"deployment": deployment}).json()] == [other["id"]]
    assert sa.get(url, params={"deployment": "nope"}).json() == []
    bad = sa.get(url, params={"state": "Happy"})
    assert bad.status_code == 422 and "Success" in bad.json()["detail"][0]["msg"]
    assert sb.get(url, params={"flow": name}).json() == []
    assert sb.get(url, params={"deployment": deployment}).json() == []


def test_flows_by_name_with_versions_run_count_and_last_run(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    name = unique()
    server.make_run(sa, ("a",), name=name)
    last = server.make_run(sa, ("a", "b"), name=name)
    never = unique()
    server.make_flow(sa, ("a",), name=never)
    listed = {f["name"]: f for f in sa.get(server.api + "/flows/summary", params={"limit": 1000}).json()}
    assert listed[name]["run_count"] == 2 and len(listed[name]["versions"]) == 2
    assert listed[name]["last_run"]["id"] == last["id"] and listed[name]["last_run"]["state_type"] == "Scheduled"
    assert listed[never]["run_count"] == 0 and listed[never]["last_run"] is None
    assert name not in {f["name"] for f in sb.get(server.api + "/flows/summary", params={"limit": 1000}).json()}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}])
def test_flow_summaries_are_bounded(server: TestServer, sa: requests.Session, params: dict[str, int]) -> None:
    assert sa.get(server.api + "/flows/summary", params=params).status_code == 422


def test_waiting_event_streams_hold_no_thread(server: TestServer, sa: requests.Session) -> None:
    """More open streams than the server's thread pool has threads (40): other requests are
    still answered at once."""
    run = server.make_run(sa, ("a",))
    sessions = [server.session() for _ in range(60)]
    streams = [s.get(f"{server.api}/flow_runs/{run['id']}/events", stream=True, timeout=30) for s in sessions]
    try:
        assert all(r.status_code == 200 for r in streams)
        started = time.monotonic()
        assert sa.get(f"{server.api}/flow_runs/{run['id']}").status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for r, s in zip(streams, sessions, strict=True):
            r.close()
            s.close()
