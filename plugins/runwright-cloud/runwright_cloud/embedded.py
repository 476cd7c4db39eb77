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
