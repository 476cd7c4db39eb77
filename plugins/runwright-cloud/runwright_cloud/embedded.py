"""The embedded server: started on this machine when a cloud run needs it and none answers.

Only for the embedded address (``[cloud] api`` unset, or equal to
``http://127.0.0.1:<[server] port>``), never for another or a remote API, and only with
``[cloud] auto_start = true`` (the default). This module decides *when*; the server itself,
its files under ``~/.runwright/`` (``server.db``, ``server.log``, ``server.pid``) and
``runwright server stop`` are runwright-server's (:mod:`runwright_server.embedded`),
imported only here and only to start it, so a client of a remote server needs none of it.
The token of the local tenant is kept in ``~/.runwright/cloud-token`` (mode 0600), created
with the database when no ``[cloud] api_token`` is configured.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import requests

from runwright_cloud.cloud_settings import CloudSettings, token_path
from runwright_cloud.errors import ClientError

SERVER_DIST = "runwright-server"


class EmbeddedServerError(ClientError):
    """The embedded server could not be started (the message says why and where to look)."""


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


def listener_uid(port: int) -> int | None:
    """The uid owning the socket listening on 127.0.0.1:``port`` (Linux ``/proc/net/tcp``), or None."""
    wanted = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if len(fields) > 7 and fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                    return int(fields[7])
    except (OSError, ValueError):
        return None
    return None


def _check_owner(settings: CloudSettings) -> None:
    """A one-line error when the server answering at the embedded address is another user's."""
    port = urlsplit(settings.api).port or 4200
    uid = listener_uid(port)
    if uid is not None and uid != os.getuid():
        raise EmbeddedServerError(
            f"The runwright server at {settings.api} is another user's (uid {uid}), not yours: its tokens and runs "
            f"are not yours. Give your embedded server another port with [server] port "
            f"(e.g. RUNWRIGHT__SERVER__PORT={port + 1}), or set [cloud] api and api_token for a shared server"
        )


def prepare(settings: CloudSettings, start: bool = True) -> CloudSettings:
    """Settings with a token, the embedded server started when it must be (and ``start``).

    With ``start=False`` (read-only commands) a missing server is a one-line error saying how
    to start one, not a start."""
    if not settings.embedded:
        return settings
    if not answers(settings.api, timeout=0.5):
        if not start:
            raise EmbeddedServerError(
                f"No runwright server is running at {settings.api}: start one with `runwright server start` "
                "(a `runwright run FLOW.py --backend cloud` starts the embedded server too)"
            )
        if settings.auto_start:
            ensure_started(settings)
    else:
        _check_owner(settings)
        if settings.api_token is None and resolve_token() is None:
            _create_local_token()
    if settings.api_token is None:
        token = resolve_token()
        if token is not None:
            return settings.with_token(token)
    return settings


def _create_local_token() -> None:
    """The embedded address answers (``runwright server start`` in the foreground) but this
    machine has no token yet: create the local tenant's token file, as starting the embedded
    server would have (nothing when runwright-server is not installed here)."""
    try:
        from runwright_server import embedded as server
    except ImportError:
        return
    server.ensure_token_file(token_path())


def ensure_started(settings: CloudSettings) -> None:
    """Start the embedded server (runwright-server) and, if no token is configured, create
    the local tenant's token file; a one-line :class:`EmbeddedServerError` if it cannot."""
    try:
        from runwright_server import embedded as server
    except ImportError:
        raise EmbeddedServerError(
            f"Nothing answers at {settings.api} and the embedded server is not installed: "
            f"pip install {SERVER_DIST}, or point [cloud] api at a running server"
        ) from None
    token_file = token_path() if settings.api_token is None and resolve_token() is None else None
    try:
        server.start(urlsplit(settings.api).port or 4200, token_file=token_file)
    except server.EmbeddedServerError as exc:
        raise EmbeddedServerError(str(exc)) from None
    except ImportError as exc:  # runwright-server without its dependencies
        raise EmbeddedServerError(
            f"The embedded server cannot start: {exc}. Reinstall it: pip install {SERVER_DIST}"
        ) from None
