"""``CloudResultHandler``: results stored by the runwright server's result service.

The value is cloudpickled, framed with :mod:`runwright.engine.result_framing` (magic,
version, length, CRC-32, checked before anything is unpickled) and uploaded as opaque bytes;
the server answers with an ``rwcloud://results/<id>`` URI, which :meth:`read` downloads.

Constructing, pickling or deserializing a handler never touches the network: the client is
built on the first read or write.

**Inline results.** While the background writer serializes a batch (:func:`collect_inline`),
a result of at most :data:`INLINE_MAX_BYTES` for the same server is not uploaded: the handler
picks a random key, returns ``rwcloud://results/<key>`` at once and the bytes travel in the
batch request, stored in the same transaction as the states that name them.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from runwright.engine.result_framing import frame_header, pickle_result, unpickle_framed
from runwright.engine.result_handlers import ResultHandler, ResultHandlerError
from runwright_cloud.errors import ClientError, NotFoundError

if TYPE_CHECKING:  # the client (and requests) load on first use, not with the handler
    from runwright_cloud.client import Client

URI_PREFIX = "rwcloud://results/"
#: a (framed) result up to this size goes inline in the batch; a larger one is uploaded first
INLINE_MAX_BYTES = 1024 * 1024
#: most inline bytes in one batch request (the server's default body limit is 64 MiB)
BATCH_INLINE_MAX_BYTES = 16 * 1024 * 1024
#: inline result keys made at a time
KEYS_AT_A_TIME = 256


class InlineResults:
    """The results that go inline in one batch request to ``client``'s server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.results: list[dict[str, str]] = []
        self.size = 0
        self._keys: list[str] = []

    def _new_key(self) -> str:
        """A new key of 32 hex digits: the time in milliseconds (12 digits), then 80 random
        bits. Keys are made :data:`KEYS_AT_A_TIME` at once (one clock read, one system call),
        so keys in time order land at the right edge of the server's index of results, not on
        a random page of it each. A batch's keys are its own: no lock is needed."""
        if not self._keys:
            stamp = f"{time.time_ns() // 1_000_000:012x}"
            pool = os.urandom(10 * KEYS_AT_A_TIME).hex()
            self._keys = [stamp + pool[i : i + 20] for i in range(0, len(pool), 20)]
        return self._keys.pop()

    def take(self, client: Client, data: bytes) -> str | None:
        """Keep ``data`` for the batch and return its URI, or None (upload it instead)."""
        if (
            len(data) > INLINE_MAX_BYTES
            or self.size + len(data) > BATCH_INLINE_MAX_BYTES
            or client.api != self.client.api
            or client.api_token != self.client.api_token
        ):
            return None
        key = self._new_key()
        self.results.append({"key": key, "data": base64.b64encode(data).decode("ascii")})
        self.size += len(data)
        return URI_PREFIX + key


_inline = threading.local()


@contextmanager
def collect_inline(client: Client) -> Iterator[InlineResults]:
    """In this thread, results written for ``client``'s server go inline (see the module doc)."""
    collector = InlineResults(client)
    previous = getattr(_inline, "collector", None)
    _inline.collector = collector
    try:
        yield collector
    finally:
        _inline.collector = previous


class CloudResultHandler(ResultHandler):
    """Stores results on the runwright server.

    :param result_handler_service: the server's root URL; None means the run's server (the
        ``cloud_settings`` of the run context), else ``[cloud] api``.
    """

    handler_name: ClassVar[str] = "cloud"
    uri_schemes: ClassVar[tuple[str, ...]] = ("rwcloud",)

    def __init__(self, result_handler_service: str | None = None) -> None:
        self.result_handler_service = result_handler_service
        self._client: Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"result_handler_service": self.result_handler_service, "_client": None}

    @property
    def client(self) -> Client:
        """The client, built on first use: the run's server and token, else the config's."""
        client = self._client
        if client is None:
            from runwright.context import context
            from runwright_cloud.connection import shared_client

            settings = context.get("cloud_settings")
            if settings is None or (self.result_handler_service and self.result_handler_service != settings.api):
                from runwright_cloud.cloud_settings import load_settings
                from runwright_cloud.embedded import resolve_token

                settings = load_settings()
                api = (self.result_handler_service or settings.api).rstrip("/")
                token = settings.api_token or (resolve_token() if api == settings.api and settings.embedded else None)
                client = shared_client(api, token)
            else:
                client = shared_client(settings.api, settings.api_token)
            self._client = client
        return client

    def write(self, result: Any) -> str:
        """Upload the cloudpickled ``result``; return its ``rwcloud://`` URI."""
        payload = pickle_result(result, "CloudResultHandler")
        client = self.client
        data = frame_header(payload) + payload
        collector: InlineResults | None = getattr(_inline, "collector", None)
        if collector is not None:
            uri = collector.take(client, data)
            if uri is not None:
                return uri
        try:
            return client.upload_result(data)
        except ClientError as exc:
            raise ResultHandlerError(f"Could not store a result on the runwright server at {client.api}: {exc}") from exc

    def read(self, loc: str) -> Any:
        """Download and unpickle the result at ``loc``."""
        client = self.client
        try:
            data = client.download_result(loc)
        except NotFoundError as exc:
            raise ResultHandlerError(
                f"No result at {loc} on the runwright server at {client.api} (wrong server or tenant, "
                "or the database was replaced); re-run the task that produced it"
            ) from exc
        except ClientError as exc:
            raise ResultHandlerError(f"Could not read {loc} from the runwright server at {client.api}: {exc}") from exc
        return unpickle_framed(data, loc, "result at")
