"""A cached re-run against a real server does less than the first run: its flow run is
created naming its flow by the structure's hash (one request, the structure not sent again), and its cache hits are recorded by naming their
candidates (``POST /cached_states/hits``), the server copying each Cached state; every task
run still gets its Cached state in its history."""

from __future__ import annotations

import datetime
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from runwright import Flow, task
from runwright.config import temporary_config
from runwright_cloud import CloudFlowRunner, writer
from runwright_cloud.client import Client, structure_hash
from runwright_cloud.connection import shared_client
from runwright_cloud.errors import LeaseLost
from runwright_cloud.reporting import cached
from runwright_server.testing import TestServer, unique


@pytest.fixture
def cloud(server: TestServer) -> Iterator[Client]:
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        yield Client(server.url, server.token_a)


@pytest.fixture
def requests_made(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """Every request the clients of this process send, by (method, path without a digest)."""
    counts: Counter[tuple[str, str]] = Counter()
    original = Client._request

    def counting(self: Client, method: str, path: str, **kwargs: Any) -> Any:
        counts[(method, "/flows/by_hash" if path.startswith("/flows/by_hash/") else path)] += 1
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Client, "_request", counting)
    return counts


def cached_chain(name: str, length: int, calls: list[int]) -> tuple[Flow, Any]:
    @task(cache_for=datetime.timedelta(minutes=5), cache_validator="all_inputs")
    def step(x: int) -> int:
        calls.append(x)
        return x + 1

    with Flow(name) as flow:
        x: Any = 0
        for _ in range(length):
            x = step(x)
    return flow, x


def run(flow: Flow) -> Any:
    state = flow.run(runner_cls=CloudFlowRunner)
    assert state.is_successful(), state
    return state


def histories(cloud: Client, name: str) -> list[dict[str, list[dict[str, Any]]]]:
    """Per flow run of ``name`` (oldest first): each task run's state history."""
    runs = sorted(cloud.list_flow_runs(flow=name), key=lambda r: r["created"])
    return [
        {tr.task_slug: cloud.get_task_run_states(tr.id) for tr in cloud.get_flow_run_task_runs(r["id"])} for r in runs
    ]


def test_a_cached_rerun_names_its_candidates_and_gets_the_same_history(
    cloud: Client, requests_made: Counter[tuple[str, str]]
) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 20, calls)
    run(flow)
    assert requests_made[("POST", "/flows")] == 1 and requests_made[("POST", "/cached_states/hits")] == 0
    requests_made.clear()
    assert run(flow).result[last].result == 20
    assert len(calls) == 20  # no task body ran again
    # the run was created naming its flow by the structure's hash (one request), the hits
    # recorded by naming their candidates
    assert requests_made[("POST", "/flow_runs")] == 1 and requests_made[("POST", "/flows")] == 0
    assert requests_made[("GET", "/flows/by_hash")] == 0
    assert requests_made[("POST", "/cached_states/hits")] >= 1
    assert requests_made[("POST", "/task_run_states")] == 0
    first, second = histories(cloud, name)
    assert sorted(second) == sorted(first) == sorted(f"step-{i}" for i in range(1, 21))
    for slug, history in second.items():
        assert [item["state"]["type"] for item in history] == ["Pending", "Cached"], slug
        assert [item["version"] for item in history] == [0, 1]
        cached = history[-1]["state"]
        stored = first[slug][-1]["state"]
        assert stored["type"] == "Cached"
        assert cached == stored  # the candidate's state, its result and key included
        assert isinstance(cached["cache_key"], str)
    # and the copied states are candidates like any other: a third run is all hits too
    assert run(flow).result[last].result == 20 and len(calls) == 20


def test_hits_on_candidates_the_server_has_not_got_are_sent_in_full(
    cloud: Client, monkeypatch: pytest.MonkeyPatch, requests_made: Counter[tuple[str, str]]
) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 5, calls)
    run(flow)
    original = Client.record_cached_hits

    def unknown_candidates(self: Client, hits: Any, **kwargs: Any) -> Any:  # fault: ids the server lacks
        return original(self, [{**hit, "state_id": 2**62 + i} for i, hit in enumerate(hits)], **kwargs)

    monkeypatch.setattr(Client, "record_cached_hits", unknown_candidates)
    requests_made.clear()
    assert run(flow).result[last].result == 5 and len(calls) == 5
    assert requests_made[("POST", "/cached_states/hits")] >= 1 and requests_made[("POST", "/task_run_states")] >= 1
    second = histories(cloud, name)[1]
    assert all([item["state"]["type"] for item in history] == ["Pending", "Cached"] for history in second.values())


