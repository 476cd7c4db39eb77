"""Flow-run leases, results inline in batch writes, and mapped children got or created in one
request: over HTTP against the test server, and through real cloud runs."""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from runwright import Flow, task
from runwright.config import temporary_config
from runwright.engine.state import ClientFailed
from runwright_cloud import CloudFlowRunner
from runwright_cloud.client import Client
from runwright_cloud.cloud_settings import DEFAULTS
from runwright_cloud.plugin import plugin as cloud_plugin
from runwright_cloud.reporting.reports import CHILD_PAGE
from runwright_cloud.result_handler import CloudResultHandler
from runwright_server.testing import TestServer, unique

heartbeat = cloud_plugin.backend.services.heartbeat  # this process's heartbeat


def key() -> str:
    return uuid.uuid4().hex


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def success_with(uri: str) -> dict[str, Any]:
    return {"type": "Success", "message": None, "result": {"location": uri}}


# ------------------------------------------------------------------------------ over HTTP


def test_inline_results_are_stored_with_the_states_that_name_them(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    a, b = run["task_runs"]
    ka, kb = key(), key()
    body = {
        "results": [{"key": ka, "data": b64(b"alpha")}, {"key": kb, "data": b64(bytes(range(256)))}],
        "writes": [
            {"task_run_id": a["id"], "version": 0, "state": success_with("rwcloud://results/" + ka)},
            {"task_run_id": b["id"], "version": 0, "state": success_with("rwcloud://results/" + kb)},
        ],
    }
    r = sa.post(server.api + "/task_run_states", json=body)
    assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == ["ok", "ok"]
    assert sa.get(server.api + "/results", params={"uri": "rwcloud://results/" + ka}).content == b"alpha"
    assert sa.get(server.api + "/results", params={"uri": "rwcloud://results/" + kb}).content == bytes(range(256))


def test_an_existing_result_key_is_refused_with_the_writes_that_name_it(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    a, b = run["task_runs"]
    k = key()
    first = sa.post(server.api + "/task_run_states", json={"results": [{"key": k, "data": b64(b"first")}], "writes": []})
    assert first.status_code == 200
    again = sa.post(
        server.api + "/task_run_states",
        json={
            "results": [{"key": k, "data": b64(b"second")}],
            "writes": [
                {"task_run_id": a["id"], "version": 0, "state": success_with("rwcloud://results/" + k)},
                {"task_run_id": b["id"], "version": 0, "state": {"type": "Running"}},
            ],
        },
    )
    assert [x["status"] for x in again.json()["results"]] == ["rejected", "ok"]
    assert again.json()["results"][0]["version"] == 0
    assert sa.get(server.api + "/results", params={"uri": "rwcloud://results/" + k}).content == b"first"
    assert sa.get(f"{server.api}/task_runs/{a['id']}").json()["version"] == 0
    # a key repeated inside one batch is refused too
    dup = key()
    r = sa.post(
        server.api + "/task_run_states",
        json={
            "results": [{"key": dup, "data": b64(b"x")}, {"key": dup, "data": b64(b"y")}],
            "writes": [{"task_run_id": a["id"], "version": 0, "state": success_with("rwcloud://results/" + dup)}],
        },
    )
    assert r.json()["results"][0]["status"] == "rejected"
    assert sa.get(server.api + "/results", params={"uri": "rwcloud://results/" + dup}).status_code == 404


def test_inline_results_belong_to_the_tenant_that_wrote_them(
    server: TestServer, sa: requests.Session, sb: requests.Session
) -> None:
    k = key()
    assert sa.post(server.api + "/task_run_states", json={"results": [{"key": k, "data": b64(b"mine")}], "writes": []}).ok
    uri = "rwcloud://results/" + k
    assert sb.get(server.api + "/results", params={"uri": uri}).status_code == 404
    run_b = server.make_run(sb)
    r = sb.post(
        server.api + "/task_run_states",
        json={
            "results": [{"key": k, "data": b64(b"theirs")}],
            "writes": [{"task_run_id": run_b["task_runs"][0]["id"], "version": 0, "state": success_with(uri)}],
        },
    )
    # keys are each tenant's own (issue 13 item 19): b's key is b's, a's stays a's
    assert r.json()["results"][0]["status"] == "ok"  # neither refused nor told that a has that key
    assert sa.get(server.api + "/results", params={"uri": uri}).content == b"mine"
    assert sb.get(server.api + "/results", params={"uri": uri}).content == b"theirs"


@pytest.mark.parametrize(
    "result",
    [{"key": "ABC", "data": ""}, {"key": "0" * 32, "data": "not base64!"}, {"key": "g" * 32, "data": ""}],
)
def test_malformed_inline_results_are_422(server: TestServer, sa: requests.Session, result: dict[str, str]) -> None:
    assert sa.post(server.api + "/task_run_states", json={"results": [result], "writes": []}).status_code == 422


def test_an_oversized_batch_is_413(server: TestServer, sa: requests.Session) -> None:
    big = b64(b"z" * server.max_body)
    r = sa.post(server.api + "/task_run_states", json={"results": [{"key": key(), "data": big}], "writes": []})
    assert r.status_code == 413


def test_a_later_write_of_a_task_run_is_not_applied_after_its_earlier_one_was_refused(
    server: TestServer, sa: requests.Session
) -> None:
    run = server.make_run(sa)
    a = run["task_runs"][0]
    assert sa.post(f"{server.api}/task_runs/{a['id']}/state", json={"version": 0, "state": {"type": "Pending"}}).ok
    r = sa.post(
        server.api + "/task_run_states",
        json={
            "writes": [
                {"task_run_id": a["id"], "version": 0, "state": {"type": "Running"}},  # stale
                {"task_run_id": a["id"], "version": 1, "state": {"type": "Success"}},  # would match
            ]
        },
    )
    assert [x["status"] for x in r.json()["results"]] == ["conflict", "conflict"]
    assert sa.get(f"{server.api}/task_runs/{a['id']}").json()["state"]["type"] == "Pending"


def test_the_flow_run_lease_gates_leased_task_writes(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    other = server.make_run(sa)
    a, b = run["task_runs"]
    mine, theirs = key(), key()
    url = f"{server.api}/flow_runs/{run['id']}"
    assert sa.post(url + "/state", json={"version": 0, "state": {"type": "Running"}, "lease": mine}).ok
    assert sa.get(url).json()["leased"] is True
    ok = sa.post(
        server.api + "/task_run_states",
        json={"lease": {"flow_run_id": run["id"], "token": mine}, "writes": [{"task_run_id": a["id"], "version": 0, "state": {"type": "Running"}}]},
    )
    assert ok.json()["results"][0]["status"] == "ok"
    # a leased batch cannot write into another flow run
    elsewhere = sa.post(
        server.api + "/task_run_states",
        json={
            "lease": {"flow_run_id": run["id"], "token": mine},
            "writes": [{"task_run_id": other["task_runs"][0]["id"], "version": 0, "state": {"type": "Running"}}],
        },
    )
    assert elsewhere.json()["results"][0]["status"] == "not_found"
    # another runner takes the flow run over: the first runner's writes stop applying
    assert sa.post(url + "/state", json={"version": 1, "state": {"type": "Running"}, "lease": theirs}).ok
    refused = sa.post(
        server.api + "/task_run_states",
        json={
            "lease": {"flow_run_id": run["id"], "token": mine},
            "writes": [{"task_run_id": b["id"], "version": 0, "state": {"type": "Running"}}],
        },
    )
    assert refused.status_code == 409 and "leased by another runner" in refused.json()["detail"]
    single = sa.post(f"{server.api}/task_runs/{b['id']}/state", json={"version": 0, "state": {"type": "Running"}, "lease": mine})
    assert single.status_code == 409 and single.json()["current_version"] == 0
    assert sa.get(f"{server.api}/task_runs/{b['id']}").json()["version"] == 0  # nothing applied
    # releasing: only the holder's token releases
    assert sa.post(url + "/lease/release", json={"lease": mine}).json() == {"released": False}
    assert sa.post(url + "/lease/release", json={"lease": theirs}).json() == {"released": True}
    assert sa.get(url).json()["leased"] is False
    assert sa.post(f"{server.api}/flow_runs/{uuid.uuid4()}/lease/release", json={"lease": mine}).status_code == 404


def test_children_are_got_or_created_in_one_request(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    one = sa.post(server.api + "/task_runs", json={"flow_run_id": run["id"], "task_slug": "a", "map_index": 3}).json()
    body = {"flow_run_id": run["id"], "task_slug": "a", "map_indexes": list(range(100))}
    r = sa.post(server.api + "/task_runs/batch", json=body)
    assert r.status_code == 200
    runs = r.json()["task_runs"]
    assert [t["map_index"] for t in runs] == list(range(100)) and len({t["id"] for t in runs}) == 100
    assert runs[3]["id"] == one["id"]  # existing children are returned, not duplicated
    again = sa.post(server.api + "/task_runs/batch", json=body).json()["task_runs"]
    assert [t["id"] for t in again] == [t["id"] for t in runs]
    assert len(sa.get(f"{server.api}/flow_runs/{run['id']}/task_runs").json()) == 2 + 100
    assert sa.post(server.api + "/task_runs/batch", json={**body, "task_slug": "nope"}).status_code == 404


# ------------------------------------------------------------------------------ cloud runs


@pytest.fixture
def cloud(server: TestServer) -> Iterator[Client]:
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        yield Client(server.url, server.token_a)


@pytest.fixture
def requests_made(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every request the cloud clients of this process send, as ``"METHOD path"`` (ids as ``{id}``)."""
    import re

    seen: Counter[str] = Counter()
    original = Client._request

    def counting(self: Client, method: str, path: str, **kwargs: Any) -> Any:
        seen[f"{method} {re.sub(r'/[0-9a-f-]{32,36}', '/{id}', path)}"] += 1
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Client, "_request", counting)
    return seen


def create_run(client: Client, flow: Any) -> str:
    s = flow.structure()
    return client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))


def histories(client: Client, run_id: str) -> dict[str, list[str]]:
    out = {}
    for t in client.get_flow_run_task_runs(run_id):
        name = t.task_slug if t.map_index == -1 else f"{t.task_slug}[{t.map_index}]"
        # after the run's creation (its Pending, version 0; a fresh map's child has none)
        out[name] = [h["state"]["type"] for h in client.get_task_run_states(t.id) if h["version"] > 0]
    return out


def test_a_leased_run_sends_claims_results_and_states_in_batches(cloud: Client, requests_made: Counter[str]) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    with Flow(unique()) as flow:
        last = inc(0)
        for _ in range(29):
            last = inc(last)
    run_id = create_run(cloud, flow)
    requests_made.clear()
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[last].result == 30
    assert requests_made["POST /task_runs/{id}/state"] == 0  # no synchronous claim
    assert requests_made["POST /results"] == 0  # every result went inline
    assert 1 <= requests_made["POST /task_run_states"] <= 30
    assert all(h == ["Running", "Success"] for h in histories(cloud, run_id).values())
    # every checkpointed result is readable from the server, as a new process would
    final = next(t for t in cloud.get_flow_run_task_runs(run_id) if type(t.state).__name__ == "Success" and t.task_slug.endswith("-30"))
    assert CloudResultHandler().read(final.state._result.value) == 30
    assert not heartbeat.beating()


def test_sync_claims_write_each_claim_at_once(cloud: Client, requests_made: Counter[str]) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    with Flow(unique()) as flow:
        inc(inc(inc(0)))
    run_id = create_run(cloud, flow)
    requests_made.clear()
    with temporary_config({"cloud.task_claims": "sync"}):
        assert flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id}).is_successful()
    assert requests_made["POST /task_runs/{id}/state"] >= 3
    assert all(h == ["Running", "Success"] for h in histories(cloud, run_id).values())


def test_a_large_result_is_uploaded_before_its_batch(
    cloud: Client, requests_made: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runwright_cloud import result_handler

    monkeypatch.setattr(result_handler, "INLINE_MAX_BYTES", 10_000)  # the test server takes 1 MiB bodies

    @task
    def big() -> bytes:
        return b"b" * 20_000

    @task
    def small() -> bytes:
        return b"s" * 100

    with Flow(unique()) as flow:
        big()
        small()
    run_id = create_run(cloud, flow)
    requests_made.clear()
    assert flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id}).is_successful()
    assert requests_made["POST /results"] == 1  # the big one; the small one went inline
    values = sorted(CloudResultHandler().read(t.state._result.value) for t in cloud.get_flow_run_task_runs(run_id))
    assert values == [b"b" * 20_000, b"s" * 100]


def test_a_fresh_maps_children_cost_one_request_besides_their_states(cloud: Client, requests_made: Counter[str]) -> None:
    @task
    def items() -> list[int]:
        return list(range(40))

    @task
    def square(x: int) -> int:
        return x * x

    with Flow(unique()) as flow:
        squares = square.map(items())
    run_id = create_run(cloud, flow)
    requests_made.clear()
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(40)]
    assert requests_made["POST /task_runs/batch"] == 1  # do the children exist? (no: their writes create them)
    assert requests_made["POST /task_runs"] == 0  # no child asked for its own run
    runs = histories(cloud, run_id)
    children = {k: v for k, v in runs.items() if "[" in k}
    assert len(children) == 40 and all(h == ["Running", "Success"] for h in children.values())


def test_a_resumed_map_of_thousands_gets_its_children_a_page_per_request_and_reports_every_state(
    cloud: Client, requests_made: Counter[str]
) -> None:
    n = 2 * CHILD_PAGE + 500

    @task
    def items() -> list[int]:
        return list(range(n))

    @task
    def square(x: int) -> int:
        return x * x

    with Flow(unique()) as flow:
        squares = square.map(items())
    run_id = create_run(cloud, flow)
    slug = next(t.slug for t in flow.tasks if t.name == "square")
    cloud.get_task_runs(run_id, slug, [7])  # a child run on the server (a resumed run): not a fresh map
    requests_made.clear()
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(n)]
    assert requests_made["POST /task_runs/batch"] == 3  # a page of children per request
    assert requests_made["POST /task_runs"] == 0  # no child asked for its own run
    # claims and final states, batched: no request carries more than batch_size writes
    assert requests_made["POST /task_run_states"] >= -(-2 * n // DEFAULTS["batch_size"])
    assert sum(requests_made.values()) <= n // 10
    children = [t for t in cloud.get_flow_run_task_runs(run_id) if t.map_index >= 0]
    assert sorted(t.map_index for t in children) == list(range(n))
    assert all(t.version == 2 and type(t.state).__name__ == "Success" for t in children)


def test_a_slow_server_slows_the_run_down_instead_of_growing_the_writers_queue(
    cloud: Client, server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runwright_cloud.writer import StateWriter

    services = cloud_plugin.backend.services
    writer = services.writers.get(services.clients.get(server.url, server.token_a), 500)
    monkeypatch.setattr(writer, "batch_size", 10)
    monkeypatch.setattr(writer, "max_queued", 60)
    peak = [0]
    original = Client.set_task_run_states

    def slow(self: Client, writes: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.01)  # the fault: a server 10 ms slower per batch than the engine
        return original(self, writes, *args, **kwargs)

    monkeypatch.setattr(Client, "set_task_run_states", slow)
    enqueue = StateWriter.enqueue

    def watched(self: StateWriter, *args: Any) -> None:
        enqueue(self, *args)
        if self is writer:
            peak[0] = max(peak[0], self.queued)

    monkeypatch.setattr(StateWriter, "enqueue", watched)

    @task
    def items() -> list[int]:
        return list(range(300))

    @task
    def square(x: int) -> int:
        return x * x

    with Flow(unique()) as flow:
        squares = square.map(items())
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(300)]
    assert 40 <= peak[0] <= 60  # the queue filled up to its bound, never past it
    histories_ = histories(cloud, run_id)
    children = {k: v for k, v in histories_.items() if "[" in k}
    assert len(children) == 300 and all(h == ["Running", "Success"] for h in children.values())  # nothing lost


def test_a_second_runner_cannot_start_a_flow_run_another_runner_holds(cloud: Client) -> None:
    calls: list[str] = []

    @task
    def body() -> None:
        calls.append("body")

    with Flow(unique()) as flow:
        body()
    run_id = create_run(cloud, flow)
    # another runner claimed it (with its lease) and is alive (fresh heartbeat)
    cloud.set_flow_run_state(run_id, 0, {"type": "Running", "message": "runner 1"}, lease=key())
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert isinstance(state, ClientFailed) and "being run by another runner" in str(state.message)
    assert calls == []
    assert histories(cloud, run_id) == {next(iter(flow.tasks)).slug: []}
    assert [h["state"]["type"] for h in cloud.get_flow_run_states(run_id)] == ["Scheduled", "Running"]
    # once its heartbeat is older than the zombie timeout, the flow run is taken over
    time.sleep(0.3)
    with temporary_config({"cloud.zombie_timeout": 0.2}):
        state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and calls == ["body"]
    assert [h["state"]["type"] for h in cloud.get_flow_run_states(run_id)] == ["Scheduled", "Running", "Running", "Success"]


def test_a_runner_whose_flow_run_was_taken_over_stops(cloud: Client) -> None:
    calls: list[str] = []

    @task
    def first() -> int:
        calls.append("first")
        return 1

    @task
    def takeover(x: int) -> int:
        from runwright.context import context

        calls.append("takeover")
        info = cloud.get_flow_run_info(context.flow_run_id)
        cloud.set_flow_run_state(info.id, info.version, {"type": "Running", "message": "runner 2"}, lease=key())
        return x

    @task
    def pause(x: int) -> int:
        calls.append("pause")
        time.sleep(0.3)  # the writer learns of the takeover meanwhile
        return x

    @task
    def later(x: int) -> int:
        calls.append("later")
        return x

    with Flow(unique()) as flow:
        later(pause(takeover(first())))
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert not state.is_finished()
    assert "later" not in calls  # it ended ClientFailed without running its body
    # the old runner wrote no final state; the flow run is the new runner's
    assert [h["state"]["type"] for h in cloud.get_flow_run_states(run_id)] == ["Scheduled", "Running", "Running"]
    assert cloud.get_flow_run_info(run_id).leased
    assert not heartbeat.beating()


def test_candidates_inline_only_their_own_tenants_results(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    k = key()
    uri = "rwcloud://results/" + k
    assert sa.post(server.api + "/task_run_states", json={"results": [{"key": k, "data": b64(b"mine")}], "writes": []}).ok

    def cached_state() -> dict[str, Any]:
        return {
            "type": "Cached",
            "message": None,
            "_result": {"type": "SafeResult", "value": uri, "result_handler": {"type": "cloud", "result_handler_service": None}},
            "cache_key": "k" * 64,
        }

    def candidates(session: requests.Session, name: str) -> list[dict[str, Any]]:
        answer = session.get(server.api + "/cached_states", params={"flow_name": name, "inline_results": "true", "limit": 100})
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()
        return rows

    name = "inline-" + key()
    for session in (sa, sb):
        run = server.make_run(session, ("a",), name)
        write = {"task_run_id": run["task_runs"][0]["id"], "version": 0, "state": cached_state()}
        assert session.post(server.api + "/task_run_states", json={"writes": [write]}).json()["results"][0]["status"] == "ok"
    assert [row.get("result") for row in candidates(sa, name)] == [b64(b"mine")]
    # b's state names a's key: b's candidate comes without a's bytes, until b has that key itself
    assert [row.get("result") for row in candidates(sb, name)] == [None]
    assert sb.post(server.api + "/task_run_states", json={"results": [{"key": k, "data": b64(b"theirs")}], "writes": []}).ok
    assert [row.get("result") for row in candidates(sb, name)] == [b64(b"theirs")]
    assert [row.get("result") for row in candidates(sa, name)] == [b64(b"mine")]
