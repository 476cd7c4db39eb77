"""Hostile request bodies against a real server: refused before they are read, bounded while
parsed, short errors, and a server that keeps answering others while it is flooded."""

from __future__ import annotations

import json
import math
import signal
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runwright_server import migrate
from runwright_server.auth import create_token
from runwright_server.db import make_engine
from runwright_server.testing import ServerProcess, TestServer


def _raw_request(url: str, head: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes, float]:
    """Send ``head`` (request line + headers) and ``body`` on a raw socket; return the status,
    the answer's body and the seconds until the answer began."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - started
        header, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(header.split(b" ")[1]), rest, elapsed


def _head(path: str, length: int, token: str | None = None, port_url: str = "") -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", f"Content-Length: {length}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("token", [None, "rw_not-a-real-token", "revoked"])
def test_a_body_is_never_read_without_a_valid_token(server: TestServer, token: str | None) -> None:
    """The headers of a 60 MB body and not one byte of it: the 401 comes at once."""
    token = server.revoked if token == "revoked" else token
    status, body, elapsed = _raw_request(server.url, _head("/api/v1/logs", 60 * 1024 * 1024, token))
    assert status == 401 and elapsed < 1.0
    assert "token" in json.loads(body)["detail"]


def test_json_routes_have_a_smaller_body_limit_than_the_routes_carrying_results(
    server: TestServer, sa: requests.Session
) -> None:
    between = server.max_json_body + 1024  # over the JSON limit, under the results' limit
    assert between < server.max_body
    padding = "x" * between
    r = sa.post(server.api + "/logs", data=json.dumps({"logs": [], "pad": padding}), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(server.max_json_body) in r.json()["detail"]
    r = sa.post(server.api + "/flows", json={"name": padding})
    assert r.status_code == 413
    batch = sa.post(server.api + "/task_run_states", json={"writes": [], "results": [{"key": uuid.uuid4().hex, "data": "A" * between}]})
    assert batch.status_code != 413  # a batch with inline results has the results' limit
    assert sa.post(server.api + "/results", data=b"x" * between).status_code == 201


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/logs", {"logs": [{}] * 100_000}),
        ("/task_runs/batch", {"flow_run_id": "x", "task_slug": "a", "map_indexes": [1] * 200_000}),
        ("/flows", {"name": "x", "tasks": [{"slug": str(i), "extra": 1} for i in range(15_000)]}),
    ],
)
def test_a_validation_error_is_short_and_never_echoes_the_input(
    server: TestServer, sa: requests.Session, path: str, body: dict
) -> None:
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) <= server.max_json_body
    started = time.monotonic()
    r = sa.post(server.api + path, data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text[:500]
    assert time.monotonic() - started < 2.0
    assert len(r.content) < 8 * 1024
    items = r.json()["detail"]
    assert items and all(set(item) == {"loc", "msg", "type"} for item in items)


def test_a_body_of_too_many_json_values_is_refused_before_it_is_parsed(server: TestServer, sa: requests.Session) -> None:
    raw = b'{"writes":[' + b",".join([b"1"] * (server.max_body // 2 - 16)) + b"]}"
    assert len(raw) <= server.max_body
    r = sa.post(server.api + "/task_run_states", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too many JSON values" in r.json()["detail"]


def test_malformed_json_is_a_short_422(server: TestServer, sa: requests.Session) -> None:
    for raw in (b"{not json", b'{"logs": [', b"\xff\xfe\x00", b'{"logs": NaN}'):
        r = sa.post(server.api + "/logs", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        assert r.json()["detail"][0]["loc"] == ["body"]


def _flood(url: str, token: str, max_json: int, max_body: int, stop: threading.Event, sent: list[int]) -> None:
    """Oversized bodies, over and over, in the ways a client can send them: declared too
    large (with and without a token), and streamed without a length past the limit."""
    heads = [
        _head("/api/v1/logs", 60 * 1024 * 1024),
        _head("/api/v1/logs", 60 * 1024 * 1024, token),
        _head("/api/v1/task_run_states", max_body + 1, token),
        _head("/api/v1/flows", max_json + 1, token),
    ]
    n = 0
    while not stop.is_set():
        head = heads[n % len(heads)]
        try:
            _raw_request(url, head, timeout=5)
            if n % 8 == 7:  # streamed: no Content-Length, chunks until the limit refuses it
                with requests.post(
                    url + "/api/v1/logs",
                    data=iter([b"[" + b"{}," * 20_000] * (max_json // 60_000 + 2)),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    timeout=5,
                ) as r:
                    assert r.status_code in (413, 422)
        except OSError:
            pass  # the server may close a connection whose body it refused: that is the point
        n += 1
    sent.append(n)


def test_health_and_state_writes_answer_within_100_ms_under_a_flood_of_oversized_bodies(
    server: TestServer, sa: requests.Session
) -> None:
    run = server.make_run(sa)
    task_run = run["task_runs"][0]["id"]
    stop = threading.Event()
    sent: list[int] = []
    threads = [
        threading.Thread(target=_flood, args=(server.url, server.token_b, server.max_json_body, server.max_body, stop, sent))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    health, writes = [], []
    try:
        time.sleep(0.3)
        deadline = time.monotonic() + 3.0
        version = 0
        with requests.Session() as probe:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert probe.get(server.api + "/health", timeout=5).status_code == 200
                health.append(time.perf_counter() - started)
                started = time.perf_counter()
                kind = "Running" if version % 2 == 0 else "Retrying"
                r = sa.post(f"{server.api}/task_runs/{task_run}/state", json={"version": version, "state": {"type": kind}}, timeout=5)
                writes.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
                version += 1
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert sum(sent) >= 40, sent  # the flood did flood
    for name, timings in (("health", health), ("state write", writes)):
        p90 = statistics.quantiles(timings, n=10)[-1]
        assert p90 < 0.1 and max(timings) < 0.5, (name, p90, max(timings))


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, Path]]:
    """A server of its own whose stderr (its log) the test reads after stopping it."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'server.db'}"
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    token = create_token(engine, "t", tenant="t")
    engine.dispose()
    proc = ServerProcess(db_url).start()
    yield proc, token, tmp_path_factory.mktemp("log")
    proc.stop()