def test_a_server_without_the_hits_route_gets_the_full_states(cloud: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 5, calls)
    run(flow)
    original = Client._request

    def older_server(self: Client, method: str, path: str, **kwargs: Any) -> Any:  # fault: routes it lacks
        if path == "/cached_states/hits" or path.startswith("/flows/by_hash/"):
            path = "/no-such-route"
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Client, "_request", older_server)
    monkeypatch.setattr(writer, "FULL_HITS_FOR", 0.0)  # try the route again at once (300 s by default)
    assert run(flow).result[last].result == 5 and len(calls) == 5
    second = histories(cloud, name)[1]
    assert sorted(second) == sorted(f"step-{i}" for i in range(1, 6))
    assert all(history[-1]["state"]["type"] == "Cached" for history in second.values())
    # the server upgraded: hits are named again
    monkeypatch.setattr(Client, "_request", original)
    hits: list[int] = []
    record = Client.record_cached_hits

    def counting(self: Client, batch: Any, **kwargs: Any) -> Any:
        hits.append(len(batch))
        return record(self, batch, **kwargs)

    monkeypatch.setattr(Client, "record_cached_hits", counting)
    assert run(flow).result[last].result == 5 and len(calls) == 5
    assert sum(hits) == 5


def test_a_hit_names_only_its_own_tenants_cached_states(cloud: Client, server: TestServer) -> None:
    calls: list[int] = []
    name = unique()
    flow, _ = cached_chain(name, 2, calls)
    run(flow)
    candidate = cloud.get_cached_candidates(name)[0]
    other = Client(server.url, server.token_b)
    flow_id = other.register_flow(name, ["step-1"], [])
    run_b = other.create_flow_run_info(flow_id)
    target = run_b.task_runs[0]
    hit = {"task_run_id": target.id, "version": target.version, "state_id": candidate["state_id"], "state": candidate["state"]}
    assert [r["status"] for r in other.record_cached_hits([hit])] == ["rejected"]
    assert [item["state"]["type"] for item in other.get_task_run_states(target.id)] == ["Pending"]
    # nor the task runs of another tenant
    own_run = cloud.create_flow_run_info(cloud.register_flow(name, ["step-1"], []))
    own = own_run.task_runs[0]
    assert [r["status"] for r in cloud.record_cached_hits([{**hit, "task_run_id": target.id}])] == ["not_found"]
    done = cloud.record_cached_hits([{**hit, "task_run_id": own.id, "version": own.version}])
    assert [r["status"] for r in done] == ["ok"]
    assert cloud.get_task_run_states(own.id)[-1]["state"] == candidate["state"]
    # a stale version is a conflict, nothing applied twice
    again = cloud.record_cached_hits([{**hit, "task_run_id": own.id, "version": own.version}])
    assert [r["status"] for r in again] == ["conflict"] and again[0]["version"] == own.version + 1


def test_hits_route_refuses_malformed_bodies_and_foreign_leases(cloud: Client, server: TestServer) -> None:
    url = server.url + "/api/v1/cached_states/hits"
    headers = {"Authorization": f"Bearer {server.token_a}"}
    assert requests.post(url, json={"hits": []}).status_code == 401  # no token: refused before any work
    for body in (
        {"hits": [{"task_run_id": "x", "version": 0, "state_id": 0}]},
        {"hits": [{"task_run_id": "x", "version": -1, "state_id": 1}]},
        {"hits": [{"task_run_id": "x" * 65, "version": 0, "state_id": 1}]},
        {"hits": "nope"},
        {"hits": [], "extra": 1},
        {"hits": [{"task_run_id": "x", "version": 0, "state_id": 1}] * 10_001},
    ):
        answer = requests.post(url, json=body, headers=headers)
        assert answer.status_code == 422, (body if len(str(body)) < 200 else "long", answer.text[:200])
    flow_run = cloud.create_flow_run_info(cloud.register_flow(unique(), ["a"], []))
    with pytest.raises(LeaseLost):
        cloud.record_cached_hits([], lease=(flow_run.id, "t" * 16))


def test_a_flow_is_found_by_its_structure_hash_by_its_tenant_only(cloud: Client, server: TestServer) -> None:
    name = unique()
    tasks = [{"slug": "b", "name": "B"}, "a"]
    edges = [("a", "b"), {"upstream": "a", "downstream": "b", "key": "x", "mapped": True}]
    assert cloud.find_flow(name, tasks, edges) is None
    flow_id = cloud.register_flow(name, tasks, edges)
    assert cloud.find_flow(name, list(reversed(tasks)), list(reversed(edges))) == flow_id
    assert cloud.find_flow(name, tasks, edges, version="2") is None
    assert cloud.find_flow(name, tasks, edges[:1]) is None
    assert Client(server.url, server.token_b).find_flow(name, tasks, edges) is None
    digest = structure_hash(name, tasks, edges)
    answer = requests.get(f"{server.url}/api/v1/flows/by_hash/{digest}", headers={"Authorization": f"Bearer {server.token_a}"})
    assert answer.json() == {"id": flow_id, "name": name, "version": None}
    bad = requests.get(f"{server.url}/api/v1/flows/by_hash/{digest.upper()}", headers={"Authorization": f"Bearer {server.token_a}"})
    assert bad.status_code == 422
    assert requests.get(f"{server.url}/api/v1/flows/by_hash/{digest}").status_code == 401


