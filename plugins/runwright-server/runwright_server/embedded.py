"""The embedded server: this machine's server, run in the background for the quick start.

A cloud client (``runwright_cloud.embedded``) calls :func:`start` when its API is the
embedded address and nothing answers there; ``runwright server stop`` calls :func:`stop`.
Files, all under ``~/.runwright/``:

- ``server.db``: the SQLite database (``[server] db`` overrides it);
- ``server.log``: the server's output; ``server.pid``: its process id;
- ``server.lock``: held while one process starts the server, so that concurrent clients
  start one server, not several;
- the token file the client names (``cloud-token``), created with the database when the
  client has no token configured (mode 0600), for the tenant ``local``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

LOCAL_TENANT = "local"
START_TIMEOUT = 30.0
#: How this module starts the server; also how :func:`stop` recognises the process.
SERVER_MODULE = "runwright_server"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started (the message says why and where to look)."""


def runwright_home() -> Path:
    """``~/.runwright``: the embedded server's database, log and pid file live here."""
    return Path.home() / ".runwright"


def pid_path() -> Path:
    return runwright_home() / "server.pid"


def log_path() -> Path:
    return runwright_home() / "server.log"


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when a runwright server answers its health check at ``url`` (its root URL)."""
    try:
        with urllib.request.urlopen(url + "/api/v1/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    import fcntl

    with open(home / "server.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create_token_file(db_url: str, path: Path) -> None:
    from runwright_server import migrate
    from runwright_server.auth import create_token
    from runwright_server.db import make_engine

    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        token = create_token(engine, name="embedded", tenant=LOCAL_TENANT)
    finally:
        engine.dispose()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")


def ensure_token_file(token_file: Path) -> bool:
    """Write a new token of the ``local`` tenant to ``token_file`` (0600), created in this
    machine's database (``[server] db``, else ``~/.runwright/server.db``), unless the file
    exists; True when it was created. For a server started in the foreground with
    ``runwright server start`` on the embedded address: the client on this machine then
    finds a token as it would after starting the embedded server itself."""
    from runwright_server.settings import Settings

    home = runwright_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _lock(home):
        if token_file.exists():
            return False
        _create_token_file(Settings.load().db_url, token_file)
    return True


def port_taken(port: int) -> bool:
    """True when something already listens on ``127.0.0.1:port`` (a bind fails: in use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def start(port: int, token_file: Path | None = None, timeout: float = START_TIMEOUT) -> int | None:
    """Start the server on ``127.0.0.1:port`` in the background unless one answers there.

    With ``token_file`` and no such file yet, first create the database and a token of the
    ``local`` tenant, written to ``token_file``. Returns the new server's pid once it answers,
    having said so in one line on stderr (address, pid, log, how to stop it), or None when a
    server already answered; raises :class:`EmbeddedServerError` when the port is taken by
    another program, or the server exits or does not answer in time (naming the log).
    """
    from runwright_server.settings import Settings

    url = f"http://127.0.0.1:{port}"
    home = runwright_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _lock(home):
        if answers(url):
            return None  # another process started it while we waited
        if port_taken(port):
            raise EmbeddedServerError(
                f"Port {port} on 127.0.0.1 is taken by another program, which is not a runwright server: "
                f"stop it, or give the embedded server another port with [server] port "
                f"(e.g. RUNWRIGHT__SERVER__PORT={port + 1})"
            )
        settings = Settings.load(host="127.0.0.1", port=port)
        if token_file is not None and not token_file.exists():
            _create_token_file(settings.db_url, token_file)
        command = [sys.executable, "-m", SERVER_MODULE, "start", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--db", settings.db_url]
        with open(log_path(), "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
            )
        pid_path().write_text(f"{process.pid}\n", encoding="utf-8")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pid_path().unlink(missing_ok=True)
                raise EmbeddedServerError(
                    f"The embedded runwright server exited at start (code {process.returncode}); see {log_path()}"
                )
            if answers(url):
                print(
                    f"Started the embedded runwright server on {url} (pid {process.pid}, log {log_path()}); "
                    "stop it with `runwright server stop`",
                    file=sys.stderr,
                    flush=True,
                )
                return process.pid
            time.sleep(0.05)
        raise EmbeddedServerError(f"The embedded runwright server did not answer within {timeout:g} s; see {log_path()}")


def _is_our_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc: trust the pid file
    return b"\0-m\0" + SERVER_MODULE.encode() + b"\0" in cmdline


def stop(timeout: float = 10.0) -> int | None:
    """Stop the embedded server named by the pid file; return its pid (None if not running)."""
    path = pid_path()
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if not _is_our_server(pid):
        path.unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_our_server(pid):
        time.sleep(0.05)
    if _is_our_server(pid):
        os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return pid
