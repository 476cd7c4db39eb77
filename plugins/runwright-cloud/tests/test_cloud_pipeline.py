"""The cloud client's pipeline for wide maps: pages of children fetched ahead, the writer
serializing the next batch while the previous one is on its way, and the state forms it
builds directly. Against the test server (a real subprocess with SQLite); mocks only inject
faults (a slow or unreachable server)."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runwright import Flow, task
from runwright.config import temporary_config
from runwright.engine.result import Result
from runwright.engine.result_handlers import JSONResultHandler
from runwright.engine.state import Failed, Pending, Running, Success
from runwright_cloud import CloudFlowRunner, journal
from runwright_cloud.client import Client
from runwright_cloud.cloud_settings import load_settings
from runwright_cloud.errors import ServerUnreachable
from runwright_cloud.ids import new_id
from runwright_cloud.plugin import plugin as cloud_plugin
from runwright_cloud.reporting.reports import CHILD_PAGE, ChildRuns, TaskRunReport
from runwright_cloud.state_bodies import StateForms
from runwright_cloud.writer import StateWriter
from runwright_server.testing import TestServer, unique


@pytest.fixture
def cloud(server: TestServer) -> Iterator[Client]:
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        yield Client(server.url, server.token_a)


def create_run(client: Client, flow: Any) -> str:
    s = flow.structure()
    return client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))


def squares_flow(n: int) -> tuple[Flow, Any]:
    @task
    def items() -> list[int]:
        return list(range(n))

    @task
    def square(x: int) -> int:
        return x * x

    with Flow(unique()) as flow:
        squares = square.map(items())
    return flow, squares


def child_histories(client: Client, run_id: str) -> dict[int, list[str]]:
    """Each child's states after its run's creation (the Pending, version 0, of a page's
    children; a fresh map's child has none)."""
    return {
        t.map_index: [h["state"]["type"] for h in client.get_task_run_states(t.id) if h["version"] > 0]
        for t in client.get_flow_run_task_runs(run_id)
        if t.map_index >= 0
    }


def run_with_a_child_on_the_server(client: Client, flow: Any) -> str:
    """A flow run whose map has a child run on the server already (as when it is resumed):
    its children's runs come in pages, not created by their first writes."""
    run_id = create_run(client, flow)
    slug = next(t.slug for t in flow.tasks if t.name == "square")
    client.get_task_runs(run_id, slug, [0])
    return run_id


# ------------------------------------------------------------------------------ pages ahead


def test_the_pages_of_a_wide_map_come_ahead_of_its_children(cloud: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 3 * CHILD_PAGE + 10
    fetched: list[tuple[str, int, int]] = []  # (thread, first index, count) per page request
    original, first_page = Client.get_task_runs, Client.get_task_runs_unless_fresh

    def watched(self: Client, flow_run_id: str, slug: str, indexes: Any) -> Any:
        indexes = list(indexes)
        fetched.append((threading.current_thread().name, indexes[0], len(indexes)))
        return original(self, flow_run_id, slug, indexes)

    def watched_first(self: Client, flow_run_id: str, slug: str, indexes: Any) -> Any:
        indexes = list(indexes)
        fetched.append((threading.current_thread().name, indexes[0], len(indexes)))
        return first_page(self, flow_run_id, slug, indexes)

    flow, squares = squares_flow(n)
    run_id = run_with_a_child_on_the_server(cloud, flow)
    monkeypatch.setattr(Client, "get_task_runs", watched)
    monkeypatch.setattr(Client, "get_task_runs_unless_fresh", watched_first)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(n)]
    # the parent asks for the first page; every later page comes on the background thread
    assert fetched[0] == (threading.current_thread().name, 0, CHILD_PAGE)
    assert sorted(first for _, first, _ in fetched) == [0, 1000, 2000, 3000]
    assert all(name == "runwright-cloud-pages" for name, _, _ in fetched[1:])
    histories = child_histories(cloud, run_id)
    assert sorted(histories) == list(range(n))  # one task run per child: none fetched twice
    assert all(h == ["Running", "Success"] for h in histories.values())


def test_the_children_of_a_fresh_map_are_created_by_their_first_writes(cloud: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 2 * CHILD_PAGE + 5
    asked: list[Any] = []  # the fresh_ok of each POST /task_runs/batch
    original = Client._request

    def counting(self: Client, method: str, path: str, **kwargs: Any) -> Any:
        if path == "/task_runs/batch":
            asked.append(kwargs["json_body"].get("fresh_ok"))
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Client, "_request", counting)
    flow, squares = squares_flow(n)
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(n)]
    assert asked == [True]  # the parent asked once whether its children exist; no pages
    runs = sorted((t for t in cloud.get_flow_run_task_runs(run_id) if t.map_index >= 0), key=lambda t: t.map_index)
    assert [t.map_index for t in runs] == list(range(n))
    assert all(uuid.UUID(t.id).version == 7 and t.state.is_successful() for t in runs)
    assert len({t.id for t in runs}) == n
    for t in runs[:3] + runs[-3:]:  # created by their first write: no Pending row
        assert [(h["version"], h["state"]["type"]) for h in cloud.get_task_run_states(t.id)] == [(1, "Running"), (2, "Success")]


