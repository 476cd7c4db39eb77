"""Fixtures of the reliability and security suite: real servers and real flow-run processes.

Everything here starts real components on 127.0.0.1 — the server as a subprocess on a temp
SQLite file, flow runs as ``python -m runwright.cli run ...`` subprocesses with their own
temp HOME and config — and stops every process it started, by its own PID, also when a test
fails (fixture finalizers).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runwright.engine.state import State
from runwright_cloud.client import Client
from runwright_server import migrate
from runwright_server.auth import create_token, revoke_tokens
from runwright_server.db import make_engine
from runwright_server.testing import ServerProcess, free_port

#: Every subprocess wait is bounded by this (seconds) unless a test says otherwise.
PROCESS_TIMEOUT = 120.0


@dataclass
class Tenant:
    name: str
    token: str

    def client(self, url: str) -> Client:
        return Client(url, self.token, timeout=10.0)


@dataclass
class LiveServer:
    """A server subprocess on a fixed port and SQLite file that a test may kill and restart."""

    db_path: Path
    port: int
    a: Tenant
    b: Tenant
    revoked: str
    extra_args: list[str] = field(default_factory=list)
    process: ServerProcess | None = None

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.proc is not None
        return self.process.proc.pid

    def start(self) -> LiveServer:
        self.process = ServerProcess(self.db_url, port=self.port, extra_args=self.extra_args).start(timeout=30)
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def make_server(where: Path, extra_args: Sequence[str] = ()) -> LiveServer:
    """A migrated SQLite database with tokens of tenants "a" and "b" (and a revoked one of "a")."""
    db_path = where / "server.db"
    engine = make_engine(f"sqlite:///{db_path}")
    migrate.upgrade(engine)
    token_a = create_token(engine, "alice", tenant="a")
    token_b = create_token(engine, "bob", tenant="b")
    revoked = create_token(engine, "old", tenant="a")
    revoke_tokens(engine, token=revoked)
    engine.dispose()
    return LiveServer(db_path, free_port(), Tenant("a", token_a), Tenant("b", token_b), revoked, list(extra_args))


@pytest.fixture
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A fresh server of this test alone (it may kill and restart it)."""
    server = make_server(tmp_path_factory.mktemp("server"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the tests of a module that do not disturb it."""
    server = make_server(tmp_path_factory.mktemp("server"))
    try:
        yield server.start()
    finally:
        server.stop()


class Processes:
    """Flow-run subprocesses of one test; all are killed by PID when the test ends."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.started: list[subprocess.Popen[str]] = []

    def env(self, server: LiveServer | None = None, token: str | None = None, **extra: str) -> dict[str, str]:
        """The environment of a flow-run process: its own HOME and (empty) config file."""
        home = self.home / "home"
        home.mkdir(exist_ok=True)
        config = home / "config.toml"
        if not config.exists():
            config.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT__")}
        env.update(HOME=str(home), RUNWRIGHT_CONFIG=str(config), RUNWRIGHT__CLOUD__AUTO_START="false")
        if server is not None:
            env.update(RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=token or server.a.token)
        env.update(extra)
        return env

    def start(self, args: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runwright.cli", *args],
            env=env,
            cwd=cwd or self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def run(self, args: Sequence[str], env: dict[str, str], timeout: float = PROCESS_TIMEOUT) -> subprocess.CompletedProcess[str]:
        proc = self.start(args, env)
        out, err = self.wait(proc, timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def wait(self, proc: subprocess.Popen[str], timeout: float = PROCESS_TIMEOUT) -> tuple[str, str]:
        try:
            return proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise

    def kill(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            try:
                proc.communicate(timeout=30)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.cleanup()


def no_traceback(text: str) -> None:
    """No traceback but the ones a failing task's own code logs (at ERROR, by its task
    runner, as users want to see): runwright itself never crashes with one."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            logged_by_task = i > 0 and "ERROR - runwright.TaskRunner | Task " in lines[i - 1] and "unexpected error" in lines[i - 1]
            assert logged_by_task, text[-4000:]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def marker_counts(directory: Path) -> dict[str, int]:
    """Executions per task body, from O_APPEND marker files ``<name>.count`` (one line each)."""
    return {p.stem: len(p.read_text().splitlines()) for p in directory.glob("*.count")}


def json_summary(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    return data


def stored_value(client: Client, state: State) -> Any:
    """The value of a Success state's stored result (as ``info.state`` holds it), downloaded
    as a user would (the framed, checksummed cloudpickle the task's runner uploaded)."""
    import cloudpickle  # type: ignore[import-untyped]

    from runwright.engine.result import SafeResult
    from runwright.engine.result_framing import unframe

    result = state._result
    assert isinstance(result, SafeResult), state
    uri = result.value
    assert isinstance(uri, str) and uri.startswith("rwcloud://results/"), uri
    return cloudpickle.loads(unframe(client.download_result(uri)))


def server_rows(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows read straight from the server's SQLite file, read-only (e.g. right after a crash)."""
    import sqlite3

    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def succeeded_task_slugs(db_path: Path, run_id: str) -> set[str]:
    """Slugs of the flow run's task runs with a Success in their history (read straight from
    the server's SQLite file, e.g. right after a crash)."""
    rows = server_rows(
        db_path,
        "SELECT DISTINCT t.task_slug FROM task_run_states s JOIN task_runs t ON t.id = s.task_run_id "
        "WHERE t.flow_run_id = ? AND s.state_type = 'Success'",
        (run_id,),
    )
    return {str(r[0]) for r in rows}


BRANCHES = '''
import time
from pathlib import Path

from runwright import Flow, task

HERE = Path(__file__).parent


def mark(name):
    with open(HERE / "marks" / (name + ".count"), "a") as f:
        f.write("x\\n")


def wait_for(name):
    deadline = time.monotonic() + 30
    while not (HERE / name).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@task
def slow():
    mark("slow")
    wait_for("release-slow")
    return "slow"


@task
def fast():
    mark("fast")
    wait_for("release-fast")
    return "fast"


with Flow("outage-branches") as flow:
    slow()
    fast()
'''


@dataclass
class OutageRun:
    """A flow run of two independent tasks, ``slow`` and ``fast``, each waiting for its
    ``release-<name>`` file in ``where``, whose server was SIGKILLed while both ran."""

    run_id: str
    flow_file: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    client: Client
    where: Path

    def release(self, name: str) -> None:
        (self.where / f"release-{name}").touch()

    def counts(self) -> dict[str, int]:
        return marker_counts(self.where / "marks")


@pytest.fixture
def server_down_mid_run(live_server: LiveServer, processes: Processes, tmp_path: Path) -> OutageRun:
    """Run the two-branch flow in a subprocess (``runwright run --flow-run-id ID`` with threads,
    heartbeats every 0.2 s, ``outage_tolerance = 0``); once both tasks run and both claims are
    on the server, SIGKILL the server. The test releases the tasks and restarts the server."""
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(BRANCHES)
    (tmp_path / "marks").mkdir()
    flow = runpy.run_path(str(flow_file))["flow"]
    client = live_server.a.client(live_server.url)
    s = flow.structure()
    run_id = client.create_flow_run(client.register_flow(s["name"], s["tasks"], s["edges"]))
    env = processes.env(live_server, RUNWRIGHT__CLOUD__HEARTBEAT_INTERVAL="0.2", RUNWRIGHT__CLOUD__OUTAGE_TOLERANCE="0")
    proc = processes.start(["run", str(flow_file), "--flow-run-id", run_id, "--executor", "threads", "--json"], env)
    run = OutageRun(run_id, flow_file, env, proc, client, tmp_path)
    wait_until(lambda: len(run.counts()) == 2 or proc.poll() is not None, 60, "both tasks to start")

    def both_claims_recorded() -> bool:  # claims are queued (task_claims = "lease"): they land just after
        return [type(t.state).__name__ for t in client.get_flow_run_task_runs(run_id)] == ["Running", "Running"]

    wait_until(lambda: both_claims_recorded() or proc.poll() is not None, 60, "both claims on the server")
    assert proc.poll() is None, proc.communicate()
    live_server.kill()
    return run
