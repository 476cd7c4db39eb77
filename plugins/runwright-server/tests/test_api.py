"""Resources over HTTP: flows, runs, task runs, history, cached states, results, logs, 422/413."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from runwright_server.testing import TestServer, unique


def test_health_needs_no_token(server: TestServer) -> None:
    r = requests.get(server.api + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_openapi_schema_served(server: TestServer) -> None:
    schema = requests.get(server.url + "/openapi.json").json()
    assert "/api/v1/flow_runs/{flow_run_id}/state" in schema["paths"]


def test_register_flow_is_idempotent_by_content(server: TestServer, sa: requests.Session) -> None:
    name = unique()
    body = {
        "name": name,
        "tasks": [{"slug": "a", "name": "A"}, {"slug": "b", "name": "B"}],
        "edges": [{"upstream": "a", "downstream": "b", "key": "x", "mapped": True}],
    }
    first = sa.post(server.api + "/flows", json=body)
    assert first.status_code == 201
    again = sa.post(server.api + "/flows", json={**body, "tasks": body["tasks"][::-1]})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    changed = sa.post(server.api + "/flows", json={**body, "version": "2"})
    assert changed.status_code == 201 and changed.json()["id"] != first.json()["id"]
    got = sa.get(f"{server.api}/flows/{first.json()['id']}").json()
    assert got["edges"] == [{"upstream": "a", "downstream": "b", "key": "x", "mapped": True}]
    listed = sa.get(server.api + "/flows", params={"name": name}).json()
    assert {f["id"] for f in listed} == {first.json()["id"], changed.json()["id"]}


def test_flow_run_creates_task_runs(server: TestServer, sa: requests.Session) -> None:
    flow = server.make_flow(sa, ("x", "y", "z"))
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    r = sa.post(
        server.api + "/flow_runs",
        json={"flow_id": flow["id"], "parameters": {"p": [1, 2]}, "context": {"k": "v"}, "scheduled_start_time": when.isoformat()},
    )
    assert r.status_code == 201
    run = sa.get(f"{server.api}/flow_runs/{r.json()['id']}").json()
    assert run["flow_name"] == flow["name"] and run["parameters"] == {"p": [1, 2]} and run["context"] == {"k": "v"}
    assert datetime.fromisoformat(run["scheduled_start_time"]) == when
    assert run["state"]["type"] == "Scheduled" and run["version"] == 0
    assert sorted(t["task_slug"] for t in run["task_runs"]) == ["x", "y", "z"]
    assert all(t["map_index"] == -1 and t["version"] == 0 and t["state"]["type"] == "Pending" for t in run["task_runs"])


def test_the_create_answer_is_the_flow_run_as_read(server: TestServer, sa: requests.Session) -> None:
    flow = server.make_flow(sa, tuple(f"t{i}" for i in range(50)))
    created = sa.post(server.api + "/flow_runs", json={"flow_id": flow["id"], "parameters": {"é": [1.5, None]}})
    assert created.status_code == 201
    read = sa.get(f"{server.api}/flow_runs/{created.json()['id']}")
    by_id = lambda run: {**run, "task_runs": sorted(run["task_runs"], key=lambda t: t["id"])}  # noqa: E731
    assert by_id(created.json()) == by_id(read.json())
    assert sorted(t["task_slug"] for t in created.json()["task_runs"]) == sorted(f"t{i}" for i in range(50))


def test_server_warm_up_leaves_nothing_in_the_database(server: TestServer, sa: requests.Session) -> None:
    """The server runs a tiny flow run in a tenant of its own before serving, then deletes it."""
    from runwright_server import models
    from runwright_server.db import make_engine

    engine = make_engine(server.db_url)
    try:
        with engine.connect() as conn:
            names = [name for (name,) in conn.execute(select(models.tenants.c.name))]
            tenants = [tid for (tid,) in conn.execute(select(models.tenants.c.id))]
            for table in (models.flows, models.flow_runs, models.task_runs, models.results, models.logs):
                assert conn.execute(select(func.count()).where(table.c.tenant_id.not_in(tenants))).scalar() == 0
            assert conn.execute(select(func.count()).where(models.flows.c.name == "warm-up")).scalar() == 0
    finally:
        engine.dispose()
    assert not [name for name in names if name.startswith("__warmup__")]


def test_flow_run_with_explicit_state_and_listing(server: TestServer, sa: requests.Session) -> None:
    flow = server.make_flow(sa)
    ids = []
    for _ in range(3):
        r = sa.post(server.api + "/flow_runs", json={"flow_id": flow["id"], "state": {"type": "Pending"}})
        assert r.json()["state"] == {"type": "Pending"}
        ids.append(r.json()["id"])
    listed = sa.get(server.api + "/flow_runs", params={"flow_id": flow["id"]}).json()
    assert [run["id"] for run in listed] == ids[::-1]  # newest first
    page = sa.get(server.api + "/flow_runs", params={"flow_id": flow["id"], "limit": 1, "offset": 1}).json()
    assert [run["id"] for run in page] == [ids[1]]


def test_get_or_create_task_run(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    body = {"flow_run_id": run["id"], "task_slug": "a", "map_index": 2}
    created = sa.post(server.api + "/task_runs", json=body)
    assert created.status_code == 201 and created.json()["map_index"] == 2
    again = sa.post(server.api + "/task_runs", json=body)
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    parent = sa.post(server.api + "/task_runs", json={**body, "map_index": -1})
    assert parent.status_code == 200 and parent.json()["id"] in {t["id"] for t in run["task_runs"]}
    assert sa.post(server.api + "/task_runs", json={**body, "task_slug": "nope"}).status_code == 404
    every = sa.get(f"{server.api}/flow_runs/{run['id']}/task_runs").json()
    assert len(every) == 3 and {t["map_index"] for t in every} == {-1, 2}
    info = sa.get(f"{server.api}/flow_runs/{run['id']}").json()
    assert len(info["task_runs"]) == 2  # parents only
    assert sa.get(f"{server.api}/task_runs/{created.json()['id']}").json()["task_slug"] == "a"


def test_state_history_is_contiguous(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    task_run = run["task_runs"][0]
    for version, kind in enumerate(["Running", "Failed", "Retrying", "Running", "Success"]):
        r = sa.post(f"{server.api}/task_runs/{task_run['id']}/state", json={"version": version, "state": {"type": kind}})
        assert r.status_code == 200 and r.json() == {"id": task_run["id"], "version": version + 1}
    history = sa.get(f"{server.api}/task_runs/{task_run['id']}/states").json()
    assert [h["version"] for h in history] == list(range(6))
    assert [h["state"]["type"] for h in history] == ["Pending", "Running", "Failed", "Retrying", "Running", "Success"]
    stamps = [datetime.fromisoformat(h["timestamp"]) for h in history]
    assert stamps == sorted(stamps) and all(s.tzinfo is not None for s in stamps)
    flow_history = sa.get(f"{server.api}/flow_runs/{run['id']}/states").json()
    assert [h["version"] for h in flow_history] == [0]


def test_heartbeats(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    r = sa.post(f"{server.api}/flow_runs/{run['id']}/heartbeat")
    assert r.status_code == 200
    assert sa.get(f"{server.api}/flow_runs/{run['id']}").json()["heartbeat"] == r.json()["heartbeat"]
    tr = run["task_runs"][0]["id"]
    assert sa.post(f"{server.api}/task_runs/{tr}/heartbeat").status_code == 200
    assert sa.get(f"{server.api}/task_runs/{tr}").json()["heartbeat"] is not None
    assert sa.post(f"{server.api}/task_runs/00000000-0000-0000-0000-000000000000/heartbeat").status_code == 404


def test_cached_states_filter_and_order(server: TestServer, sa: requests.Session) -> None:
    name = unique()
    runs = [server.make_run(sa, name=name) for _ in range(2)]
    start = datetime.now(UTC) - timedelta(seconds=1)
    written = []
    for i, run in enumerate(runs):
        a = next(t for t in run["task_runs"] if t["task_slug"] == "a")
        sa.post(f"{server.api}/task_runs/{a['id']}/state", json={"version": 0, "state": {"type": "Success"}})
        sa.post(f"{server.api}/task_runs/{a['id']}/state", json={"version": 1, "state": {"type": "Cached", "n": i}})
        written.append(a["id"])
        time.sleep(0.01)
    child = sa.post(server.api + "/task_runs", json={"flow_run_id": runs[0]["id"], "task_slug": "a", "map_index": 0}).json()
    sa.post(f"{server.api}/task_runs/{child['id']}/state", json={"version": 0, "state": {"type": "Cached", "n": "child"}})
    b = next(t for t in runs[0]["task_runs"] if t["task_slug"] == "b")
    sa.post(f"{server.api}/task_runs/{b['id']}/state", json={"version": 0, "state": {"type": "Cached", "n": "b"}})

    rows = sa.get(server.api + "/cached_states", params={"flow_name": name, "task_slug": "a"}).json()
    assert [r["state"]["n"] for r in rows] == ["child", 1, 0]  # newest first, Cached only, slug a only
    assert rows[1]["task_run_id"] == written[1] and rows[1]["flow_run_id"] == runs[1]["id"]
    parents = sa.get(
        server.api + "/cached_states", params={"flow_name": name, "task_slug": "a", "map_index": -1}
    ).json()
    assert [r["state"]["n"] for r in parents] == [1, 0]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert sa.get(server.api + "/cached_states", params={"flow_name": name, "task_slug": "a", "created_after": future}).json() == []
    recent = sa.get(
        server.api + "/cached_states", params={"flow_name": name, "task_slug": "a", "created_after": start.isoformat()}
    ).json()
    assert len(recent) == 3


def test_flow_wide_cached_states_keep_the_newest_state_of_each_key(server: TestServer, sa: requests.Session) -> None:
    """A cached task's hits repeat the text of the state they hit: one row per key; states
    without a key each count (up to per_task); another key is another row."""
    name = unique()
    runs = [server.make_run(sa, name=name) for _ in range(4)]
    keyed = {"type": "Cached", "message": "é", "cache_key": "k1"}
    for i, run in enumerate(runs):
        a, b = (next(t for t in run["task_runs"] if t["task_slug"] == slug) for slug in ("a", "b"))
        state_a = keyed if i < 3 else {**keyed, "cache_key": "k2"}
        sa.post(f"{server.api}/task_runs/{a['id']}/state", json={"version": 0, "state": state_a})
        sa.post(f"{server.api}/task_runs/{b['id']}/state", json={"version": 0, "state": {"type": "Cached"}})
        time.sleep(0.01)
    rows = sa.get(server.api + "/cached_states", params={"flow_name": name, "per_task": 3}).json()
    by_slug = {slug: [r for r in rows if r["task_slug"] == slug] for slug in ("a", "b")}
    assert [r["cache_key"] for r in by_slug["a"]] == ["k2", "k1"]
    assert by_slug["a"][1]["flow_run_id"] == runs[2]["id"] and by_slug["a"][1]["state"] == keyed  # the newest of k1
    assert [r["cache_key"] for r in by_slug["b"]] == [None, None, None]  # per_task bounds the keyless ones
    assert [r["flow_run_id"] for r in by_slug["b"]] == [run["id"] for run in reversed(runs[1:])]
    assert all(r["created"].endswith("Z") and r["map_index"] == -1 for r in rows)


def test_results_round_trip(server: TestServer, sa: requests.Session) -> None:
    payload = bytes(range(256)) * 100
    r = sa.post(server.api + "/results", data=payload, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201
    uri = r.json()["uri"]
    assert uri.startswith("rwcloud://results/")
    got = sa.get(server.api + "/results", params={"uri": uri})
    assert got.status_code == 200 and got.content == payload
    assert got.headers["content-type"] == "application/octet-stream"
    empty = sa.post(server.api + "/results", data=b"").json()["uri"]
    assert sa.get(server.api + "/results", params={"uri": empty}).content == b""


@pytest.mark.parametrize(
    "uri",
    ["rwcloud://results/" + "0" * 32, "rwcloud://results/xyz", "gs://bucket/x", "", "rwcloud://results/../etc"],
)
def test_unknown_result_uri_is_404(server: TestServer, sa: requests.Session, uri: str) -> None:
    assert sa.get(server.api + "/results", params={"uri": uri}).status_code == 404


def test_oversized_bodies_are_413(server: TestServer, sa: requests.Session) -> None:
    big = b"x" * (server.max_body + 1)
    assert sa.post(server.api + "/results", data=big).status_code == 413  # by Content-Length

    def chunks():  # no Content-Length: chunked transfer, counted while streamed
        for _ in range(server.max_body // 65536 + 2):
            yield b"y" * 65536

    r = sa.post(server.api + "/results", data=chunks())
    assert r.status_code == 413 and "exceeds" in r.json()["detail"]
    r = sa.post(server.api + "/logs", data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert sa.post(server.api + "/results", data=b"x" * server.max_body).status_code == 201  # exactly the limit


def test_logs(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    tr = run["task_runs"][0]["id"]
    now = datetime.now(UTC)
    logs = [
        {"flow_run_id": run["id"], "timestamp": (now + timedelta(seconds=i)).isoformat(), "level": "INFO", "name": "t", "message": f"m{i}"}
        for i in range(5)
    ]
    logs[2]["task_run_id"] = tr
    r = sa.post(server.api + "/logs", json={"logs": logs[::-1]})
    assert r.status_code == 201 and r.json() == {"count": 5}
    got = sa.get(f"{server.api}/flow_runs/{run['id']}/logs").json()
    assert [g["message"] for g in got] == [f"m{i}" for i in range(5)]  # oldest first
    assert got[2]["task_run_id"] == tr
    other = server.make_run(sa)
    bad = [{**logs[0], "task_run_id": other["task_runs"][0]["id"]}]
    assert sa.post(server.api + "/logs", json={"logs": bad}).status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/flows", {"name": "", "tasks": []}),
        ("/flows", {"name": "x", "tasks": [{"slug": "a"}, {"slug": "a"}]}),
        ("/flows", {"name": "x", "tasks": [{"slug": "a"}], "edges": [{"upstream": "a", "downstream": "q"}]}),
        ("/flows", {"name": "x\u0000y"}),
        ("/flows", {"name": "x" * 501}),
        ("/flows", {"name": "x", "surprise": 1}),
        ("/flow_runs", {"flow_id": "f", "state": {"no": "type"}}),
        ("/flow_runs", {"flow_id": "f", "state": {"type": 3}}),
        ("/flow_runs", {"flow_id": "f", "scheduled_start_time": "yesterday"}),
        ("/task_runs", {"flow_run_id": "f", "task_slug": "a", "map_index": -2}),
        ("/task_runs", {"flow_run_id": "f", "task_slug": "a", "map_index": 2**40}),
        ("/task_run_states", {"writes": [{"task_run_id": "x", "version": 2**64, "state": {"type": "R"}}]}),
        ("/task_run_states", {"writes": [{"task_run_id": "x", "version": -1, "state": {"type": "R"}}]}),
        ("/logs", {"logs": [{"flow_run_id": "x", "timestamp": "now", "level": "INFO"}]}),
    ],
)
def test_malformed_input_is_422(server: TestServer, sa: requests.Session, path: str, body: dict) -> None:
    r = sa.post(server.api + path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_state_write_validation(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    url = f"{server.api}/flow_runs/{run['id']}/state"
    assert sa.post(url, json={"version": 2**63, "state": {"type": "Running"}}).status_code == 422
    assert sa.post(url, json={"version": 0, "state": {"type": ""}}).status_code == 422
    assert sa.post(url, json={"version": 0}).status_code == 422
    assert sa.post(url, data=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    assert sa.post(url, json={"version": 2**63 - 1, "state": {"type": "Running"}}).status_code == 409


def test_unknown_ids_are_404(server: TestServer, sa: requests.Session) -> None:
    for path in ["/flows/nope", "/flow_runs/%00", "/flow_runs/" + "f" * 64, "/task_runs/abc", "/flow_runs/abc/logs"]:
        assert sa.get(server.api + path).status_code == 404, path
    assert sa.post(server.api + "/flow_runs", json={"flow_id": "abc"}).status_code == 404


def test_keep_alive_requests_are_fast(server: TestServer, sa: requests.Session) -> None:
    """Regression: without TCP_NODELAY on accepted sockets, each keep-alive request took ~40 ms."""
    sa.get(server.api + "/health")
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        sa.get(server.api + "/flows", params={"limit": 1})
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[len(timings) // 2] < 0.02


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/flows", "GET, HEAD, POST"),
        ("PUT", "/flows", "GET, HEAD, POST"),
        ("DELETE", "/flow_runs", "GET, HEAD, POST"),
        ("PUT", "/results", "GET, HEAD, POST"),
        ("GET", "/task_run_states", "POST"),
        ("DELETE", "/task_runs/0a1b", "GET, HEAD"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(server: TestServer, method: str, path: str, allow: str) -> None:
    r = requests.request(method, server.api + path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