def test_children_taken_in_any_order_get_their_own_run_once_a_page_per_request(cloud: Client) -> None:
    flow, _ = squares_flow(1)
    run_id = create_run(cloud, flow)
    slug = next(t.slug for t in flow.tasks if t.name == "square")
    n = 2 * CHILD_PAGE + 300
    first = cloud.get_task_runs(run_id, slug, range(CHILD_PAGE))
    children = ChildRuns(slug, {run.map_index: run for run in first}, run_id, n, prefetch=True)
    order = list(range(n))
    random.Random(7).shuffle(order)  # a thread pool's children arrive in no particular order
    taken = {index: children.take(index, cloud) for index in order}
    assert all(run is not None and run.map_index == index for index, run in taken.items())
    assert len({run.id for run in taken.values()}) == n
    assert children.pages == 2  # pages 2 and 3: one request each, however the children came
    assert children.take(5, cloud) is None  # taken once: a second take asks the server itself
    assert not children  # nothing kept once handed out


def test_a_page_that_could_not_be_fetched_ahead_is_fetched_by_its_children(
    cloud: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = Client.get_task_runs
    failures = [0]

    def unreachable_ahead(self: Client, *args: Any) -> Any:
        if threading.current_thread().name == "runwright-cloud-pages" and not failures[0]:
            failures[0] += 1
            raise ServerUnreachable("the fault: the server is gone for a moment")
        return original(self, *args)

    monkeypatch.setattr(Client, "get_task_runs", unreachable_ahead)
    n = 2 * CHILD_PAGE + 5
    flow, squares = squares_flow(n)
    run_id = run_with_a_child_on_the_server(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert failures[0] == 1 and "ahead" in caplog.text
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(n)]
    histories = child_histories(cloud, run_id)
    assert sorted(histories) == list(range(n)) and all(h == ["Running", "Success"] for h in histories.values())


# ------------------------------------------------------------------------------ the writer's pipeline


def test_a_slow_server_gets_two_batches_at_once_the_next_serialized_and_the_queue_stays_bounded(
    cloud: Client, server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = cloud_plugin.backend.services
    writer = services.writers.get(services.clients.get(server.url, server.token_a), 500)
    monkeypatch.setattr(writer, "batch_size", 10)
    monkeypatch.setattr(writer, "max_queued", 40)
    seen = {"queued": 0, "ready": 0, "sending": 0}
    sending = [0]
    lock = threading.Lock()
    original = Client.set_task_run_states

    def slow(self: Client, writes: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            sending[0] += 1
            seen["sending"] = max(seen["sending"], sending[0])
        try:
            time.sleep(0.01)  # the fault: a server 10 ms slower per batch than the engine
            seen["queued"] = max(seen["queued"], writer.queued)
            seen["ready"] = max(seen["ready"], writer.in_flight)  # the batches out, and the next one serialized
            return original(self, writes, *args, **kwargs)
        finally:
            with lock:
                sending[0] -= 1

    monkeypatch.setattr(Client, "set_task_run_states", slow)
    flow, squares = squares_flow(200)
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[squares].result == [x * x for x in range(200)]
    assert seen["sending"] == writer.senders == 2  # two batches on their way at once
    assert seen["ready"] == writer.pipeline == 3
    assert 30 <= seen["queued"] <= 40
    histories = child_histories(cloud, run_id)
    assert len(histories) == 200 and all(h == ["Running", "Success"] for h in histories.values())  # in order, none lost


def test_writes_queued_behind_an_undelivered_batch_are_journaled_after_it_never_sent(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    client = Client(server.url, server.token_a)
    flow, _ = squares_flow(1)
    run_id = create_run(client, flow)
    slug = next(t.slug for t in flow.tasks if t.name == "square")
    (run,) = client.get_task_runs(run_id, slug, [0])
    sent: list[int] = []
    queued = threading.Event()
    original = Client.set_task_run_states

    def unreachable_first(self: Client, writes: Any, *args: Any, **kwargs: Any) -> Any:
        writes = list(writes)
        sent.append(len(writes))
        if len(sent) == 1:
            assert queued.wait(10)  # the run's next write is queued while this one is out
            time.sleep(0.05)  # a second sender is idle meanwhile: the write must still wait
            raise ServerUnreachable("the fault: the server went away during the first batch")
        return original(self, writes, *args, **kwargs)

    monkeypatch.setattr(Client, "set_task_run_states", unreachable_first)
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        settings = load_settings()
    writer = StateWriter(client, batch_size=1, linger=0.0)
    report = TaskRunReport(run.id, run.version, slug, 0, settings, run_id, _client=client, _writer=writer)
    writer.enqueue(report, Running("Starting task run."), False)
    writer.enqueue(report, Failed("it failed"), False)
    queued.set()
    writer.flush()
    assert sent == [1]  # the second write never went out ahead of the first, nor beside it
    assert writer.lost(run_id) == 2 and report.undelivered
    journal = tmp_path / ".runwright" / "journal" / f"{run_id}.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(w["version"], w["state"]["type"]) for line in lines for w in line["writes"]] == [(0, "Running"), (1, "Failed")]
    assert client.get_task_run_info(run_id, slug, 0).version == 0  # nothing reached the server


def test_a_fresh_childs_journaled_writes_create_its_run_when_replayed(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    client = Client(server.url, server.token_a)
    flow, _ = squares_flow(1)
    run_id = create_run(client, flow)
    slug = next(t.slug for t in flow.tasks if t.name == "square")
    child = new_id()  # named by the runner; the outage kept its first writes from the server
    creating = {"task_run_id": child, "version": 0, "state": {"type": "Running"}, "task_slug": slug, "map_index": 3}
    journal.append(client.api, run_id, [creating], [])
    journal.append(client.api, run_id, [{"task_run_id": child, "version": 1, "state": {"type": "Success", "message": "3"}}], [])
    # the replay names no lease: the child's run is got or created first, then written
    assert journal.replay(client, run_id) == 2
    run = client.get_task_run_info(run_id, slug, 3)
    assert run.state.is_successful() and run.state.message == "3"
    assert [h["state"]["type"] for h in client.get_task_run_states(run.id)] == ["Pending", "Running", "Success"]
    assert not journal.pending(run_id)


# ------------------------------------------------------------------------------ state forms


@pytest.mark.parametrize(
    "state",
    [
        Running("Starting task run."),
        Running(),
        Success("Task run succeeded.", result=Result(3)),  # a value never stored: NoResult on the wire
        Success("done", result=None),
        Pending("waiting", cached_inputs={"x": Result(1)}),
        Failed("boom"),
    ],
    ids=["running", "running-no-message", "success-unstored", "success-none", "pending", "failed"],
)
def test_the_writer_builds_the_same_state_dicts_as_state_serialize(state: Any) -> None:
    assert StateForms().serialize(state) == state.serialize()


def test_a_batch_body_joined_from_state_texts_is_the_json_of_its_writes() -> None:
    handler = JSONResultHandler()
    stored = Result({"v": "é"}, handler)
    stored.store_safe_value()
    states = [
        Running("Starting task run."),
        Running(),
        Success("Task run succeeded.", result=stored),
        Success("naïve \"quoted\" \u2603", result=Result(3)),
        Failed("boom"),  # not a form of the writer's own: encoded as a dict
    ]
    forms = StateForms()
    writes: list[dict[str, Any]] = []
    for version, state in enumerate(states):
        writes.append({"task_run_id": new_id(), "version": version, "state": forms.serialize(state)})
    writes[0].update(task_slug="squäre-1", map_index=7)  # a write that creates its child
    changed = forms.serialize(Running("x"))
    changed["cache_key"] = "k"  # a form changed after it was made: its text is not used
    writes.append({"task_run_id": new_id(), "version": 0, "state": changed})
    client = Client("http://127.0.0.1:9", "token")
    results = [{"key": "0" * 32, "data": "AAAA"}, {"data": "QQ==", "key": "1" * 32}, {"key": "é\"", "data": "x", "n": 1}]
    for lease, inline in ((None, []), (("run", "lease-token"), results), (None, results[:1])):
        encoded = client.encode_task_run_states(writes, lease=lease, results=inline)
        plain = json.dumps(client._states_body(writes, lease, inline)[1], separators=(",", ":")).encode()
        assert encoded == plain  # byte for byte what json.dumps gives


def test_a_stored_result_and_its_handler_serialize_as_state_serialize_does() -> None:
    forms = StateForms()
    handler = JSONResultHandler()
    states = []
    for value in ("a", "b"):
        result = Result(value, handler)
        result.store_safe_value()
        states.append(Success("Task run succeeded.", result=result))
    for state in states:  # the second one reuses the handler's form
        assert forms.serialize(state) == state.serialize()
        assert state.serialize()["_result"]["type"] == "SafeResult"
