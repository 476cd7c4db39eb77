"""The embedded server: started on this machine when a cloud run needs it and none answers.

Only for the embedded address (``[cloud] api`` unset, or equal to
``http://127.0.0.1:<[server] port>``), never for another or a remote API, and only with
``[cloud] auto_start = true`` (the default). Files, all under ``~/.runwright/``:

- ``server.db``: the SQLite database (``[server] db`` overrides it);
- ``server.log``: the server's output; ``server.pid``: its process id
  (``runwright server stop`` stops it);
- ``cloud-token``: the API token of the local tenant, created with the database when no
  ``[cloud] api_token`` is configured (mode 0600).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

from runwright_cloud.cloud_settings import CloudSettings, runwright_home, token_path
from runwright_cloud.errors import ClientError

LOCAL_TENANT = "local"
START_TIMEOUT = 30.0


class EmbeddedServerError(ClientError):
    """The embedded server could not be started (the message says why and where to look)."""


def pid_path() -> Path:
    return runwright_home() / "server.pid"


def log_path() -> Path:
    return runwright_home() / "server.log"


def resolve_token() -> str | None:
    """The embedded server's token from ``~/.runwright/cloud-token``, if it exists."""
    try:
        return token_path().read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def answers(api: str, timeout: float = 1.0) -> bool:
    """True when a runwright server answers its health check at ``api``."""
    try:
        return requests.get(api + "/api/v1/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def prepare(settings: CloudSettings) -> CloudSettings:
    """Settings with a token, the embedded server started when it must be."""
    if not settings.embedded:
        return settings
    if settings.auto_start and not answers(settings.api, timeout=0.5):
        ensure_started(settings)
    if settings.api_token is None:
        token = resolve_token()
        if token is not None:
            return settings.with_token(token)
    return settings


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    import fcntl

    with open(home / "server.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_started(settings: CloudSettings) -> None:
    """Create the token (if none is configured) and start the server in the background."""
    try:
        from runwright_cloud.server import migrate
        from runwright_cloud.server.auth import create_token
        from runwright_cloud.server.db import make_engine
        from runwright_cloud.server.settings import Settings
    except ImportError as exc:
        raise EmbeddedServerError(
            f"Nothing answers at {settings.api} and the embedded server is not installed ({exc}): "
            "pip install 'runwright-cloud[server]', or point [cloud] api at a running server"
        ) from None
    home = runwright_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _lock(home):
        if answers(settings.api, timeout=0.5):
            return  # another process started it while we waited
        port = urlsplit(settings.api).port or 4200
        server_settings = Settings.load(host="127.0.0.1", port=port)
        if settings.api_token is None and resolve_token() is None:
            engine = make_engine(server_settings.db_url)
            try:
                migrate.upgrade(engine)
                token = create_token(engine, name="embedded", tenant=LOCAL_TENANT)
            finally:
                engine.dispose()
            path = token_path()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(token + "\n")
        command = [sys.executable, "-m", "runwright_cloud.server", "start", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--db", server_settings.db_url]
        with open(log_path(), "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
            )
        pid_path().write_text(f"{process.pid}\n", encoding="utf-8")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pid_path().unlink(missing_ok=True)
                raise EmbeddedServerError(
                    f"The embedded runwright server exited at start (code {process.returncode}); see {log_path()}"
                )
            if answers(settings.api, timeout=0.5):
                return
            time.sleep(0.05)
        raise EmbeddedServerError(f"The embedded runwright server did not answer within {START_TIMEOUT:g} s; see {log_path()}")


def _is_our_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc: trust the pid file
    return b"runwright_cloud.server" in cmdline


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
