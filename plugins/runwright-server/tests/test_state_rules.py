"""State rules over HTTP: known state types only, bounded messages, and no way back to
Running for a finished run but a retry, a resume or the sweeper's Failed."""

from __future__ import annotations

import pytest
import requests

from runwright_server.state_rules import MAX_MESSAGE_CHARS, MAX_STATE_CHARS
from runwright_server.testing import TestServer


def _write(sa: requests.Session, server: TestServer, what: str, run_id: str, version: int, state: dict) -> requests.Response:
    return sa.post(f"{server.api}/{what}/{run_id}/state", json={"version": version, "state": state})


@pytest.mark.parametrize("kind", ["Runing", "NoSuchState", "success", "type"])
def test_unknown_state_types_are_refused_everywhere(server: TestServer, sa: requests.Session, kind: str) -> None:
    run = server.make_run(sa)
    task_run = run["task_runs"][0]["id"]
    r = _write(sa, server, "flow_runs", run["id"], 0, {"type": kind})
    assert r.status_code == 422 and "not a runwright state" in r.text
    assert _write(sa, server, "task_runs", task_run, 0, {"type": kind}).status_code == 422
    batch = sa.post(server.api + "/task_run_states", json={"writes": [{"task_run_id": task_run, "version": 0, "state": {"type": kind}}]})
    assert batch.status_code == 422
    assert sa.post(server.api + "/flow_runs", json={"flow_id": run["flow_id"], "state": {"type": kind}}).status_code == 422
    inner = _write(sa, server, "task_runs", task_run, 0, {"type": "Submitted", "state": {"type": kind}})
    assert inner.status_code == 422
    assert sa.get(f"{server.api}/task_runs/{task_run}").json()["version"] == 0


def test_a_long_message_is_cut_and_a_huge_state_refused(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    task_run = run["task_runs"][0]["id"]
    long = "é" * (MAX_MESSAGE_CHARS * 4)
    assert _write(sa, server, "task_runs", task_run, 0, {"type": "Running", "message": long}).status_code == 200
    stored = sa.get(f"{server.api}/task_runs/{task_run}").json()["state"]["message"]
    assert len(stored) == MAX_MESSAGE_CHARS and stored.startswith("éé") and "cut by the server" in stored
    history = sa.get(f"{server.api}/task_runs/{task_run}/states").json()
    assert len(history[-1]["state"]["message"]) == MAX_MESSAGE_CHARS
    batch = {"writes": [{"task_run_id": task_run, "version": 1, "state": {"type": "Success", "message": long}}]}
    assert sa.post(server.api + "/task_run_states", json=batch).json()["results"][0]["status"] == "ok"
    huge = {"type": "Failed", "junk": "x" * (MAX_STATE_CHARS + 1)}
    r = sa.post(server.api + "/task_run_states", json={"writes": [{"task_run_id": task_run, "version": 2, "state": huge}]})
    assert r.status_code == 422 and len(r.content) < 4096


@pytest.mark.parametrize("final", ["Success", "Failed", "Cached", "Skipped", "TriggerFailed"])
def test_a_finished_run_does_not_go_back_to_running(server: TestServer, sa: requests.Session, final: str) -> None:
    run = server.make_run(sa)
    task_run = run["task_runs"][0]["id"]
    for what, run_id in (("flow_runs", run["id"]), ("task_runs", task_run)):
        assert _write(sa, server, what, run_id, 0, {"type": "Running"}).status_code == 200
        assert _write(sa, server, what, run_id, 1, {"type": final}).status_code == 200
        for back in ("Running", "Submitted", "Queued", "ClientFailed"):
            r = _write(sa, server, what, run_id, 2, {"type": back})
            assert r.status_code == 409, (what, back, r.text)
            assert "retry or a resume" in r.json()["detail"] and r.json()["current_version"] == 2
            assert r.json()["current_state"]["type"] == final
    batch = sa.post(
        server.api + "/task_run_states", json={"writes": [{"task_run_id": task_run, "version": 2, "state": {"type": "Running"}}]}
    ).json()
    assert batch["results"][0]["status"] == "rejected" and batch["results"][0]["current_state"]["type"] == final
    # inside one batch: Running, the final state, then Running again: the last write is refused
    other = run["task_runs"][1]["id"]
    chain = [
        {"task_run_id": other, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": other, "version": 1, "state": {"type": final}},
        {"task_run_id": other, "version": 2, "state": {"type": "Running"}},
    ]
    results = sa.post(server.api + "/task_run_states", json={"writes": chain}).json()["results"]
    assert [r["status"] for r in results] == ["ok", "ok", "rejected"]
    assert sa.get(f"{server.api}/task_runs/{other}").json()["state"]["type"] == final


def test_a_retry_a_resume_a_remap_and_the_sweepers_failed_may_run_again(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa, slugs=("a", "b", "c", "d"))
    a, b, c, d = (t["id"] for t in sorted(run["task_runs"], key=lambda t: t["task_slug"]))
    for kinds, task_run in (
        (["Running", "Failed", "Retrying", "Running", "Success"], a),  # a retry
        (["Running", "Cached", "Pending", "Running", "Cached"], b),  # a cache found invalid on resume
        (["Running", "Mapped", "Mapped", "TriggerFailed"], c),  # mapped again, then its trigger failed
        (["Running", "Success", "Resume", "Running"], d),  # an explicit resume
    ):
        for version, kind in enumerate(kinds):
            assert _write(sa, server, "task_runs", task_run, version, {"type": kind}).status_code == 200, (kinds, kind)
    # the sweeper's Failed (written by the server itself) is claimed straight back to Running
    swept = {"type": "Failed", "message": "no heartbeat for 120 s"}
    assert _write(sa, server, "flow_runs", run["id"], 0, {"type": "Running"}).status_code == 200
    assert _write(sa, server, "flow_runs", run["id"], 1, swept).status_code == 200
    assert _write(sa, server, "flow_runs", run["id"], 2, {"type": "Running"}).status_code == 200
