"""The web UI in a real headless Chromium against a real server (SQLite; PostgreSQL too
under with-postgres.sh): sign-in, live runs, a 10,000-task run, filters, deployments,
cancel, logs, tenants, the offline /docs page."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from runwright_server.testing import TestServer, unique
from runwright_server.testing.browser import DESKTOP, Api, seed_agent, seed_deployment, sign_in

pytestmark = pytest.mark.timeout(120)


def test_a_wrong_token_gets_a_clear_message_and_a_right_one_signs_in(browser: Any, server: TestServer) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto(server.url + "/flow-runs")
        assert page.url.endswith("/login?next=/flow-runs")
        page.fill("#token", "rw_not-a-token")
        page.click("button[type=submit]")
        assert "unknown or revoked" in page.inner_text(".error")
        page.fill("#token", server.revoked)
        page.click("button[type=submit]")
        assert "unknown or revoked" in page.inner_text(".error")
        page.fill("#token", server.token_a)
        page.click("button[type=submit]")
        page.wait_for_selector("h1:text('Flow runs')")
        assert page.inner_text(".tenant") == "a"
        page.click("text=Sign out")
        page.wait_for_selector("#token")
        page.goto(server.url + "/")
        assert "/login" in page.url
    finally:
        context.close()


def test_a_new_run_appears_on_the_open_list_and_its_states_follow_live(page: Any, api: Api, server: TestServer) -> None:
    flow = api.flow(["extract", "load"], [("extract", "load")])
    page.goto(server.url + "/flow-runs?flow=" + flow["name"])
    assert "No flow runs." in page.inner_text("#live")
    run = api.run(flow)
    page.wait_for_selector(f"tr[data-run='{run['id']}']", timeout=3000)

    page.goto(f"{server.url}/flow-runs/{run['id']}")
    page.wait_for_selector(".row[data-slug='extract']")
    start = time.monotonic()
    api.set_run_state(run["id"], "Running")
    # the target is 1 s; the timeouts leave a margin for a loaded machine (figures printed)
    page.wait_for_selector("#run-state .s-Running", timeout=2000)
    flow_state_seconds = time.monotonic() - start

    extract = next(t for t in api.task_runs(run["id"]) if t["task_slug"] == "extract")
    start = time.monotonic()
    api.set_task_states([extract], "Running")
    page.wait_for_selector(".row[data-slug='extract'][data-state='Running']", timeout=2000)
    task_state_seconds = time.monotonic() - start
    print(f"\nstate on an open page: flow run {flow_state_seconds * 1000:.0f} ms, task run {task_state_seconds * 1000:.0f} ms")

    api.set_task_states([extract], "Success")
    page.wait_for_selector(".row[data-slug='extract'][data-state='Success']", timeout=2000)
    api.set_run_state(run["id"], "Failed", "load broke")
    page.wait_for_selector("#run-state .s-Failed", timeout=2000)
    assert page.inner_text("#run-message") == "load broke"


def test_a_run_of_10000_mapped_tasks_shows_its_tasks_within_a_second(page: Any, api: Api, server: TestServer) -> None:
    flow = api.flow(["extract", "transform", "load"], [("extract", "transform"), ("transform", "load")])
    run = api.run(flow)
    parents = {t["task_slug"]: t for t in api.task_runs(run["id"])}
    children = api.children(run["id"], "transform", 10_000)
    api.set_task_states([parents["extract"]], "Success")
    api.set_task_states([parents["transform"]], "Mapped")
    api.set_task_states(children[:9000], "Success")
    api.set_task_states(children[9000:9100], "Failed")
    api.set_run_state(run["id"], "Running")

    shown, walls = [], []
    for _ in range(3):
        start = time.monotonic()
        page.goto(f"{server.url}/flow-runs/{run['id']}", wait_until="commit")
        page.wait_for_selector(".row[data-slug='transform'] .counts-inline", timeout=5000)
        walls.append(time.monotonic() - start)
        # navigation start -> the timeline drawn with every task run (the page's own mark)
        shown.append(page.evaluate("() => performance.getEntriesByName('runwright:tasks-shown')[0].startTime") / 1000)
    print(
        f"\n10,000-task run page: tasks shown {min(shown) * 1000:.0f} ms after navigation (min of 3; all "
        f"{[round(t * 1000) for t in shown]}; as playwright saw it {[round(t * 1000) for t in walls]})"
    )
    # the target is 1 s (met on an idle machine, see docs/ui.md); the margin is for a loaded one
    assert min(shown) < 2.0
    assert page.get_attribute("#run", "data-tasks-loaded") == "10003"
    counts = page.inner_text(".row[data-slug='transform'] .counts-inline")
    assert "9000 Success" in counts and "100 Failed" in counts and "900 Pending" in counts
    assert "10003 task runs" in page.inner_text("#task-summary")

    page.click(".row[data-slug='transform'] .toggle")  # expand: 10,000 children, only those in view exist
    page.wait_for_selector(".row.child")
    assert page.locator(".row").count() < 100
    page.eval_on_selector("#gantt", "g => g.scrollTop = 24 * 9050")
    page.wait_for_selector(".row.child[data-state='Failed']")
    page.click(".row.child[data-state='Failed']")
    page.wait_for_selector(".panel-body h2:has-text('transform')")
    assert "Failed" in page.inner_text(".panel-body .history")

    page.click("button[data-tab=graph]")
    page.wait_for_selector("#graph svg .node", timeout=10_000)
    assert page.locator("#graph svg .node").count() == 3
    assert "×10000" in (page.text_content("#graph svg") or "")


def test_the_runs_list_filters_by_flow_and_state(page: Any, api: Api, server: TestServer) -> None:
    first, second = api.flow(["a"]), api.flow(["a"])
    ok = api.run(first)
    api.set_run_state(ok["id"], "Running")
    api.set_run_state(ok["id"], "Success")
    failed = api.run(first)
    api.set_run_state(failed["id"], "Running")
    api.set_run_state(failed["id"], "Failed")
    other = api.run(second)
    page.goto(server.url + "/flow-runs")
    page.select_option("select[name=flow]", first["name"])
    page.wait_for_selector(f"tr[data-run='{ok['id']}']")
    page.wait_for_function("() => location.search.includes('flow=')")
    shown = page.eval_on_selector_all("tr[data-run]", "rows => rows.map(r => r.dataset.run)")
    assert set(shown) == {ok["id"], failed["id"]}
    assert other["id"] not in shown
    page.select_option("select[name=state]", "Failed")
    page.wait_for_function("() => location.search.includes('state=Failed')")
    page.wait_for_selector(f"tr[data-run='{ok['id']}']", state="detached")
    shown = page.eval_on_selector_all("tr[data-run]", "rows => rows.map(r => r.dataset.run)")
    assert shown == [failed["id"]]


def test_running_a_deployment_with_a_parameter(page: Any, api: Api, server: TestServer) -> None:
    flow = api.flow(["a", "b"], [("a", "b")])
    name = seed_deployment(server, flow, {"n": 3, "label": "x"})
    page.goto(server.url + "/deployments")
    card = page.locator(f"article[data-deployment='{name}']")
    assert "every 1 h" in card.inner_text()
    assert card.locator("dd").nth(2).inner_text().count("UTC") == 3  # the next three starts
    card.locator("text=Run…").click()
    field = page.locator("input[name='p.n']")
    assert field.input_value() == "3"
    field.fill("7")
    page.click("text=Run now")
    page.wait_for_selector("#run")
    run_id = page.get_attribute("#run", "data-run-id")
    assert run_id
    run = api.get_run(run_id)
    assert run["parameters"] == {"n": 7, "label": "x"}
    assert run["state"]["type"] == "Scheduled"
    assert '"n": 7' in page.inner_text(".facts pre")

    page.goto(server.url + "/deployments")
    page.locator(f"article[data-deployment='{name}'] button:has-text('Pause')").click()
    page.wait_for_selector(f"article[data-deployment='{name}'] .s-Paused")
    page.locator(f"article[data-deployment='{name}'] button:has-text('Resume')").click()
    page.wait_for_selector(f"article[data-deployment='{name}'] button:has-text('Pause')")


def test_cancel_a_running_run_and_a_scheduled_one(page: Any, api: Api, server: TestServer) -> None:
    flow = api.flow(["a"])
    running = api.run(flow)
    api.set_run_state(running["id"], "Running")
    page.goto(f"{server.url}/flow-runs/{running['id']}")
    page.click("#cancel")
    page.wait_for_selector(".notice:has-text('cancel requested')")
    assert page.is_visible("#run-cancelling")

    scheduled = api.run(flow)
    page.goto(f"{server.url}/flow-runs/{scheduled['id']}")
    page.click("#cancel")
    page.wait_for_selector("#run-state .s-Cancelled")
    assert api.get_run(scheduled["id"])["state"]["type"] == "Cancelled"
    assert {t["state"]["type"] for t in api.task_runs(scheduled["id"])} == {"Cancelled"}
    page.click("#retry")
    page.wait_for_selector("#run-state .s-Scheduled")
    assert api.get_run(scheduled["id"])["state"]["type"] == "Scheduled"


def test_the_logs_of_a_run_follow_live(page: Any, api: Api, server: TestServer) -> None:
    run = api.run(api.flow(["a"]))
    api.set_run_state(run["id"], "Running")
    api.log(run["id"], "before the page opened")
    page.goto(f"{server.url}/flow-runs/{run['id']}")
    page.click("button[data-tab=logs]")
    page.wait_for_selector("#logs .log:has-text('before the page opened')")
    api.log(run["id"], "<b>while it was open</b>", level="ERROR")
    page.wait_for_selector("#logs .log:has-text('<b>while it was open</b>')", timeout=2000)
    assert page.locator("#logs .log b").last.inner_text() == "ERROR"


def test_another_tenant_sees_nothing_of_a(browser: Any, server: TestServer, api: Api, api_b: Api) -> None:
    run = api.run(api.flow(["secret"], name=unique("a-only")))
    seed_agent(server, unique("agent-of-a"))
    mine = api_b.run(api_b.flow(["b"]))
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        sign_in(page, server, server.token_b)
        assert page.inner_text(".tenant") == "b"
        page.goto(server.url + "/flow-runs")
        assert page.locator(f"tr[data-run='{run['id']}']").count() == 0
        assert page.locator(f"tr[data-run='{mine['id']}']").count() == 1
        page.goto(server.url + "/flows")
        assert "a-only" not in page.inner_text("main")
        page.goto(server.url + "/agents")
        assert "agent-of-a" not in page.inner_text("main")
        response = page.goto(f"{server.url}/flow-runs/{run['id']}")
        assert response.status == 404 and "No such flow run" in page.inner_text("main")
        for tail in ("/task-runs.json", "/graph.json", "/logs.json"):
            assert page.request.get(f"{server.url}/flow-runs/{run['id']}{tail}").status == 404
    finally:
        context.close()


def test_the_api_docs_page_works_offline(page: Any, server: TestServer) -> None:
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=10_000)
    assert "runwright server" in page.inner_text(".swagger-ui .info .title")
    assert re.search(r"/api/v1/flow_runs", page.inner_text(".swagger-ui"))
