"""Security of the server and of cloud runs, end to end.

Covered elsewhere (not repeated here): every route answers 401 to a missing, wrong, revoked
or non-Bearer token — plugins/runwright-cloud/tests/test_auth.py::
test_missing_wrong_and_revoked_tokens_are_401 (it walks the app's OpenAPI paths); API-level
tenant isolation of every id — test_auth.py::test_tenant_isolation.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pickle
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from runwright.engine.result_framing import frame_header
from runwright.engine.result_handlers import ResultHandlerError
from runwright_cloud.result_handler import CloudResultHandler
from runwright_server.testing import free_port

from .conftest import LiveServer, Processes, no_traceback, stored_value

FORBIDDEN_MODULES = {"pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib", "_pickle", "copyreg"}

FLOW = '''
from runwright import Flow, task


@task
def secret():
    return "tenant a's secret"


@task
def echo(x):
    return x


with Flow("security") as flow:
    echo(secret())
'''


def _modules_imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "__import__",
            "import_module",
        ):
            found.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return found


def test_the_server_package_never_imports_a_pickle_module() -> None:
    """Static check over the server package and every runwright module it imports, transitively."""
    spec = importlib.util.find_spec("runwright_server")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(root.rglob("*.py"))
    assert len(files) > 10
    seen: set[Path] = set()
    offenders: dict[str, set[str]] = {}
    queue = list(files)
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        imported = _modules_imported(path)
        bad = {m for m in imported if m.split(".")[0] in FORBIDDEN_MODULES}
        if bad:
            offenders[str(path)] = bad
        for module in imported:
            if module.split(".")[0] in ("runwright", "runwright_cloud"):
                found = importlib.util.find_spec(module)
                if found is not None and found.origin and found.origin.endswith(".py"):
                    queue.append(Path(found.origin))
                    # a package import runs its __init__ and each parent's
                    parts = module.split(".")
                    for i in range(1, len(parts)):
                        parent = importlib.util.find_spec(".".join(parts[:i]))
                        if parent is not None and parent.origin and parent.origin.endswith(".py"):
                            queue.append(Path(parent.origin))
    assert offenders == {}
    assert any("routes/results.py" in str(p) for p in seen)


class _Trap:
    """Unpickling this creates ``path``: proof that someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_the_server_stores_a_malicious_pickle_as_opaque_bytes_and_never_runs_it(live_server: LiveServer, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Trap(marker))
    framed = frame_header(payload) + payload
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {live_server.a.token}"
        api = live_server.url + "/api/v1"
        uris = [s.post(f"{api}/results", data=body).json()["uri"] for body in (payload, framed)]
        # reference it from a task run's Cached state, as a runner would, and read it every way
        flow = s.post(f"{api}/flows", json={"name": "trap", "tasks": [{"slug": "t", "name": "t"}], "edges": []}).json()
        run = s.post(f"{api}/flow_runs", json={"flow_id": flow["id"]}).json()
        task_run = run["task_runs"][0]
        state = {"type": "Cached", "_result": {"type": "SafeResult", "value": uris[1], "result_handler": {"type": "cloud"}}}
        assert s.post(f"{api}/task_runs/{task_run['id']}/state", json={"version": 0, "state": state}).status_code == 200
        assert s.get(f"{api}/cached_states", params={"flow_name": "trap", "task_slug": "t"}).json()[0]["state"] == state
        assert s.get(f"{api}/task_runs/{task_run['id']}").json()["state"] == state
        assert [s.get(f"{api}/results", params={"uri": u}).content for u in uris] == [payload, framed]
    time.sleep(0.2)
    assert not marker.exists(), "the server unpickled client data"
    pickle.loads(payload)  # the trap works: the same bytes, unpickled, do create the file
    assert marker.exists()


