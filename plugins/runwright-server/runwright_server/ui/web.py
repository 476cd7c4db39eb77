"""Request helpers of the UI: the path prefix, templates, the session gate, CSRF, form bodies."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from runwright_server.ui.sessions import COOKIE_NAME, UiSession, csrf_ok, session_of

HERE = Path(__file__).parent
#: a prefix a reverse proxy may announce: slash-separated plain path segments
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)*")
MAX_FORM_BYTES = 64 * 1024

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


class LoginRequired(Exception):
    """No live session: the page redirects to the sign-in page."""


class CsrfRefused(Exception):
    """A POST without the session's CSRF token."""


def base_path(request: Request) -> str:
    """The path prefix the UI is served under: ``X-Forwarded-Prefix`` of a reverse proxy, else
    the ASGI ``root_path`` (``uvicorn --root-path``), else nothing."""
    sent = request.headers.get("x-forwarded-prefix", "").rstrip("/")
    if sent and _PREFIX.fullmatch(sent):
        return sent
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return root if _PREFIX.fullmatch(root) else ""


def _fmt_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    return _fmt_duration((now - value).total_seconds()) + " ago"


templates.filters["time"] = _fmt_time
templates.filters["duration"] = _fmt_duration
templates.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
templates.globals["ago"] = _ago


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    base = base_path(request)
    html = templates.get_template(name).render(base=base, path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    return response


def redirect(request: Request, path: str) -> Response:
    """303 to ``path`` under the prefix; to htmx, the same as an ``HX-Redirect``."""
    target = base_path(request) + path
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def page_session(request: Request) -> UiSession:
    """Dependency of every page: the signed-in session, or :class:`LoginRequired`."""
    session = await session_of(request.app, request.cookies.get(COOKIE_NAME))
    if session is None:
        raise LoginRequired()
    return session


def login_redirect(request: Request, _exc: Exception) -> Response:
    here, base = request.url.path, base_path(request)
    if base and here.startswith(base + "/"):
        here = here[len(base) :]
    if request.url.query:
        here += "?" + request.url.query
    return redirect(request, "/login?next=" + quote(here, safe="/"))


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body (bounded), one value per field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items()}


async def checked_form(request: Request, session: UiSession) -> dict[str, str]:
    """The form of a POST whose CSRF token (field ``csrf`` or header ``X-CSRF-Token``) is the session's."""
    form = await read_form(request)
    if not csrf_ok(session, request.headers.get("x-csrf-token") or form.get("csrf")):
        raise CsrfRefused()
    return form


def safe_next(value: str | None) -> str:
    """A post-login target: a path of ours only (no scheme, no host, no protocol-relative)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value
