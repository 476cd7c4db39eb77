"""The embedded server (``runwright_server.embedded``) and ``runwright server`` through the
``runwright`` command (the server's own entry point), from a fresh HOME."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runwright_server import embedded
from runwright_server.testing import free_port


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HOME in a temp dir for this process and its children; a server left running is stopped."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RUNWRIGHT__SERVER__DB", raising=False)
    yield tmp_path
    embedded.stop()


def runwright(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwright.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_start_creates_the_database_and_token_then_serves_until_stopped(fresh_home: Path) -> None:
    port = free_port()
    token_file = fresh_home / ".runwright" / "cloud-token"
    embedded.start(port, token_file=token_file)
    files = fresh_home / ".runwright"
    assert (files / "server.db").exists() and (files / "server.pid").exists()
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    url = f"http://127.0.0.1:{port}/api/v1"
    assert requests.get(url + "/flows", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    pid = int((files / "server.pid").read_text())

    embedded.start(port, token_file=token_file)  # already answering: nothing new
    assert int((files / "server.pid").read_text()) == pid and token_file.read_text().strip() == token

    stopped = runwright("server", "stop")
    assert stopped.returncode == 0 and f"Stopped the embedded runwright server (pid {pid})" in stopped.stdout
    assert not embedded.answers(f"http://127.0.0.1:{port}") and not (files / "server.pid").exists()
    again = runwright("server", "stop")
    assert again.returncode == 0 and "No embedded server is running" in again.stdout


def test_concurrent_starts_start_one_server(fresh_home: Path) -> None:
    port = free_port()
    token_file = fresh_home / ".runwright" / "cloud-token"
    errors: list[BaseException] = []

    def start() -> None:
        try:
            embedded.start(port, token_file=token_file)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(token_file.read_text().split()) == 1
    assert embedded.answers(f"http://127.0.0.1:{port}")


def test_a_server_that_cannot_start_names_its_log(fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWRIGHT__SERVER__DB", "nosuchdriver://x")
    with pytest.raises(embedded.EmbeddedServerError, match=r"exited at start .*server\.log"):
        embedded.start(free_port())
    assert not (fresh_home / ".runwright" / "server.pid").exists()


def test_the_runwright_command_has_the_server_group() -> None:
    done = runwright("server", "--help")
    assert done.returncode == 0
    assert all(name in done.stdout for name in ("start", "stop", "token"))


def test_start_says_where_the_server_runs_and_how_to_stop_it(fresh_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    pid = embedded.start(port)
    line = capsys.readouterr().err.strip()
    assert line == (
        f"Started the embedded runwright server on http://127.0.0.1:{port} (pid {pid}, log {embedded.log_path()}); "
        "stop it with `runwright server stop`"
    )
    assert embedded.start(port) is None and capsys.readouterr().err == ""  # already running: silent


def test_a_port_taken_by_another_program_is_named_with_the_setting(fresh_home: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(embedded.EmbeddedServerError, match=rf"Port {port} on 127.0.0.1 is taken by another program.*\[server\] port"):
            embedded.start(port)
    assert not (fresh_home / ".runwright" / "server.pid").exists()


def test_read_only_commands_never_start_a_server(fresh_home: Path) -> None:
    port = free_port()
    env = {"RUNWRIGHT__SERVER__PORT": str(port), "RUNWRIGHT__ENGINE__BACKEND": "cloud"}
    for args in (["runs"], ["runs", "show", "00000000-0000-0000-0000-000000000000"]):
        done = runwright(*args, env=env)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"No runwright server is running at http://127.0.0.1:{port}" in done.stderr
        assert "runwright server start" in done.stderr
    assert not embedded.answers(f"http://127.0.0.1:{port}")
    assert not (fresh_home / ".runwright" / "server.pid").exists()


def _serve_health_as(uid: int, port: int) -> int:
    """Fork a child that drops to ``uid`` and answers ``GET /api/v1/health`` on ``port`` as a
    runwright server does (the listening socket is the child's, so owned by ``uid``)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            import http.server

            os.setgid(uid)
            os.setuid(uid)

            class Health(http.server.BaseHTTPRequestHandler):
                def do_GET(self) -> None:  # noqa: N802
                    body = b'{"status":"ok"}' if self.path == "/api/v1/health" else b'{"detail":"invalid or revoked API token"}'
                    self.send_response(200 if self.path == "/api/v1/health" else 401)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args: object) -> None:
                    pass

            http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
        finally:
            os._exit(1)
    return pid


@pytest.mark.skipif(os.getuid() != 0, reason="a server of another user needs root to drop to that user")
def test_another_users_server_on_the_port_is_named_as_such(fresh_home: Path) -> None:
    port = free_port()
    nobody = 65534
    pid = _serve_health_as(nobody, port)
    try:
        deadline = time.monotonic() + 30
        while not embedded.answers(f"http://127.0.0.1:{port}"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        done = runwright("runs", env={"RUNWRIGHT__SERVER__PORT": str(port)})
        assert done.returncode == 1, done.stderr
        assert f"is another user's (uid {nobody})" in done.stderr and "[server] port" in done.stderr
        assert "token create" not in done.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
