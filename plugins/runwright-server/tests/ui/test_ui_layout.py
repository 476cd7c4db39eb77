"""Every page at a desktop size (1280x800) and a phone size (390x844): nothing overflows
sideways. With ``RUNWRIGHT_UI_SCREENSHOTS=DIR`` the screenshots are kept there (for looking
at them; they are not part of the repository)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from runwright_server.testing import TestServer
from runwright_server.testing.browser import DESKTOP, PHONE, Api, local_only, seed_agent, seed_deployment, sign_in

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def world(server: TestServer) -> dict[str, str]:
    """Runs in every state, a mapped run with logs, a deployment and an agent."""
    api = Api(server, server.token_a)
    flow = api.flow(
        ["extract", "clean", "transform", "load", "report"],
        [("extract", "clean"), ("clean", "transform"), ("transform", "load"), ("load", "report")],
        name="nightly-warehouse-load",
    )
    for state in ("Success", "Success", "Failed", "Running", "Cancelled"):
        run = api.run(flow, {"day": "2026-12-01"})
        api.set_run_state(run["id"], "Running")
        if state != "Running":
            api.set_run_state(run["id"], state, "load: connection refused" if state == "Failed" else None)
    api.run(api.flow(["a"], name="hourly-metrics"))
    run = api.run(flow, {"day": "2026-12-02", "full": True})
    api.set_run_state(run["id"], "Running")
    tasks = {t["task_slug"]: t for t in api.task_runs(run["id"])}
    api.set_task_states([tasks["extract"], tasks["clean"]], "Running")
    api.set_task_states([tasks["extract"], tasks["clean"]], "Success")
    api.set_task_states([tasks["transform"]], "Mapped")
    children = api.children(run["id"], "transform", 300)
    api.set_task_states(children, "Running")
    api.set_task_states(children[:240], "Success")
    api.set_task_states(children[240:250], "Failed")
    for i in range(30):
        api.log(run["id"], f"transform[{i}] wrote 1,024 rows to warehouse.events", task_run_id=children[i]["id"])
    api.log(run["id"], "transform[241] failed: KeyError 'customer_id'", level="ERROR", task_run_id=children[241]["id"])
    name = seed_deployment(server, flow, {"day": "today", "full": False})
    # names as long as the API allows, without a space to break at, widen no page
    long_flow = api.flow(["a"], name="x" * 500)
    api.run(long_flow)
    seed_deployment(server, long_flow, {}, name="d" * 200)
    seed_agent(server, "a" * 200, queues=["q" * 200])
    seed_agent(server, "agent-eu-1")
    return {"run": run["id"], "task": children[241]["id"], "deployment": name}


#: the innermost element wider than the screen, as "tag.class" (for the failure message)
WIDEST_ELEMENT = """(limit) => {
  let found = null;
  for (const el of document.body.querySelectorAll("*")) {
    if (el.getBoundingClientRect().right > limit + 1) found = el;
  }
  return found ? found.tagName.toLowerCase() + "." + [...found.classList].join(".") + " " + found.outerHTML.slice(0, 80) : "?";
}"""

PAGES = [
    ("dashboard", "/"),
    ("flow-runs", "/flow-runs"),
    ("flow-runs-filtered", "/flow-runs?state=Failed"),
    ("flow-run", "/flow-runs/{run}"),
    ("task-run", "/flow-runs/{run}/tasks/{task}"),
    ("flows", "/flows"),
    ("deployments", "/deployments"),
    ("deployment-run", "/deployments/{deployment}/run"),
    ("agents", "/agents"),
    ("docs", "/docs"),
]


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_page_reads_without_sideways_scrolling(browser: Any, server: TestServer, world: dict[str, str], size: str) -> None:
    viewport = DESKTOP if size == "desktop" else PHONE
    keep = os.environ.get("RUNWRIGHT_UI_SCREENSHOTS")
    context = browser.new_context(viewport=viewport, is_mobile=size == "phone")
    context.route("**/*", local_only)
    page = context.new_page()
    try:
        page.goto(server.url + "/login")
        if keep:
            page.screenshot(path=str(Path(keep) / f"login-{size}.png"))
        sign_in(page, server, server.token_a)
        overflowing = []
        for name, path in PAGES:
            page.goto(server.url + path.format(**world))
            page.wait_for_load_state("networkidle") if name == "docs" else page.wait_for_timeout(300)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if width > viewport["width"] + 1:
                widest = page.evaluate(WIDEST_ELEMENT, viewport["width"])
                overflowing.append(f"{name}: {width}px (first too wide: {widest})")
            if keep:
                page.screenshot(path=str(Path(keep) / f"{name}-{size}.png"))
        assert not overflowing, f"pages wider than the {size} screen: {overflowing}"
    finally:
        context.close()
