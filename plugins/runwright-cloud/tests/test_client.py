"""The HTTP client: operations against the real server, typed errors, retries, pickling."""

from __future__ import annotations

import http.server
import json
import pickle
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from runwright_cloud.client import Client, FlowRunInfo
from runwright_cloud.errors import (
    AuthorizationError,
    NotFoundError,
    ServerError,
    ServerUnreachable,
    VersionConflict,
)
from runwright_server import migrate
from runwright_server.auth import create_token
from runwright_server.db import make_engine
from runwright_server.testing import ServerProcess, TestServer, free_port, unique


@pytest.fixture
def client(server: TestServer) -> Client:
    return Client(server.url, server.token_a, retries=1, backoff=0.01)


def test_operations_round_trip(client: Client) -> None:
    name = unique()
    flow_id = client.register_flow(name, ["a", {"slug": "b", "name": "B"}], [("a", "b")])
    assert client.register_flow(name, ["a", {"slug": "b", "name": "B"}], [("a", "b")]) == flow_id
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    run_id = client.create_flow_run(flow_id, parameters={"p": 1}, context={"c": 2}, scheduled_start_time=when)
    info = client.get_flow_run_info(run_id)
    assert isinstance(info, FlowRunInfo)
    assert (info.flow_id, info.flow_name, info.parameters, info.context, info.version) == (flow_id, name, {"p": 1}, {"c": 2}, 0)
    assert info.scheduled_start_time == when and type(info.state).__name__ == "Scheduled"
    assert sorted(t.task_slug for t in info.task_runs) == ["a", "b"]

    assert client.set_flow_run_state(run_id, 0, {"type": "Running"}) == 1
    a = next(t for t in info.task_runs if t.task_slug == "a")
    assert client.get_task_run_info(run_id, "a").id == a.id
    child = client.get_task_run_info(run_id, "a", map_index=0)
    assert child.map_index == 0 and child.version == 0 and type(child.state).__name__ == "Pending"
    assert client.set_task_run_state(a.id, 0, {"type": "Running"}, cache_for=timedelta(hours=1)) == 1
    results = client.set_task_run_states(
        [{"task_run_id": a.id, "version": 1, "state": {"type": "Cached", "k": 1}}, {"task_run_id": child.id, "version": 5, "state": {"type": "Running"}}]
    )
    assert [r["status"] for r in results] == ["ok", "conflict"]
    cached = client.get_latest_cached_states(name, "a", datetime.now(UTC) - timedelta(minutes=1))
    assert cached == [{"type": "Cached", "k": 1}]
    assert client.get_latest_cached_states(name, "a", datetime.now(UTC) + timedelta(minutes=1)) == []
    client.update_flow_run_heartbeat(run_id)
    client.update_task_run_heartbeat(a.id)
    assert [s["version"] for s in client.get_flow_run_states(run_id)] == [0, 1]
    assert len(client.get_flow_run_task_runs(run_id)) == 3
    assert client.list_flow_runs(flow_id)[0]["id"] == run_id

    uri = client.upload_result(b"\x80\x05opaque")
    assert client.download_result(uri) == b"\x80\x05opaque"
    assert client.write_logs([{"flow_run_id": run_id, "timestamp": datetime.now(UTC), "level": "INFO", "name": "n", "message": "m"}]) == 1
    assert client.get_flow_run_logs(run_id)[0]["message"] == "m"