def _stop_and_read_log(proc: ServerProcess) -> str:
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    _out, err = proc.proc.communicate(timeout=30)
    proc.proc = None
    return err.decode(errors="replace")


LONE = "\ud800"
NAN = math.nan


def _bodies(flow_run: str, task_run: str) -> list[tuple[str, object]]:
    log = {"flow_run_id": flow_run, "timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "message": "m"}
    return [
        ("/flows", {"name": LONE}),
        ("/flows", {"name": "f", "tasks": [{"slug": LONE}]}),
        ("/flows", {"name": NAN}),
        ("/flow_runs", {"flow_id": "f", "parameters": {LONE: 1}}),
        ("/flow_runs", {"flow_id": "f", "parameters": {"x": NAN}}),
        ("/flow_runs", {"flow_id": "f", "state": {"type": LONE}}),
        (f"/flow_runs/{flow_run}/state", {"version": 0, "state": {"type": LONE}}),
        (f"/flow_runs/{flow_run}/state", {"version": 0, "state": {"type": "Running", "message": LONE}}),
        (f"/flow_runs/{flow_run}/state", {"version": NAN, "state": {"type": "Running"}}),
        (f"/flow_runs/{flow_run}/state", {"version": math.inf, "state": {"type": "Running"}}),
        (f"/task_runs/{task_run}/state", {"version": 0, "state": {"type": "Running", "x": -math.inf}}),
        ("/task_run_states", {"writes": [{"task_run_id": task_run, "version": 0, "state": {"type": LONE}}]}),
        ("/task_run_states", {"writes": [{"task_run_id": LONE, "version": 0, "state": {"type": "Running"}}]}),
        ("/task_runs", {"flow_run_id": flow_run, "task_slug": "a", "map_index": NAN}),
        ("/task_runs/batch", {"flow_run_id": flow_run, "task_slug": "a", "map_indexes": [math.inf]}),
        ("/logs", {"logs": [{**log, "message": LONE}]}),
        ("/logs", {"logs": [{**log, "level": LONE}]}),
        ("/logs", {"logs": [{**log, "timestamp": NAN}]}),
        ("/logs", {"logs": [{**log, LONE: 1}]}),
    ]


def test_lone_surrogates_and_nan_anywhere_are_a_short_4xx_without_a_traceback(
    logged_server: tuple[ServerProcess, str, Path],
) -> None:
    proc, token, _ = logged_server
    api = proc.url + "/api/v1"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with requests.Session() as s:
        s.headers.update(headers)
        flow = s.post(api + "/flows", json={"name": "f", "tasks": [{"slug": "a"}]}).json()
        run = s.post(api + "/flow_runs", json={"flow_id": flow["id"]}).json()
        for path, body in _bodies(run["id"], run["task_runs"][0]["id"]):
            raw = json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \ud800
            r = s.post(api + path, data=raw)
            assert 400 <= r.status_code < 500, (path, raw, r.status_code, r.text)
            assert len(r.content) < 4096 and r.json()["detail"], (path, r.text)
        # query strings and paths too
        assert s.get(api + "/flows", params={"name": LONE.encode("utf-8", "surrogatepass")}).status_code < 500
        assert s.get(api + "/flow_runs/%ED%A0%80").status_code == 404
    log = _stop_and_read_log(proc)
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


def test_bodies_the_fast_parser_refuses_are_decided_by_json_loads(server: TestServer, sa: requests.Session) -> None:
    """pydantic-core parses bodies first; what it refuses, ``json.loads`` decides, as before:
    a byte-order mark is still accepted, NaN is still a 422 with json.loads' message, a lone
    surrogate still a 422 of the model; a body nested deeper than 200 levels is a short 422
    (an answer could not hold it again), one of 190 levels is stored and read back."""
    flow = server.make_flow(sa, ("a",))
    headers = {"Content-Type": "application/json"}

    def nested(levels: int) -> object:
        deep: object = 1
        for _ in range(levels):
            deep = {"d": deep}
        return deep

    too_deep = json.dumps({"flow_id": flow["id"], "parameters": {"deep": nested(230)}}).encode()
    refused = sa.post(server.api + "/flow_runs", data=too_deep, headers=headers)
    assert refused.status_code == 422 and "nested too deeply (at most 200 levels)" in refused.json()["detail"][0]["msg"]
    deep = nested(190)
    raw = json.dumps({"flow_id": flow["id"], "parameters": {"deep": deep}}).encode()
    created = sa.post(server.api + "/flow_runs", data=raw, headers=headers)
    assert created.status_code == 201, created.text[:300]
    run = created.json()
    assert sa.get(f"{server.api}/flow_runs/{run['id']}").json()["parameters"] == {"deep": deep}
    task_run = run["task_runs"][0]["id"]
    bom = b"\xef\xbb\xbf" + json.dumps({"version": 0, "state": {"type": "Running"}}).encode()
    assert sa.post(f"{server.api}/task_runs/{task_run}/state", data=bom, headers=headers).json()["version"] == 1
    nan = b'{"writes": [{"task_run_id": "%s", "version": 1, "state": {"type": "Success", "x": NaN}}]}' % task_run.encode()
    r = sa.post(server.api + "/task_run_states", data=nan, headers=headers)
    assert r.status_code == 422 and r.json()["detail"][0]["msg"] == "NaN is not valid JSON"
    lone = b'{"writes": [{"task_run_id": "%s", "version": 1, "state": {"type": "Success", "m": "\\ud800"}}]}' % task_run.encode()
    r = sa.post(server.api + "/task_run_states", data=lone, headers=headers)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "writes", 0, "state"]
    assert [h["version"] for h in sa.get(f"{server.api}/task_runs/{task_run}/states").json()] == [0, 1]
