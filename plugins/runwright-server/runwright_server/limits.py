"""ASGI middleware that caps request bodies, by Content-Length and by the bytes streamed.

Two limits: the JSON routes' (``[server] max_json_body_bytes``, 4 MiB by default) and the
larger one of the routes that carry results or stored code (``[server] max_body_bytes``, 64
MiB): ``POST /results`` (raw bytes), ``POST /task_run_states`` (a batch with its inline
results) and ``PUT /storage/{digest}`` (a prefix).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimitMiddleware:
    """413 when a request declares or streams more than ``max_bytes`` of body.

    A declared Content-Length over the limit is refused before anything is read. A body that
    streams past the limit raises :class:`BodyTooLarge` (an HTTPException, so FastAPI's body
    parsing passes it through and it is rendered as a 413 JSON error).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_json_bytes: int | None = None,
        large_paths: frozenset[str] = frozenset(),
        large_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: the limit of every path but ``large_paths``
        self.max_json_bytes = max_bytes if max_json_bytes is None else max_json_bytes
        self.large_paths = large_paths
        #: paths starting with one of these have the larger limit too
        self.large_prefixes = large_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        large = path in self.large_paths or (bool(self.large_prefixes) and path.startswith(self.large_prefixes))
        limit = self.max_bytes if large else self.max_json_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        """A 413 before any of the body is read; the connection is closed after it."""
        body = json.dumps({"detail": f"request body exceeds the limit of {limit} bytes"}).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
