"""One shared :class:`~runwright_cloud.client.Client` per (api, token) in each process."""

from __future__ import annotations

import threading

from runwright_cloud.client import Client

_clients: dict[tuple[str, str | None], Client] = {}
_lock = threading.Lock()


def shared_client(api: str, api_token: str | None) -> Client:
    """The process's client for ``api`` with ``api_token`` (thread-safe, keep-alive per thread)."""
    key = (api, api_token)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = Client(api=api, api_token=api_token or "")
    return client
