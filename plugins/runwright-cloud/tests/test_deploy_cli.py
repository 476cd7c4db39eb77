"""``runwright deploy`` and ``runwright deployments ...`` against a real server: schedules from
the options or the flow, unchanged re-deploys, runs on demand, pause / resume / delete, a
storage from another plugin, and one-line errors for every user mistake."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from runwright import hookimpl
from runwright.storage import Storage
from runwright_cloud.client import Client
from runwright_server.testing import TestServer, unique

ROOT = Path(__file__).resolve().parents[3]
ETL = str(ROOT / "examples" / "etl.py")

SCHEDULED_FLOW = """
from runwright import Flow, Parameter, task
from runwright.schedules import CronSchedule

@task
def say(n):
    return n

with Flow("nightly", schedule=CronSchedule("30 2 * * *")) as flow:
    say(Parameter("n", default=1))
"""


def runwright(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwright.cli", *args], env=env, capture_output=True, text=True, timeout=90
    )


@pytest.fixture
def env(server: TestServer, tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a, HOME=str(tmp_path))


@pytest.fixture
def client(server: TestServer) -> Client:
    return Client(api=server.url, api_token=server.token_a)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_deploy_then_redeploy_unchanged_then_list(env: dict[str, str], client: Client) -> None:
    name = unique("etl")
    first = ok(runwright(env, "deploy", ETL, "--name", name, "--interval", "60", "--param", "n=3"))
    assert f"Deployment {name!r} created (version 1): flow 'etl', schedule every 60 s" in first
    again = json.loads(ok(runwright(env, "deploy", ETL, "--name", name, "--interval", "60", "--param", "n=3", "--json")))
    assert again["changed"] is False and again["version"] == 1
    assert f"Deployment {name!r} unchanged (version 1)" in ok(
        runwright(env, "deploy", ETL, "--name", name, "--interval", "60", "--param", "n=3")
    )

    deployment = client.get_deployment(name)
    assert deployment["parameters"] == {"n": 3} and deployment["flow_name"] == "etl"
    assert deployment["storage"] == "server" and deployment["storage_ref"]["filename"] == "etl.py"
    assert client.get_stored_code(deployment["storage_ref"]["digest"]) == Path(ETL).read_bytes()

    listed = {d["name"]: d for d in json.loads(ok(runwright(env, "deployments", "--json")))}
    assert listed[name]["schedule"]["interval"] == 60 and len(listed[name]["next_starts"]) == 3
    table = ok(runwright(env, "deployments"))
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert "every 60 s" in row and listed[name]["next_starts"][0] in row and row.endswith("default")


def test_the_flows_own_schedule_is_used_unless_an_option_overrides_it(env: dict[str, str], client: Client, tmp_path: Path) -> None:
    path = tmp_path / "nightly.py"
    path.write_text(SCHEDULED_FLOW)
    name = unique("nightly")
    ok(runwright(env, "deploy", str(path), "--name", name))
    assert client.get_deployment(name)["schedule"]["cron"] == "30 2 * * *"
    out = ok(runwright(env, "deploy", str(path), "--name", name, "--cron", "*/5 * * * *"))
    assert "updated (version 2)" in out and "cron '*/5 * * * *' (UTC)" in out
    ok(runwright(env, "deploy", str(path), "--name", name, "--interval", "3600"))
    assert client.get_deployment(name)["schedule"]["type"] == "IntervalSchedule"


def test_deployments_run_prints_the_id_of_a_run_due_now(env: dict[str, str], client: Client) -> None:
    name = unique("etl")
    ok(runwright(env, "deploy", ETL, "--name", name, "--param", "n=2", "--queue", "etl-queue"))
    run_id = ok(runwright(env, "deployments", "run", name, "--param", "n=5")).strip()
    info = client.get_flow_run_info(run_id)
    assert info.state.is_scheduled() and info.parameters == {"n": 5}
    as_json = json.loads(ok(runwright(env, "deployments", "run", name, "--json")))
    assert as_json["deployment"] == name and as_json["parameters"] == {"n": 2}
    assert client.get_flow_run_info(as_json["flow_run_id"]).state.is_scheduled()


def test_pause_resume_and_delete(env: dict[str, str], client: Client) -> None:
    name = unique("etl")
    ok(runwright(env, "deploy", ETL, "--name", name, "--interval", "60"))
    assert "paused" in ok(runwright(env, "deployments", "pause", name))
    assert client.get_deployment(name)["paused"] is True
    row = next(line for line in ok(runwright(env, "deployments")).splitlines() if line.startswith(name))
    assert "paused" in row
    assert "resumed: next start 20" in ok(runwright(env, "deployments", "resume", name))
    assert client.get_deployment(name)["paused"] is False
    assert "deleted" in ok(runwright(env, "deployments", "delete", name))
    assert name not in {d["name"] for d in client.list_deployments()}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("deploy", "missing.py", "--name", "x"), "No such flow file: missing.py"),
        (("deploy", "BROKEN", "--name", "x"), "is not valid Python"),
        (("deploy", ETL, "--name", "x", "--interval", "5", "--cron", "* * * * *"), "--interval and --cron"),
        (("deploy", ETL, "--name", "x", "--param", "n"), "--param expects KEY=VALUE, got 'n'"),
        (("deploy", ETL, "--name", "x", "--param", "nope=1"), "Flow 'etl' has no parameter 'nope'"),
        (("deploy", ETL, "--name", "x", "--cron", "every day"), "is not a valid cron expression"),
        (("deploy", ETL, "--name", "x y"), "'x y' is not a valid name"),
        (("deploy", ETL, "--name", "x", "--interval", "0"), "--interval"),
        (("deploy", ETL, "--name", "x", "--storage", "nowhere"), "Storage 'nowhere' is not installed (installed: server"),
        (("deployments", "run", "NO-SUCH"), "No deployment named 'NO-SUCH'"),
        (("deployments", "run", "x", "--param", "bad"), "expects KEY=VALUE, got 'bad'"),
        (("deployments", "pause", "NO-SUCH"), "No deployment named 'NO-SUCH'"),
        (("deployments", "resume", "NO-SUCH"), "No deployment named 'NO-SUCH'"),
        (("deployments", "delete", "NO-SUCH"), "No deployment named 'NO-SUCH'"),
    ],
)
def test_user_errors_are_one_line(env: dict[str, str], tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def broken(:\n")
    done = runwright(env, *[str(broken) if a == "BROKEN" else a for a in args])
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_another_tenants_deployment_cannot_be_seen_or_run(env: dict[str, str], server: TestServer) -> None:
    name = unique("etl")
    ok(runwright(env, "deploy", ETL, "--name", name))
    other = dict(env, RUNWRIGHT__CLOUD__API_TOKEN=server.token_b)
    assert name not in ok(runwright(other, "deployments"))
    done = runwright(other, "deployments", "run", name)
    assert done.returncode == 1 and f"No deployment named {name!r}" in done.stderr


class SharedDirectory(Storage):
    """A storage of another plugin: the flow file copied to a directory all machines share."""

    name = "shared-dir"

    def __init__(self, root: Path) -> None:
        self.root = root

    def store(self, path: Path, client: Any) -> dict[str, Any]:
        target = self.root / path.name
        shutil.copyfile(path, target)
        return {"path": str(target)}

    def fetch(self, ref: Any, client: Any, cache_dir: Path) -> Path:
        return Path(ref["path"])


def test_a_storage_from_another_plugin_keeps_the_code(
    plugin_manager: Any, server: TestServer, client: Client, tmp_path: Path
) -> None:
    from runwright.cli import build_cli
    from runwright.config import temporary_config

    shared = tmp_path / "shared"
    shared.mkdir()

    class Plugin:
        @hookimpl
        def runwright_register_storages(self, register: Any) -> None:
            register(SharedDirectory(shared))

    plugin_manager.register(Plugin(), name="shared-dir-plugin")
    name = unique("etl")
    settings = {"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}
    with temporary_config(settings):
        result = CliRunner().invoke(build_cli(), ["deploy", ETL, "--name", name, "--storage", "shared-dir"])
    assert result.exit_code == 0, result.output
    deployment = client.get_deployment(name)
    assert deployment["storage"] == "shared-dir"
    assert deployment["storage_ref"] == {"path": str(shared / "etl.py")}
    fetched = plugin_manager.storage("shared-dir").fetch(deployment["storage_ref"], client, tmp_path / "cache")
    assert fetched.read_bytes() == Path(ETL).read_bytes()


def test_the_quick_start_deploys_to_a_server_started_in_the_foreground(tmp_path: Path) -> None:
    """`runwright server start`, then `runwright deploy` on the same machine: the client finds
    (creates) the local token, as it does after starting the embedded server itself."""
    from runwright_server.testing import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    env.update(HOME=str(tmp_path), RUNWRIGHT__SERVER__PORT=str(port))
    server = subprocess.Popen(
        [sys.executable, "-m", "runwright.cli", "server", "start"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        out = ok(runwright(env, "deploy", ETL, "--name", "etl", "--interval", "60"))
        assert "Deployment 'etl' created" in out
        runs = json.loads(ok(runwright(env, "runs", "--json")))
        assert runs and {run["state"]["type"] for run in runs} == {"Scheduled"}
        assert not (tmp_path / ".runwright" / "server.pid").exists()  # no second (embedded) server
        assert (tmp_path / ".runwright" / "cloud-token").stat().st_mode & 0o777 == 0o600
    finally:
        server.terminate()
        server.wait(10)
        assert server.stderr is not None
        server.stderr.close()
