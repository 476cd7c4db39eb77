"""The embedded server (``runwright_server.embedded``) and ``runwright server`` through the
``runwright`` command (the server's own entry point), from a fresh HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
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


def runwright(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwright.cli", *args], capture_output=True, text=True, timeout=60, env=dict(os.environ)
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
