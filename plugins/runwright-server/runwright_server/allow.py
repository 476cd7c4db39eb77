"""ASGI middleware: a ``405`` names every method of the path in its ``Allow`` header.

Starlette answers a request whose path matches but whose method does not with the ``Allow``
of the first route it tried, and the routes of one path (``GET /flows``, ``POST /flows``)
are separate routes, so ``Allow`` listed only one of them. This middleware rewrites the
header of every 405 from the OpenAPI paths (built once, on the first 405).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _compile(paths: Mapping[str, Mapping[str, Any]]) -> list[tuple[re.Pattern[str], str]]:
    table = []
    for template, operations in paths.items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", template)
        )
        methods = {m.upper() for m in operations if m in _METHODS}
        if "GET" in methods:
            methods.add("HEAD")  # Starlette serves HEAD wherever it serves GET
        table.append((re.compile(pattern), ", ".join(sorted(methods))))
    return table


class AllowHeaderMiddleware:
    """Set ``Allow`` on 405 answers to the methods the schema declares for the path."""

    def __init__(self, app: ASGIApp, paths: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.app = app
        self._paths = paths
        self._table: list[tuple[re.Pattern[str], str]] | None = None

    def allow_for(self, path: str) -> str | None:
        if self._table is None:
            self._table = _compile(self._paths())
        for pattern, methods in self._table:
            if pattern.fullmatch(path):
                return methods
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = self.allow_for(scope["path"])
                if allow is not None:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    headers.append((b"allow", allow.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_allow)
