"""The process's shared :class:`~runwright_cloud.client.Client` per (api, token).

The pool belongs to the process's cloud backend (:class:`runwright_cloud.backend.CloudBackend`);
:func:`shared_client` finds it through the plugin manager, so the result handler and the
commands share the reporting's keep-alive connections.
"""

from __future__ import annotations

import threading

from runwright_cloud.client import Client
from runwright_cloud.keys import BACKEND_NAME


class ClientPool:
    """One client per (api, token); thread-safe (each client keeps a session per thread)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str | None], Client] = {}
        self._lock = threading.Lock()

    def get(self, api: str, api_token: str | None) -> Client:
        key = (api, api_token)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._clients[key] = Client(api=api, api_token=api_token or "")
        return client


def shared_client(api: str, api_token: str | None) -> Client:
    """The cloud backend's client for ``api`` with ``api_token`` (a client of its own when
    the cloud plugin is not loaded in this process's plugin manager)."""
    from runwright.plugins import UnknownNameError, get_plugin_manager

    try:
        backend = get_plugin_manager().backend(BACKEND_NAME)
    except UnknownNameError:
        return Client(api=api, api_token=api_token or "")
    pool: ClientPool = backend.services.clients  # type: ignore[attr-defined]
    return pool.get(api, api_token)
