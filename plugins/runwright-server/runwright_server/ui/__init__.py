"""The web UI: server-rendered pages (Jinja2 + htmx) at ``/``, served by the server itself.

:func:`mount_ui` adds its routes, its static files (``/static``, vendored libraries
included: nothing is fetched from the internet) and a ``/docs`` page whose Swagger assets
are served locally. Pages authenticate with a sign-in session (see :mod:`.sessions`), not
with the bearer token of ``/api/v1``; see docs/ui.md.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from runwright_server.ui import live, pages
from runwright_server.ui.sessions import SessionCache
from runwright_server.ui.web import HERE, CsrfRefused, LoginRequired, base_path, login_redirect, render

STATIC_PREFIX = "/static"


def _csrf_refused(request: Request, _exc: Exception) -> Response:
    return render(
        request, "error.html", status_code=403, session=None,
        message="This form is out of date (its CSRF token does not match your session). Reload the page and try again.",
    )


def mount_ui(app: FastAPI, session_cache_seconds: float) -> None:
    """Add the UI's pages, its static files and the offline ``/docs`` page to ``app``."""
    app.state.ui_sessions = SessionCache(session_cache_seconds)
    app.include_router(pages.router)
    app.include_router(live.router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(LoginRequired, login_redirect)
    app.add_exception_handler(CsrfRefused, _csrf_refused)

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        base = base_path(request)
        return get_swagger_ui_html(
            openapi_url=base + (app.openapi_url or "/openapi.json"),
            title=app.title + " — API",
            swagger_js_url=base + STATIC_PREFIX + "/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=base + STATIC_PREFIX + "/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=base + STATIC_PREFIX + "/vendor/swagger-ui/favicon-32x32.png",
        )
