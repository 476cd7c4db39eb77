"""Building (and sharing) ``google.cloud.storage`` clients, lazily and without surprises.

A handler never owns a client: handlers are plain data that pickle, serialize into states
and deserialize anywhere without credentials (the seed built its client in ``__init__`` and
so could not even be deserialized by the backend). The first read or write asks
:func:`get_client`, which builds one client per process and settings and reuses it, so that
``runwright.read_uri`` (a new handler per call) does not pay for a client each time.

Where credentials come from, in order:

1. ``STORAGE_EMULATOR_HOST`` set: the emulator at that address, with explicit
   ``AnonymousCredentials`` (google.auth's default lookup, which may probe the GCE metadata
   server, is never run);
2. ``[plugins.gcs] credentials``: a service-account or authorized-user key file (JSON);
3. Application Default Credentials: ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's
   ``application-default`` login, or the metadata server on Google Cloud.

``google.cloud.storage`` is imported here, on first use, so that loading the plugin (which
every runwright process does) stays cheap.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[import-untyped]

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)


class CredentialsError(Exception):
    """No usable credentials; the message says where they were looked for."""


@dataclass(frozen=True)
class ClientSettings:
    """Everything that decides which client a handler gets."""

    project: str | None
    credentials_file: str | None
    emulator_host: str | None

    def describe(self) -> str:
        """Where requests go and with which credentials, for error messages."""
        if self.emulator_host:
            return f"the emulator at {self.emulator_host} ({EMULATOR_ENV}), anonymous credentials"
        if self.credentials_file:
            return f"GCS with the key file {self.credentials_file} ([plugins.gcs] credentials)"
        named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if named:
            return f"GCS with the key file {named} (GOOGLE_APPLICATION_CREDENTIALS)"
        return "GCS with Application Default Credentials"


def current_settings(project: str | None, credentials_file: str | None) -> ClientSettings:
    return ClientSettings(project or None, credentials_file or None, os.environ.get(EMULATOR_ENV) or None)


_clients: dict[tuple[int, ClientSettings], storage.Client] = {}
_clients_lock = threading.Lock()


def get_client(settings: ClientSettings) -> storage.Client:
    """The process's client for ``settings`` (built on first use; never at import)."""
    key = (os.getpid(), settings)  # a client's HTTP session must not cross a fork
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _build_client(settings)
                _clients[key] = client
    return client


def forget_clients() -> None:
    """Drop cached clients (tests, or after credentials change)."""
    with _clients_lock:
        _clients.clear()


def _build_client(settings: ClientSettings) -> storage.Client:
    from google.cloud import storage  # type: ignore[import-untyped]

    if settings.emulator_host:
        from google.auth.credentials import AnonymousCredentials

        host = settings.emulator_host
        endpoint = host if "://" in host else f"http://{host}"
        return storage.Client(
            project=settings.project or "runwright-emulator",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )

    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        if settings.credentials_file:
            credentials, found_project = _load_key_file(settings.credentials_file)
        else:
            credentials, found_project = google.auth.default(scopes=SCOPES)
    except (DefaultCredentialsError, CredentialsError) as exc:
        raise CredentialsError(
            f"no usable Google credentials for {settings.describe()}: {exc}. Point "
            "GOOGLE_APPLICATION_CREDENTIALS or [plugins.gcs] credentials at a valid key file, "
            "or run `gcloud auth application-default login`"
        ) from exc
    # project=None (not omitted) stops the client from running google.auth's lookup again
    return storage.Client(project=settings.project or found_project or None, credentials=credentials)


def _load_key_file(path: str) -> tuple[Any, str | None]:
    """Credentials from a service-account or authorized-user JSON file named in the config.

    Only these two types are accepted from ``[plugins.gcs] credentials`` (external-account
    files can run commands or fetch URLs, so they go through GOOGLE_APPLICATION_CREDENTIALS,
    where google.auth's own rules apply).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot load the key file {path}: {exc}") from exc
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return credentials, info.get("project_id")
        if kind == "authorized_user":
            from google.oauth2.credentials import Credentials

            return Credentials.from_authorized_user_info(info, scopes=SCOPES), info.get("quota_project_id")
    except (ValueError, KeyError) as exc:
        raise CredentialsError(f"the key file {path} is not a valid {kind} key: {exc!r}") from exc
    raise CredentialsError(
        f"the key file {path} has type {kind!r}; [plugins.gcs] credentials accepts 'service_account' "
        "or 'authorized_user' keys (use GOOGLE_APPLICATION_CREDENTIALS for other kinds)"
    )