def test_a_brief_batch_answer_is_only_the_count_unless_a_write_did_not_apply(client: Client, server: TestServer) -> None:
    flow_id = client.register_flow(unique(), ["a", "b", "c"], [])
    run = client.get_flow_run_info(client.create_flow_run(flow_id))
    a, b, c = sorted(run.task_runs, key=lambda t: t.task_slug)
    writes = [
        {"task_run_id": a.id, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": a.id, "version": 1, "state": {"type": "Success"}},
        {"task_run_id": b.id, "version": 0, "state": {"type": "Running"}},
    ]
    assert client.set_task_run_states(writes, brief=True) is None  # every write applied
    assert [client.get_task_run_info(run.id, slug).version for slug in ("a", "b")] == [2, 1]
    # one write that does not apply: every outcome comes back, as without brief
    again = client.set_task_run_states([{"task_run_id": b.id, "version": 1, "state": {"type": "Success"}}, writes[2]], brief=True)
    assert again is not None and [r["status"] for r in again] == ["ok", "conflict"]
    # on the wire: the preference, and the server saying it applied it
    answer = requests.post(
        server.url + "/api/v1/task_run_states",
        json={"writes": [{"task_run_id": c.id, "version": 0, "state": {"type": "Running"}}]},
        headers={"Authorization": f"Bearer {server.token_a}", "Prefer": "return=minimal"},
        timeout=10,
    )
    assert answer.json() == {"applied": 1} and answer.headers["Preference-Applied"] == "return=minimal"


def test_state_writes_take_state_objects_as_the_seeds_client_did(client: Client) -> None:
    from runwright.engine.state import Running, Success

    name = unique()
    flow_id = client.register_flow(name, ["a"], [])
    run_id = client.create_flow_run(flow_id)
    version = client.set_flow_run_state(run_id, 0, Running("claimed"))
    task_run = client.get_task_run_info(run_id, "a")
    task_version = client.set_task_run_state(task_run.id, task_run.version, Running())
    client.set_task_run_state(task_run.id, task_version, Success("done"))
    client.set_flow_run_state(run_id, version, {"type": "Success", "message": "dicts still work"})
    history = [(h["state"]["type"], h["state"]["message"]) for h in client.get_task_run_states(task_run.id)]
    assert history[1:] == [("Running", None), ("Success", "done")]
    assert type(client.get_flow_run_info(run_id).state).__name__ == "Success"
    with pytest.raises(TypeError, match="runwright State or its serialized dict"):
        client.set_task_run_state(task_run.id, task_version + 1, "Success")  # type: ignore[arg-type]


def test_typed_errors(server: TestServer, client: Client) -> None:
    with pytest.raises(AuthorizationError) as exc:
        Client(server.url, "rw_wrong").get_flow_run_info("x")
    assert "runwright server token create" in str(exc.value) and "RUNWRIGHT__CLOUD__API_TOKEN" in str(exc.value)
    with pytest.raises(AuthorizationError, match="api_token"):
        Client(server.url, "").list_flow_runs()
    with pytest.raises(NotFoundError, match="flow run not found"):
        client.get_flow_run_info("00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFoundError):
        client.download_result("rwcloud://results/" + "a" * 32)
    run = server.make_run(server.session())
    client.set_flow_run_state(run["id"], 0, {"type": "Running", "message": "first"})
    with pytest.raises(VersionConflict) as conflict:
        client.set_flow_run_state(run["id"], 0, {"type": "Running"})
    assert conflict.value.current_version == 1
    assert conflict.value.current_state == {"type": "Running", "message": "first"}


def test_unreachable_server_names_the_url() -> None:
    port = free_port()
    client = Client(f"http://127.0.0.1:{port}", "rw_x", retries=2, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable) as exc:
        client.get_flow_run_info("x")
    assert f"127.0.0.1:{port}" in str(exc.value) and "runwright server start" in str(exc.value)
    assert "3 attempt" in str(exc.value)
    assert time.monotonic() - started < 5


def test_config_fallback_from_environment(monkeypatch: pytest.MonkeyPatch, server: TestServer) -> None:
    monkeypatch.setenv("RUNWRIGHT__CLOUD__API", server.url)
    monkeypatch.setenv("RUNWRIGHT__CLOUD__API_TOKEN", server.token_a)
    assert Client().health()


def test_pickle_and_threads(client: Client, server: TestServer) -> None:
    clone = pickle.loads(pickle.dumps(client))
    assert clone.api == client.api and clone.health()
    run = server.make_run(server.session())

    def beat(_: int) -> None:
        for _ in range(10):
            clone.update_flow_run_heartbeat(run["id"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(beat, range(4)))


def test_retries_across_a_server_restart(tmp_path: Path) -> None:
    """A real fault: the server is killed, and started again on the same port mid-call."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    token = create_token(engine, "r")
    engine.dispose()
    proc = ServerProcess(url).start()
    try:
        srv = TestServer(proc.url, url, token, token, token, proc, 0)
        run = srv.make_run(srv.session())
        client = Client(proc.url, token, retries=8, backoff=0.1)  # up to ~25 s of backoff
        assert client.get_flow_run_info(run["id"]).version == 0
        proc.kill()
        restarter = threading.Timer(0.3, proc.start)
        restarter.start()
        try:
            info = client.get_flow_run_info(run["id"])  # connection refused, retried until it is back
            assert info.id == run["id"]
            assert client.set_flow_run_state(run["id"], 0, {"type": "Running"}) == 1
        finally:
            restarter.join()
    finally:
        proc.stop()


# ------------------------------------------------------------------ scripted faults


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of the server's script."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.seen.append((self.command, self.path, body))  # type: ignore[attr-defined]
        status, payload = self.server.script.pop(0)  # type: ignore[attr-defined]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    httpd.script = []  # type: ignore[attr-defined]
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _client(httpd: http.server.ThreadingHTTPServer, retries: int = 3) -> Client:
    return Client(f"http://127.0.0.1:{httpd.server_address[1]}", "rw_t", retries=retries, backoff=0.01)


def test_5xx_is_retried_for_idempotent_calls(scripted: Any) -> None:
    scripted.script += [(503, {}), (502, {}), (200, {"status": "ok"})]
    assert _client(scripted).health()
    assert len(scripted.seen) == 3


def test_5xx_after_every_retry_is_a_server_error(scripted: Any) -> None:
    scripted.script += [(500, {"detail": "boom"})] * 3
    with pytest.raises(ServerError):
        _client(scripted, retries=2).health()


def test_create_flow_run_is_not_retried_after_a_5xx(scripted: Any) -> None:
    scripted.script += [(503, {"detail": "busy"})]
    with pytest.raises(ServerError):
        _client(scripted).create_flow_run("f")
    assert len(scripted.seen) == 1


def test_retried_state_write_recognised_as_applied(scripted: Any) -> None:
    state = {"type": "Running", "message": None}
    scripted.script += [(502, {}), (409, {"detail": "conflict", "current_version": 4, "current_state": state})]
    assert _client(scripted).set_task_run_state("t", 3, state) == 4


def test_retried_state_write_that_lost_is_a_conflict(scripted: Any) -> None:
    scripted.script += [
        (502, {}),
        (409, {"detail": "conflict", "current_version": 4, "current_state": {"type": "Failed"}}),
    ]
    with pytest.raises(VersionConflict) as exc:
        _client(scripted).set_task_run_state("t", 3, {"type": "Running"})
    assert exc.value.current_state == {"type": "Failed"}


def test_first_attempt_conflict_is_never_taken_as_success(scripted: Any) -> None:
    state = {"type": "Running"}
    scripted.script += [(409, {"detail": "conflict", "current_version": 4, "current_state": state})]
    with pytest.raises(VersionConflict):
        _client(scripted).set_flow_run_state("r", 3, state)
