"""Shared benchmark plumbing: competitor venvs, subprocess runs, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"


#: The tasks of the W1 / W2 / W2-map workloads, in every engine's flow script (runwright,
#: Prefect 1 and Prefect 3 all spell them with a ``task`` decorator).
WORKLOAD_TASKS = """
@task
def one():
    return 1

@task
def inc(x):
    return x + 1

@task
def total(xs):
    return sum(xs)
"""

class RunwrightServer:
    """``python -m runwright_server start`` on a free port of 127.0.0.1 with a new SQLite
    file in ``work``, in its own session; :meth:`stop` ends it by its process id.
    ``env`` makes runwright's runs cloud runs reporting to it."""

    def __init__(self, work: Path) -> None:
        import socket
        import urllib.request

        from runwright_server import migrate
        from runwright_server.auth import create_token
        from runwright_server.db import make_engine

        self.db = work / "server.db"
        engine = make_engine(f"sqlite:///{self.db}")
        migrate.upgrade(engine)
        token = create_token(engine, "bench")
        engine.dispose()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        command = [sys.executable, "-m", "runwright_server", "start", "--host", "127.0.0.1", "--port", str(port)]
        self.proc = subprocess.Popen(
            [*command, "--db", f"sqlite:///{self.db}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the runwright server exited with code {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the runwright server did not answer within 120 s") from None
                time.sleep(0.1)
        self.env = {
            "RUNWRIGHT__ENGINE__BACKEND": "cloud",
            "RUNWRIGHT__CLOUD__API": f"http://127.0.0.1:{port}",
            "RUNWRIGHT__CLOUD__API_TOKEN": token,
        }

    def peak_mb(self) -> float | None:
        """The server's peak resident memory so far (VmHWM), in MB."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def cpu_seconds(self) -> float | None:
        """The server's CPU time so far (user + system)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def count(self, sql: str) -> int:
        """A count read straight from the server's database file."""
        import sqlite3

        conn = sqlite3.connect(self.db)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_venv(name: str, requirement: str, module: str = "prefect") -> tuple[Path | None, str]:
    """A venv under benchmarks/.venvs/ with ``requirement`` installed: (python, "") or (None, why)."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0:
        return python, ""
    log(f"creating {venv} and installing {requirement} (first use only) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", requirement], check=True, capture_output=True, text=True, timeout=1800
        )
        subprocess.run([python, "-c", f"import {module}"], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = (getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or str(exc)).strip().splitlines()
        return None, f"install of {requirement} failed: {output[-1] if output else exc}"
    return python, ""


def run_json_script(python: Path | str, script: Path, args: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script`` and parse the JSON object on its last stdout line; {"error": ...} on failure."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(python), str(script), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {proc.returncode}: {tail[0][:120]}"}
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "no result printed"}
    result: dict[str, Any] = json.loads(lines[-1])
    result.setdefault("wall", time.monotonic() - started)
    return result


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * width for width in widths))
