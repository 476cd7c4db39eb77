"""The CLI of cloud runs: ``runwright run --backend cloud`` with the embedded server started
on demand, ``runwright runs`` / ``runs create`` / ``runs show``, ``server stop``, and
one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runwright_server.testing import TestServer, free_port

ROOT = Path(__file__).resolve().parents[3]
ETL = str(ROOT / "examples" / "etl.py")


def runwright(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwright.cli", *args], env=env, capture_output=True, text=True, timeout=90
    )


@pytest.fixture
def fresh_machine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """HOME in a temp dir, the embedded server on a free port; its server killed by pid at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    env.update(HOME=str(tmp_path), RUNWRIGHT__SERVER__PORT=str(free_port()))
    yield env
    pid_file = tmp_path / ".runwright" / "server.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_readme_command_runs_through_the_embedded_server(fresh_machine: dict[str, str], tmp_path: Path) -> None:
    done = runwright(fresh_machine, "run", ETL, "--backend", "cloud", "--param", "n=3")
    assert done.returncode == 0, done.stderr
    assert "runwright runs show" in done.stderr
    home = tmp_path / ".runwright"
    assert (home / "server.pid").exists() and (home / "server.db").exists()
    assert (home / "cloud-token").stat().st_mode & 0o777 == 0o600

    listed = runwright(fresh_machine, "runs", "--json")
    runs: list[dict[str, Any]] = json.loads(listed.stdout)
    assert [(r["flow_name"], r["state"]["type"]) for r in runs] == [("etl", "Success")]
    shown = json.loads(runwright(fresh_machine, "runs", "show", runs[0]["id"], "--json").stdout)
    slugs = sorted((t["task_slug"], t["map_index"], t["state"]["type"]) for t in shown["task_runs"])
    assert ("transform-1", -1, "Mapped") in slugs
    assert [s for s in slugs if s[0] == "transform-1" and s[1] >= 0] == [("transform-1", i, "Success") for i in range(3)]
    assert "etl" in runwright(fresh_machine, "runs").stdout

    stopped = runwright(fresh_machine, "server", "stop")
    assert "Stopped" in stopped.stdout
    assert not (home / "server.pid").exists()


def test_runs_create_then_run_by_id(server: TestServer, tmp_path: Path) -> None:
    env = dict(os.environ, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a, HOME=str(tmp_path))
    created = runwright(env, "runs", "create", ETL, "--param", "n=2")
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    shown = runwright(env, "runs", "show", run_id)
    assert "Scheduled" in shown.stdout
    done = runwright(env, "run", ETL, "--flow-run-id", run_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("{"):])["flow_run_id"] == run_id  # after the task's print
    assert "Success" in runwright(env, "runs", "show", run_id).stdout
    assert not (tmp_path / ".runwright" / "server.pid").exists()  # never auto-started for another api


def test_running_a_finished_flow_run_says_so_and_shows_its_states(server: TestServer, tmp_path: Path) -> None:
    env = dict(os.environ, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a, HOME=str(tmp_path))
    run_id = runwright(env, "runs", "create", ETL, "--param", "n=2").stdout.strip()
    assert runwright(env, "run", ETL, "--flow-run-id", run_id).returncode == 0

    def versions() -> dict[str, int]:
        shown = json.loads(runwright(env, "runs", "show", run_id, "--json").stdout)
        return {f"{t['task_slug']}[{t['map_index']}]": t["version"] for t in shown["task_runs"]} | {"flow": shown["version"]}

    before = versions()
    again = runwright(env, "run", ETL, "--flow-run-id", run_id)
    assert again.returncode == 0, again.stderr
    assert f"Flow run {run_id} had already finished (Success): nothing was run" in again.stderr
    for slug in ("extract-1", "transform-1", "load-1"):
        assert slug in again.stdout
    as_json = runwright(env, "run", ETL, "--flow-run-id", run_id, "--json")
    summary = json.loads(as_json.stdout[as_json.stdout.index("{"):])
    assert summary["already_finished"] is True and summary["state"] == "Success"
    assert {row["slug"]: row["state"] for row in summary["tasks"]}["load-1"] == "Success"
    assert versions() == before  # nothing was run or written the second and third time


@pytest.mark.parametrize(
    ("overrides", "args", "expected"),
    [
        ({"RUNWRIGHT__CLOUD__API_TOKEN": "rw_wrong"}, ("runs",), "refused the API token"),
        ({}, ("runs", "show", "00000000-0000-0000-0000-000000000000"), "flow run not found"),
        ({"RUNWRIGHT__CLOUD__API": "http://127.0.0.1:9"}, ("runs",), "Cannot reach the runwright server"),
    ],
)
def test_user_errors_are_one_line(
    server: TestServer, tmp_path: Path, overrides: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    env = dict(os.environ, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a, HOME=str(tmp_path))
    env.update(overrides)
    done = runwright(env, *args)
    assert done.returncode == 1
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_the_cloud_plugin_adds_its_backend_and_the_flow_run_id_option_to_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    env["HOME"] = str(tmp_path)
    help_text = runwright(env, "run", "--help").stdout
    assert "--flow-run-id" in help_text and "implies --backend cloud" in help_text
    assert "--backend [cloud|local]" in help_text
    disabled = dict(env, RUNWRIGHT__PLUGINS__DISABLE='["cloud"]')
    assert "--flow-run-id" not in runwright(disabled, "run", "--help").stdout
