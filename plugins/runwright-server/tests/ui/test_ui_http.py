"""The UI's gate, CSRF, sign-out, tenant scoping and path prefix, checked over plain HTTP
(no browser needed), and the runs list answering fast with 100,000 runs stored."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from runwright_server.testing import ServerProcess, TestServer
from runwright_server.testing.browser import Api, csrf_of, ui_session


def test_every_page_without_a_session_redirects_to_the_sign_in_page(server: TestServer) -> None:
    for path in ("/", "/flow-runs", "/flows", "/deployments", "/agents", f"/flow-runs/{uuid.uuid4()}", "/live"):
        r = requests.get(server.url + path, allow_redirects=False, cookies={"runwright_session": "forged"})
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(server: TestServer, api: Api) -> None:
    run = api.run(api.flow(["a"]))
    ui = ui_session(server, server.token_a)
    r = ui.post(f"{server.url}/flow-runs/{run['id']}/cancel", data={"csrf": "wrong"}, allow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = ui.post(f"{server.url}/flow-runs/{run['id']}/cancel", allow_redirects=False)
    assert r.status_code == 403
    assert api.get_run(run["id"])["state"]["type"] == "Scheduled"
    page = ui.get(f"{server.url}/flow-runs/{run['id']}")
    r = ui.post(f"{server.url}/flow-runs/{run['id']}/cancel", data={"csrf": csrf_of(page.text)}, allow_redirects=False)
    assert r.status_code == 303
    assert api.get_run(run["id"])["state"]["type"] == "Cancelled"


def test_the_session_cookie_is_http_only_and_sign_out_ends_the_session(server: TestServer) -> None:
    s = requests.Session()
    r = s.post(server.url + "/login", data={"token": server.token_a}, allow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    value = s.cookies["runwright_session"]
    html = s.get(server.url + "/").text
    assert s.post(server.url + "/logout", data={"csrf": csrf_of(html)}, allow_redirects=False).status_code == 303
    r = requests.get(server.url + "/", cookies={"runwright_session": value}, allow_redirects=False)
    assert r.status_code == 303


def test_a_session_never_reaches_another_tenants_run(server: TestServer, api: Api) -> None:
    run = api.run(api.flow(["a"]))
    b = ui_session(server, server.token_b)
    for tail in ("", "/task-runs.json", "/graph.json", "/logs.json", f"/tasks/{api.task_runs(run['id'])[0]['id']}"):
        assert b.get(f"{server.url}/flow-runs/{run['id']}{tail}").status_code == 404, tail
    html = b.get(server.url + "/").text
    r = b.post(f"{server.url}/flow-runs/{run['id']}/cancel", data={"csrf": csrf_of(html)}, allow_redirects=False)
    assert r.status_code == 404
    assert api.get_run(run["id"])["state"]["type"] == "Scheduled"


def test_pages_work_under_a_proxy_path_prefix(server: TestServer) -> None:
    prefixed = {"X-Forwarded-Prefix": "/tools/runwright"}
    r = requests.get(server.url + "/flow-runs", headers=prefixed, allow_redirects=False)
    assert r.headers["location"] == "/tools/runwright/login?next=/flow-runs"
    r = requests.post(server.url + "/login", data={"token": server.token_a}, headers=prefixed, allow_redirects=False)
    assert r.headers["location"] == "/tools/runwright/"
    assert "Path=/tools/runwright" in r.headers["set-cookie"]
    html = requests.get(server.url + "/", headers=prefixed, cookies={"runwright_session": r.cookies["runwright_session"]}).text
    assert 'href="/tools/runwright/flow-runs"' in html
    assert 'src="/tools/runwright/static/vendor/htmx/htmx.min.js"' in html
    docs = requests.get(server.url + "/docs", headers=prefixed).text
    assert "/tools/runwright/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    assert "/tools/runwright/openapi.json" in docs
    assert "cdn" not in docs.lower()
    # a prefix that is not a plain path is ignored
    r = requests.get(server.url + "/", headers={"X-Forwarded-Prefix": "//evil.example"}, allow_redirects=False)
    assert r.headers["location"] == "/login?next=/"


def test_a_malformed_request_is_a_clean_answer(server: TestServer) -> None:
    ui = ui_session(server, server.token_a)
    assert ui.get(server.url + "/flow-runs/not-an-id!").status_code == 404
    assert ui.get(server.url + "/flow-runs?before=garbage&since=yesterday").status_code == 200
    assert ui.get(server.url + "/flow-runs?flow=" + "x" * 5000).status_code == 422
    r = requests.post(server.url + "/login", data=b"\xff\xfe", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 401
    assert requests.post(server.url + "/login", data={"token": "x" * 10_000}).status_code == 401


RUNS = 100_000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServerProcess, str]:
    """A server whose database holds 100,000 runs of one tenant (written in bulk: the API
    would take minutes), in 20 flows and 5 states, created over the last 30 days."""
    from sqlalchemy import select

    from runwright_server import migrate, models
    from runwright_server.auth import create_token
    from runwright_server.db import make_engine, write_tx

    url = f"sqlite:///{Path(tmp_path_factory.mktemp('big')) / 'big.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    token = create_token(engine, "perf", tenant="perf")
    now = datetime.now(UTC).replace(tzinfo=None)
    states = ["Success", "Success", "Success", "Failed", "Running", "Scheduled", "Cancelled"]
    with write_tx(engine) as conn:
        tenant = conn.execute(select(models.tenants.c.id)).scalar()
        flows = [str(uuid.uuid4()) for _ in range(20)]
        conn.execute(models.flows.insert(), [
            {"id": f, "tenant_id": tenant, "name": f"flow-{i}", "version": None, "content_hash": f.replace("-", "") + "0" * 32,
             "tasks": "[]", "edges": "[]", "created": now} for i, f in enumerate(flows)
        ])
        rows = []
        for i in range(RUNS):
            state = states[i % len(states)]
            created = now - timedelta(seconds=26 * (RUNS - i))
            rows.append({
                "id": str(uuid.uuid4()), "tenant_id": tenant, "flow_id": flows[i % 20], "parameters": "{}", "context": "{}",
                "scheduled_start_time": created, "state": json.dumps({"type": state, "message": None}), "state_type": state,
                "version": 1, "heartbeat": None, "created": created, "updated": created + timedelta(seconds=5),
            })
            if len(rows) == 10_000:
                conn.execute(models.flow_runs.insert(), rows)
                rows = []
    engine.dispose()
    proc = ServerProcess(url).start()
    try:
        yield proc, token
    finally:
        proc.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "query",
    ["", "?state=Failed", "?flow=flow-7", "?flow=flow-7&state=Running", "?since=2000-01-01T00:00&until=2100-01-01T00:00"],
)
def test_a_runs_list_page_answers_within_150_ms_with_100000_runs(big_server: tuple[ServerProcess, str], query: str) -> None:
    proc, token = big_server
    s = requests.Session()
    s.post(proc.url + "/login", data={"token": token})
    first = s.get(proc.url + "/flow-runs" + query)
    assert first.status_code == 200 and first.text.count("data-run=") == 50
    older = first.text.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    timings = {"first page": [], "an older page": []}
    for _ in range(15):
        for label, path in (("first page", "/flow-runs" + query), ("an older page", older)):
            start = time.perf_counter()
            r = s.get(proc.url + path)
            timings[label].append(time.perf_counter() - start)
            assert r.status_code == 200 and r.text.count("data-run=") == 50
    for label, values in timings.items():
        print(f"\nruns list {query or '(no filter)'}, {label}: min {min(values) * 1000:.1f} ms, median {statistics.median(values) * 1000:.1f} ms (request round trip over 127.0.0.1)")
    assert min(timings["first page"]) < 0.150 and min(timings["an older page"]) < 0.150