def test_the_server_binds_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT__")}
    (tmp_path / "config.toml").write_text("")
    env.update(HOME=str(tmp_path), RUNWRIGHT_CONFIG=str(tmp_path / "config.toml"))
    command = [sys.executable, "-m", "runwright_server", "start", "--port", str(port), "--db", f"sqlite:///{tmp_path}/s.db"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        listening: list[Any] = []
        while not listening:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the server never listened"
            listening = [c for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            time.sleep(0.05)
        assert [(c.laddr.ip, c.laddr.port) for c in listening] == [("127.0.0.1", port)]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(15)
        proc.communicate()


@pytest.fixture
def tenant_a_run(live_server: LiveServer, processes: Processes, tmp_path: Path) -> dict[str, Any]:
    """A finished flow run of tenant a, with its stored results."""
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(FLOW)
    flow = runpy.run_path(str(flow_file))["flow"]
    client = live_server.a.client(live_server.url)
    s = flow.structure()
    run_id = client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))
    done = processes.run(["run", str(flow_file), "--flow-run-id", run_id, "--json"], processes.env(live_server))
    assert done.returncode == 0, done.stderr
    task_runs = client.get_flow_run_task_runs(run_id)
    uris = [t.state._result.value for t in task_runs]
    assert "tenant a's secret" in [stored_value(client, t.state) for t in task_runs]
    return {
        "file": flow_file,
        "run_id": run_id,
        "uris": uris,
        "version": client.get_flow_run_info(run_id).version,
        "histories": {t.id: client.get_task_run_states(t.id) for t in task_runs},
    }


def test_another_tenant_cannot_run_read_or_list_a_run_through_the_cli(
    live_server: LiveServer, processes: Processes, tenant_a_run: dict[str, Any]
) -> None:
    run_id = tenant_a_run["run_id"]
    env_b = processes.env(live_server, token=live_server.b.token)
    for args in (
        ["run", str(tenant_a_run["file"]), "--flow-run-id", run_id, "--json"],
        ["runs", "show", run_id],
        ["runs", "show", run_id, "--json"],
    ):
        done = processes.run(args, env_b)
        no_traceback(done.stderr)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "tenant a's secret" not in done.stdout + done.stderr
        assert "not found" in (done.stdout + done.stderr).lower(), (args, done.stdout, done.stderr)
    listing = processes.run(["runs", "--json"], env_b)
    assert listing.returncode == 0, listing.stderr
    assert run_id not in listing.stdout
    # tenant a's run is untouched by b's attempt to run it
    client = live_server.a.client(live_server.url)
    assert client.get_flow_run_info(run_id).version == tenant_a_run["version"]
    assert {t: client.get_task_run_states(t) for t in tenant_a_run["histories"]} == tenant_a_run["histories"]


def test_the_result_service_serves_only_uris_it_issued_to_that_tenant(live_server: LiveServer, tenant_a_run: dict[str, Any]) -> None:
    api = live_server.url + "/api/v1"
    with requests.Session() as b, requests.Session() as a:
        a.headers["Authorization"] = f"Bearer {live_server.a.token}"
        b.headers["Authorization"] = f"Bearer {live_server.b.token}"
        for uri in tenant_a_run["uris"]:
            assert a.get(f"{api}/results", params={"uri": uri}).status_code == 200
            assert b.get(f"{api}/results", params={"uri": uri}).status_code == 404
        forged = [
            "rwcloud://results/" + "0" * 32,
            "rwcloud://results/../../etc/passwd",
            tenant_a_run["uris"][0] + "/../" + "1" * 32,
            tenant_a_run["uris"][0].upper(),
            "file:///etc/passwd",
            "/etc/passwd",
            "rwcloud://results/" + tenant_a_run["uris"][0][-32:] + "%00",
            "",
        ]
        for uri in forged:
            r = a.get(f"{api}/results", params={"uri": uri})
            assert r.status_code in (404, 422), (uri, r.status_code, r.text)
    # through the result handler a user of tenant b would use: a clear error, no data
    handler = CloudResultHandler()
    from runwright_cloud.connection import shared_client

    handler._client = shared_client(live_server.url, live_server.b.token)
    for uri in tenant_a_run["uris"]:
        with pytest.raises(ResultHandlerError, match="No result at"):
            handler.read(uri)
