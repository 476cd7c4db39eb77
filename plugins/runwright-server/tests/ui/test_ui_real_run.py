"""A real flow run, by a real runner process (``runwright run FILE --flow-run-id``, the
cloud backend), watched in Chromium: it appears, its tasks progress live, its printed lines
arrive in the logs tab while it runs, and the Cancel button stops the process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runwright_server.testing import TestServer

pytestmark = pytest.mark.timeout(180)

FLOW = '''
import time

from runwright import Flow, Parameter, task


@task
def prepare():
    return 1


@task(log_stdout=True)
def crunch(x, seconds):
    for i in range(int(seconds * 10)):
        print(f"crunching chunk {i}")
        time.sleep(0.1)
    return x


with Flow("ui-real-run") as flow:
    seconds = Parameter("seconds", default=1)
    crunch(prepare(), seconds)
'''


@pytest.fixture
def runner_env(server: TestServer, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT__")}
    env.update(
        HOME=str(home), RUNWRIGHT_CONFIG=str(home / "config.toml"), RUNWRIGHT__CLOUD__AUTO_START="false",
        RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a,
        RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2",
    )
    return env


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _runwright(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runwright.cli", *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_real_run_progresses_live_its_logs_follow_and_cancel_stops_it(
    page: Any, server: TestServer, runner_env: dict[str, str], processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(FLOW)
    created = _runwright(["runs", "create", str(flow_file), "--param", "seconds=120"], runner_env, tmp_path)
    out, err = created.communicate(timeout=60)
    assert created.returncode == 0, err
    run_id = out.strip()

    page.goto(f"{server.url}/flow-runs/{run_id}")
    page.wait_for_selector(".row[data-slug^='crunch']")
    runner = _runwright(["run", str(flow_file), "--flow-run-id", run_id], runner_env, tmp_path)
    processes.append(runner)
    page.wait_for_selector("#run-state .s-Running", timeout=30_000)
    page.wait_for_selector(".row[data-slug^='prepare'][data-state='Success']", timeout=10_000)
    page.wait_for_selector(".row[data-slug^='crunch'][data-state='Running']", timeout=10_000)

    page.click("button[data-tab=logs]")
    page.wait_for_selector("#logs .log:has-text('crunching chunk 3')", timeout=10_000)
    seen = page.locator("#logs .log").count()
    page.wait_for_function(f"() => document.querySelectorAll('#logs .log').length > {seen}", timeout=5000)

    page.click("#cancel")
    started = time.monotonic()
    page.wait_for_selector("#run-state .s-Cancelled", timeout=10_000)
    print(f"\nCancel clicked -> Cancelled shown on the page: {(time.monotonic() - started) * 1000:.0f} ms")
    runner.communicate(timeout=20)
    assert runner.returncode is not None
    page.wait_for_selector(".row[data-slug^='crunch'][data-state='Cancelled']", timeout=5000)
    assert page.get_attribute(".row[data-slug^='prepare']", "data-state") == "Success"
