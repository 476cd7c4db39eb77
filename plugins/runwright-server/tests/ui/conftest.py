"""Fixtures of the UI tests: a Chromium browser (session), a page signed in as tenant "a",
and API helpers of tenants "a" and "b" (see :mod:`runwright_server.testing.browser`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runwright_server.testing import TestServer
from runwright_server.testing.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, Api, local_only, sign_in


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`, as .ci/test does) or set RUNWRIGHT_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: TestServer) -> Iterator[Any]:
    """A page signed in as tenant "a", 1280x800; only 127.0.0.1 is reachable from it."""
    context = browser.new_context(viewport=DESKTOP)
    context.route("**/*", local_only)
    pg = context.new_page()
    sign_in(pg, server, server.token_a)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def api(server: TestServer) -> Api:
    return Api(server, server.token_a)


@pytest.fixture
def api_b(server: TestServer) -> Api:
    return Api(server, server.token_b)