def test_a_flow_run_is_created_by_its_structure_hash_by_its_tenant_only(cloud: Client, server: TestServer) -> None:
    name = unique()
    tasks = ["a", "b"]
    edges = [("a", "b")]
    assert cloud.create_flow_run_of_structure(name, tasks, edges) is None  # not registered: nothing created
    assert cloud.list_flow_runs(flow=name) == []
    flow_id = cloud.register_flow(name, tasks, edges)
    info = cloud.create_flow_run_of_structure(name, list(reversed(tasks)), edges, {"p": 1})
    assert info is not None and info.flow_id == flow_id and info.parameters == {"p": 1}
    assert sorted(tr.task_slug for tr in info.task_runs) == ["a", "b"]
    assert all(tr.is_new() and tr.version == 0 for tr in info.task_runs)
    assert [r["id"] for r in cloud.list_flow_runs(flow=name)] == [info.id]
    # another tenant's hash is no flow of this tenant
    assert Client(server.url, server.token_b).create_flow_run_of_structure(name, tasks, edges) is None
    assert len(cloud.list_flow_runs(flow=name)) == 1
    url = f"{server.url}/api/v1/flow_runs"
    headers = {"Authorization": f"Bearer {server.token_a}"}
    digest = structure_hash(name, tasks, edges)
    for body in ({}, {"flow_id": flow_id, "flow_hash": digest}, {"flow_hash": digest.upper()}, {"flow_hash": "0" * 65}):
        answer = requests.post(url, json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text[:200])
        assert digest.upper() not in answer.text  # the input is not echoed
    assert requests.post(url, json={"flow_hash": digest}).status_code == 401
    assert len(cloud.list_flow_runs(flow=name)) == 1


def test_a_server_without_flow_hash_gets_the_flow_looked_up_first(
    cloud: Client, server: TestServer, monkeypatch: pytest.MonkeyPatch, requests_made: Counter[tuple[str, str]]
) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 3, calls)
    original = Client._request

    def older_server(self: Client, method: str, path: str, **kwargs: Any) -> Any:  # fault: a field it lacks
        body = kwargs.get("json_body")
        if path == "/flow_runs" and isinstance(body, dict) and "flow_hash" in body:
            kwargs["json_body"] = {("not_known_" + key if key == "flow_hash" else key): value for key, value in body.items()}
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Client, "_request", older_server)
    shared = shared_client(server.url, server.token_a)
    try:
        run(flow)
        assert not shared._create_by_hash
        requests_made.clear()
        assert run(flow).result[last].result == 3 and len(calls) == 3
        # the client asked the two-request way from then on: one lookup, one creation
        assert requests_made[("GET", "/flows/by_hash")] == 1 and requests_made[("POST", "/flow_runs")] == 1
        assert requests_made[("POST", "/flows")] == 0
        assert len(cloud.list_flow_runs(flow=name)) == 2
    finally:
        shared._create_by_hash = True  # the process's shared client, for the next tests


def test_cache_checks_start_before_the_candidates_are_prepared(cloud: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 10, calls)
    run(flow)
    release = threading.Event()
    prepared: list[int] = []
    original = cached._prepare

    def slow_prepare(rows: Any, order: Any = ()) -> None:  # fault: the prefetch thread stalls
        release.wait(30)
        original(rows, order)
        prepared.append(sum(cached._PREPARED in row for candidates in rows.values() for row in candidates))

    monkeypatch.setattr(cached, "_prepare", slow_prepare)
    try:
        # the re-run checks (and hits) every task while the preparation has not started
        assert run(flow).result[last].result == 10 and len(calls) == 10
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while not prepared and time.monotonic() < deadline:
        time.sleep(0.01)
    assert prepared == [0]  # and it then skips every row a check already used
    second = histories(cloud, name)[1]
    assert all([item["state"]["type"] for item in history] == ["Pending", "Cached"] for history in second.values())


def test_mapped_children_hits_are_recorded_by_name_too(cloud: Client, requests_made: Counter[tuple[str, str]]) -> None:
    calls: list[int] = []

    @task(cache_for=datetime.timedelta(minutes=5), cache_validator="all_inputs")
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    name = unique()
    with Flow(name) as flow:
        squares = square.map([1, 2, 3, 4])
    assert run(flow).result[squares].result == [1, 4, 9, 16]
    requests_made.clear()
    state = run(flow)
    assert [child.result for child in state.result[squares].map_states] == [1, 4, 9, 16]
    assert sorted(calls) == [1, 2, 3, 4]  # the children ran once, in the first run
    assert requests_made[("POST", "/cached_states/hits")] >= 1
    runs = sorted(cloud.list_flow_runs(flow=name), key=lambda r: r["created"])
    children = [tr for tr in cloud.get_flow_run_task_runs(runs[-1]["id"]) if tr.map_index >= 0]
    assert sorted(tr.map_index for tr in children) == [0, 1, 2, 3]
    assert all(cloud.get_task_run_states(tr.id)[-1]["state"]["type"] == "Cached" for tr in children)
