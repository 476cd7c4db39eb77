"""Bearer tokens on every endpoint, and tenant isolation (another tenant's things are 404)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from runwright_server import migrate
from runwright_server.app import create_app
from runwright_server.auth import TokenCache, create_token
from runwright_server.db import make_engine
from runwright_server.settings import Settings
from runwright_server.testing import ServerProcess, TestServer, unique


def _endpoints() -> list[tuple[str, str]]:
    """Every (method, path) the app routes (from its OpenAPI paths, which FastAPI builds from
    the routes), path parameters filled with random ids."""
    app = create_app(Settings(db_url="sqlite://"))
    found = []
    for template, operations in app.openapi()["paths"].items():
        if template == "/api/v1/health":
            continue
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)
        found.extend((method.upper(), path) for method in sorted(operations))
    return found


ENDPOINTS = _endpoints()


def test_every_route_is_listed() -> None:
    assert len(ENDPOINTS) >= 18


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_missing_wrong_and_revoked_tokens_are_401(server: TestServer, method: str, path: str) -> None:
    url = server.url + path
    for headers in (
        {},
        {"Authorization": "Bearer rw_not-a-real-token"},
        {"Authorization": f"Bearer {server.revoked}"},
        {"Authorization": f"Basic {server.token_a}"},
    ):
        r = requests.request(method, url, headers=headers, json={})
        assert r.status_code == 401, (method, path, headers, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"


def test_tenant_isolation(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    api = server.api
    name = unique()
    run = server.make_run(sa, name=name)
    flow_id, run_id = run["flow_id"], run["id"]
    task_run = run["task_runs"][0]
    sa.post(f"{api}/task_runs/{task_run['id']}/state", json={"version": 0, "state": {"type": "Cached"}})
    sa.post(f"{api}/logs", json={"logs": [{"flow_run_id": run_id, "timestamp": "2024-01-01T00:00:00Z", "level": "INFO"}]})
    uri = sa.post(f"{api}/results", data=b"secret").json()["uri"]

    for path in [
        f"/flows/{flow_id}",
        f"/flow_runs/{run_id}",
        f"/flow_runs/{run_id}/task_runs",
        f"/flow_runs/{run_id}/states",
        f"/flow_runs/{run_id}/logs",
        f"/task_runs/{task_run['id']}",
        f"/task_runs/{task_run['id']}/states",
    ]:
        assert sb.get(api + path).status_code == 404, path
        assert sa.get(api + path).status_code == 200, path
    for path in [f"/flow_runs/{run_id}/heartbeat", f"/task_runs/{task_run['id']}/heartbeat"]:
        assert sb.post(api + path).status_code == 404, path
    write = {"version": 1, "state": {"type": "Running"}}
    assert sb.post(f"{api}/flow_runs/{run_id}/state", json={**write, "version": 0}).status_code == 404
    assert sb.post(f"{api}/task_runs/{task_run['id']}/state", json=write).status_code == 404
    batch = sb.post(f"{api}/task_run_states", json={"writes": [{"task_run_id": task_run["id"], **write}]}).json()
    assert batch["results"][0]["status"] == "not_found"
    assert sb.post(f"{api}/flow_runs", json={"flow_id": flow_id}).status_code == 404
    assert sb.post(f"{api}/task_runs", json={"flow_run_id": run_id, "task_slug": "a", "map_index": 0}).status_code == 404
    assert sb.post(f"{api}/task_runs", json={"flow_run_id": run_id, "task_slug": "a"}).status_code == 404
    log = {"flow_run_id": run_id, "timestamp": "2024-01-01T00:00:00Z", "level": "INFO"}
    assert sb.post(f"{api}/logs", json={"logs": [log]}).status_code == 404
    assert sb.get(f"{api}/results", params={"uri": uri}).status_code == 404
    assert sa.get(f"{api}/results", params={"uri": uri}).content == b"secret"
    assert sb.get(f"{api}/cached_states", params={"flow_name": name, "task_slug": task_run["task_slug"]}).json() == []
    assert len(sa.get(f"{api}/cached_states", params={"flow_name": name, "task_slug": task_run["task_slug"]}).json()) == 1
    assert all(f["id"] != flow_id for f in sb.get(f"{api}/flows", params={"limit": 1000}).json())
    assert all(r["id"] != run_id for r in sb.get(f"{api}/flow_runs", params={"limit": 1000}).json())
    assert sb.get(f"{api}/flow_runs", params={"flow_id": flow_id}).json() == []
    # the same structure registered by tenant b is b's own flow
    flow_a = sa.get(f"{api}/flows/{flow_id}").json()
    mine = sb.post(f"{api}/flows", json={"name": name, "tasks": flow_a["tasks"], "edges": flow_a["edges"]})
    assert mine.status_code == 201 and mine.json()["id"] != flow_id


def test_token_cache_expires_and_disables() -> None:
    cache = TokenCache(ttl=0.2)
    assert cache.get("d") is None
    cache.put("d", "tenant")
    assert cache.get("d") == "tenant"
    time.sleep(0.25)
    assert cache.get("d") is None
    off = TokenCache(ttl=0)
    off.put("d", "tenant")
    assert off.get("d") is None
    small = TokenCache(ttl=60, max_entries=2)
    for n in range(3):
        small.put(str(n), "t")
    assert small.get("2") == "t" and small.get("0") is None


def test_revocation_from_another_process_lands_within_the_cache_ttl(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'ttl.db'}"
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    token = create_token(engine, "short", tenant="ttl")
    engine.dispose()
    proc = ServerProcess(db_url, env={"RUNWRIGHT__SERVER__TOKEN_CACHE_SECONDS": "1"}).start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(proc.url + "/api/v1/flows", headers=headers).status_code == 200  # now cached
        cli = [sys.executable, "-m", "runwright_server", "token", "revoke", "--token", token, "--db", db_url]
        assert subprocess.run(cli, capture_output=True, timeout=60, check=False).returncode == 0
        revoked_at = time.monotonic()
        while (status := requests.get(proc.url + "/api/v1/flows", headers=headers).status_code) == 200:
            assert time.monotonic() - revoked_at < 2.0, "revoked token still accepted after the 1 s TTL"
            time.sleep(0.05)
        assert status == 401
        # a new token works at once (unknown tokens are never cached)
        fresh_engine = make_engine(db_url)
        fresh = create_token(fresh_engine, "fresh", tenant="ttl")
        fresh_engine.dispose()
        assert requests.get(proc.url + "/api/v1/flows", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    finally:
        proc.stop()


def test_inline_result_keys_are_each_tenants_own(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    """Tenant b claiming a key first neither refuses tenant a's write nor tells a anything."""
    import base64
    import secrets

    key = secrets.token_hex(16)
    uri = "rwcloud://results/" + key

    def batch(session: requests.Session, data: bytes) -> dict:
        run = server.make_run(session)
        task_run = run["task_runs"][0]["id"]
        body = {
            "writes": [{"task_run_id": task_run, "version": 0, "state": {"type": "Success", "uri": uri}}],
            "results": [{"key": key, "data": base64.b64encode(data).decode()}],
        }
        r = session.post(server.api + "/task_run_states", json=body)
        assert r.status_code == 200, r.text
        result: dict = r.json()["results"][0]
        return result

    assert batch(sb, b"b's bytes")["status"] == "ok"
    assert batch(sa, b"a's bytes")["status"] == "ok"  # not "rejected": b's key is not a's
    assert sa.get(server.api + "/results", params={"uri": uri}).content == b"a's bytes"
    assert sb.get(server.api + "/results", params={"uri": uri}).content == b"b's bytes"
    assert batch(sa, b"again")["status"] == "rejected"  # a's own key is still a's once
    assert sa.get(server.api + "/results", params={"uri": uri}).content == b"a's bytes"
