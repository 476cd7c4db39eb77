"""Agents on the real server (SQLite, and PostgreSQL under with-postgres.sh): register, the
long poll, version-checked claims racing, concurrency limits, release, tenants."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from runwright_server.testing import TestServer, unique
from runwright_server.testing.orchestration import insert_deployment, queue_run


def _agent(server: TestServer, s: requests.Session, queues: list[str], run_limit: int | None = None) -> str:
    r = s.post(f"{server.api}/agents", json={"name": unique("agent"), "queues": queues, "run_limit": run_limit})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _poll(server: TestServer, s: requests.Session, agent: str, queues: list[str], **body: Any) -> dict[str, Any]:
    body = {"queues": queues, "free_slots": 10, "wait_seconds": 0, **body}
    r = s.post(f"{server.api}/agents/{agent}/poll", json=body, timeout=40)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def _queued_runs(server: TestServer, s: requests.Session, count: int, queue: str, **deployment: Any) -> tuple[str, list[str]]:
    flow = server.make_flow(s)
    dep = insert_deployment(server.db_url, "a", flow["id"], queue=queue, **deployment)
    ids = []
    for _ in range(count):
        r = s.post(f"{server.api}/flow_runs", json={"flow_id": flow["id"]})
        assert r.status_code == 201, r.text
        queue_run(server.db_url, r.json()["id"], dep, queue)
        ids.append(r.json()["id"])
    return dep, ids


def test_a_claim_moves_a_due_run_to_submitted_with_its_deployment(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    _dep, (run_id,) = _queued_runs(server, sa, 1, queue, storage_ref={"digest": "d" * 64, "filename": "f.py"})
    agent = _agent(server, sa, [queue])
    answer = _poll(server, sa, agent, [queue])
    (claimed,) = answer["claimed"]
    assert claimed["flow_run"]["id"] == run_id and claimed["flow_run"]["agent_id"] == agent
    assert claimed["deployment"]["storage"] == "server"
    assert claimed["deployment"]["storage_ref"] == {"digest": "d" * 64, "filename": "f.py"}
    run = sa.get(f"{server.api}/flow_runs/{run_id}").json()
    assert run["state"]["type"] == "Submitted" and run["state"]["state"]["type"] == "Scheduled"
    assert [h["state"]["type"] for h in sa.get(f"{server.api}/flow_runs/{run_id}/states").json()] == ["Scheduled", "Submitted"]
    assert _poll(server, sa, agent, [queue])["claimed"] == []  # claimed once


def test_a_poll_with_nothing_waits_then_answers_empty(server: TestServer, sa: requests.Session) -> None:
    agent = _agent(server, sa, [unique("q")])
    started = time.monotonic()
    answer = _poll(server, sa, agent, [unique("q")], wait_seconds=0.6)
    assert answer == {"claimed": [], "cancel": []}
    assert 0.55 <= time.monotonic() - started < 3


def test_a_waiting_poll_answers_the_moment_a_run_is_handed_back(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    _dep, (run_id,) = _queued_runs(server, sa, 1, queue)
    first, second = _agent(server, sa, [queue]), _agent(server, sa, [queue])
    assert _poll(server, sa, first, [queue])["claimed"][0]["flow_run"]["id"] == run_id
    with ThreadPoolExecutor(1) as pool:
        s2 = server.session()
        future = pool.submit(_poll, server, s2, second, [queue], wait_seconds=20)
        time.sleep(0.3)
        released_at = time.monotonic()
        r = sa.post(f"{server.api}/agents/{first}/release", json={"flow_run_ids": [run_id]})
        assert r.json() == {"released": [run_id]}
        answer = future.result(timeout=25)
        assert time.monotonic() - released_at < 0.5
    assert answer["claimed"][0]["flow_run"]["id"] == run_id
    assert answer["claimed"][0]["flow_run"]["agent_id"] == second


def test_agents_racing_claim_every_run_exactly_once(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    _dep, ids = _queued_runs(server, sa, 30, queue)
    agents = [_agent(server, sa, [queue]) for _ in range(6)]
    got: list[str] = []
    lock = threading.Lock()

    def race(agent: str) -> None:
        with server.session() as s:
            for _ in range(10):
                answer = _poll(server, s, agent, [queue], free_slots=3)
                with lock:
                    got.extend(c["flow_run"]["id"] for c in answer["claimed"])

    threads = [threading.Thread(target=race, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == sorted(ids)
    for run_id in ids:
        history = [h["state"]["type"] for h in sa.get(f"{server.api}/flow_runs/{run_id}/states").json()]
        assert history == ["Scheduled", "Submitted"]


def test_deployment_queue_and_agent_limits_hold(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    _dep, ids = _queued_runs(server, sa, 5, queue, concurrency_limit=2)
    agent = _agent(server, sa, [queue])
    assert len(_poll(server, sa, agent, [queue])["claimed"]) == 2
    assert _poll(server, sa, agent, [queue])["claimed"] == []
    # a queue limit counts the queue's busy runs, whatever their deployment
    other_queue = unique("q")
    r = sa.put(f"{server.api}/work_queues/{other_queue}", json={"concurrency_limit": 1})
    assert r.json() == {"name": other_queue, "concurrency_limit": 1}
    _queued_runs(server, sa, 3, other_queue)
    assert len(_poll(server, sa, agent, [other_queue])["claimed"]) == 1
    assert {"name": other_queue, "concurrency_limit": 1} in sa.get(f"{server.api}/work_queues").json()
    # an agent's own run limit
    third = unique("q")
    _queued_runs(server, sa, 3, third)
    limited = _agent(server, sa, [third], run_limit=1)
    assert len(_poll(server, sa, limited, [third])["claimed"]) == 1
    assert _poll(server, sa, limited, [third])["claimed"] == []


def test_a_run_due_later_is_claimed_when_its_start_comes(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    flow = server.make_flow(sa)
    dep = insert_deployment(server.db_url, "a", flow["id"], queue=queue)
    start = time.time() + 1.2
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)) + f".{int(start % 1 * 1e6):06d}Z"
    run = sa.post(f"{server.api}/flow_runs", json={"flow_id": flow["id"], "scheduled_start_time": when}).json()
    queue_run(server.db_url, run["id"], dep, queue)
    agent = _agent(server, sa, [queue])
    answer = _poll(server, sa, agent, [queue], wait_seconds=10)
    assert answer["claimed"][0]["flow_run"]["id"] == run["id"]
    assert start - 0.05 <= time.time() < start + 0.6


def test_another_tenant_neither_claims_nor_reaches_the_agent(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    queue = unique("q")
    _dep, (run_id,) = _queued_runs(server, sa, 1, queue)
    b_agent = _agent(server, sb, [queue])
    assert _poll(server, sb, b_agent, [queue])["claimed"] == []
    a_agent = _agent(server, sa, [queue])
    assert sb.post(f"{server.api}/agents/{a_agent}/poll", json={"queues": [queue], "wait_seconds": 0}).status_code == 404
    assert sb.post(f"{server.api}/agents/{a_agent}/release", json={"flow_run_ids": [run_id]}).status_code == 404
    assert sb.post(f"{server.api}/agents/{a_agent}/stop").status_code == 404
    assert _poll(server, sa, a_agent, [queue])["claimed"][0]["flow_run"]["id"] == run_id


def test_bad_agent_requests_are_4xx(server: TestServer, sa: requests.Session) -> None:
    agent = _agent(server, sa, ["default"])
    assert sa.post(f"{server.api}/agents/{agent}/poll", json={"wait_seconds": 31}).status_code == 422
    assert sa.post(f"{server.api}/agents/{agent}/poll", json={"free_slots": -1}).status_code == 422
    assert sa.post(f"{server.api}/agents/{agent}/poll", json={"queues": ["x" * 201]}).status_code == 422
    assert sa.post(f"{server.api}/agents/nope!/poll", json={}).status_code == 404
    assert sa.post(f"{server.api}/agents/{'0' * 36}/poll", json={}).status_code == 404
    assert sa.post(f"{server.api}/agents", json={"run_limit": 0}).status_code == 422
    assert sa.put(f"{server.api}/work_queues/q", json={"concurrency_limit": -1}).status_code == 422
    assert requests.post(f"{server.api}/agents", json={}).status_code == 401
    assert sa.post(f"{server.api}/agents/{agent}/stop").json() == {"id": agent, "stopped": True}


def test_waiting_polls_hold_no_thread(server: TestServer, sa: requests.Session) -> None:
    """More waiting polls than the threadpool has threads (40): other requests still answer."""
    agent = _agent(server, sa, [unique("q")])
    sessions = [server.session() for _ in range(60)]
    with ThreadPoolExecutor(60) as pool:
        futures = [pool.submit(_poll, server, s, agent, [unique("q")], wait_seconds=4) for s in sessions]
        time.sleep(1.0)
        started = time.monotonic()
        assert sa.get(f"{server.api}/flow_runs", params={"limit": 1}).status_code == 200
        assert time.monotonic() - started < 0.5
        for future in futures:
            assert future.result(timeout=30) == {"claimed": [], "cancel": []}
    for s in sessions:
        s.close()


def test_a_stopped_agent_claims_nothing_and_hands_back_its_unstarted_runs(server: TestServer, sa: requests.Session) -> None:
    queue = unique("q")
    _dep, ids = _queued_runs(server, sa, 3, queue)
    agent = _agent(server, sa, [queue])
    assert len(_poll(server, sa, agent, [queue], free_slots=1)["claimed"]) == 1
    assert sa.post(f"{server.api}/agents/{agent}/stop").status_code == 200
    assert _poll(server, sa, agent, [queue])["claimed"] == []
    assert {sa.get(f"{server.api}/flow_runs/{i}").json()["state"]["type"] for i in ids} == {"Scheduled"}
