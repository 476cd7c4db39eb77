"""Test helpers: run the real server as a subprocess (uvicorn on 127.0.0.1, a free port).

Used by the server's tests, and meant for anyone who needs a live server (the cloud client
and runner tests, the reliability tests, benchmarks)::

    proc = ServerProcess("sqlite:////tmp/x.db").start()   # waits for /api/v1/health
    ...
    proc.stop()                                             # SIGTERM by PID, then SIGKILL

The pytest fixtures built on these (``db_url``, ``server``, ``sa``, ``sb``) are in
:mod:`runwright_server.testing.fixtures`. Importing this module imports neither the server
stack nor pytest; it needs ``requests`` (the ``test`` extra).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m runwright_server start`` in a child process, stopped by its PID."""

    def __init__(
        self,
        db_url: str,
        port: int | None = None,
        extra_args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "runwright_server", "start", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--db", self.db_url, *self.extra_args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _out, err = self.proc.communicate()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {err.decode(errors='replace')}")
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become healthy in time")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """Kill -9: a crash, not a shutdown."""
        self.stop(signal.SIGKILL)


def unique(prefix: str = "flow") -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class TestServer:
    """A started server plus tokens of two tenants ("a", "b") and a revoked token of "a"."""

    url: str
    db_url: str
    token_a: str
    token_b: str
    revoked: str
    process: ServerProcess
    max_body: int
    #: the body limit of the JSON routes (0: unknown)
    max_json_body: int = 0

    __test__ = False  # not a pytest test class

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def session(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token or self.token_a}"
        return session

    def make_flow(
        self, session: requests.Session, slugs: tuple[str, ...] = ("a", "b"), name: str | None = None
    ) -> dict[str, Any]:
        """Register a chain flow ``a -> b -> ...``."""
        tasks = [{"slug": s, "name": s.upper()} for s in slugs]
        edges = [{"upstream": u, "downstream": d} for u, d in itertools.pairwise(slugs)]
        r = session.post(f"{self.api}/flows", json={"name": name or unique(), "tasks": tasks, "edges": edges})
        assert r.status_code in (200, 201), r.text
        result: dict[str, Any] = r.json()
        return result

    def make_run(
        self, session: requests.Session, slugs: tuple[str, ...] = ("a", "b"), name: str | None = None
    ) -> dict[str, Any]:
        """Register a chain flow and create a run of it (with ``parameters={"x": 1}``)."""
        flow = self.make_flow(session, slugs, name)
        r = session.post(f"{self.api}/flow_runs", json={"flow_id": flow["id"], "parameters": {"x": 1}})
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result
