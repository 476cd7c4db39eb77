"""ASGI middleware: the bearer token is checked before any byte of a request body is read.

FastAPI reads and parses a body before it solves the route's dependencies, so without this
an unauthenticated client could make the server read and parse a body as large as the
limit. Here a request to the API (``/api/v1/...``, except ``/api/v1/health``) that carries a
token, or a body, is authenticated first, from the headers alone (a token checked in the
last ``token_cache_seconds`` costs a dictionary lookup; otherwise one query in the thread
pool): a missing, unknown or revoked token is a 401 sent without reading the body. The
tenant found is left in the scope for :func:`runwright_server.auth.require_principal`.

A request without a token and without a body passes through, so that a path or method that
does not exist is still a 404 or 405 (and every route still answers 401 through its
dependency).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from runwright_server.auth import PRINCIPAL_SCOPE_KEY, Principal, authenticate

_UNAUTHORIZED_HEADERS = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]


class AuthGateMiddleware:
    def __init__(self, app: ASGIApp, prefix: str, public: frozenset[str]) -> None:
        self.app = app
        self.prefix = prefix
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(self.prefix) or path in self.public:
            await self.app(scope, receive, send)
            return
        authorization = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                has_body = has_body or value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        if authorization is None and not has_body:
            await self.app(scope, receive, send)
            return
        scheme, _, token = (authorization or b"").partition(b" ")
        tenant_id = None
        if scheme.lower() == b"bearer" and token.strip():
            tenant_id = await authenticate(scope["app"], token.strip().decode("latin-1"))
        if tenant_id is None:
            detail = "invalid or revoked API token" if token.strip() else "missing bearer token (Authorization: Bearer <token>)"
            await _refuse(send, detail, close=has_body)
            return
        scope[PRINCIPAL_SCOPE_KEY] = Principal(tenant_id=tenant_id)
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str, close: bool) -> None:
    """A 401; with ``close``, the connection is closed after it (its body was never read)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [*_UNAUTHORIZED_HEADERS, (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
