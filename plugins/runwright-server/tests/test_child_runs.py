"""Child runs created by their first state writes (a fresh map's children; see
runwright_server.child_runs), through the HTTP API of a real server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from runwright_server.testing import TestServer, unique

SUCCESS = {"type": "Success", "message": "done"}


def leased_run(server: TestServer, sa: requests.Session, name: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """A flow run of tasks "a" and "b", Running under a lease; and that lease, as a batch names it."""
    run = server.make_run(sa, name=name)
    token = uuid.uuid4().hex
    assert sa.post(f"{server.api}/flow_runs/{run['id']}/state", json={"version": 0, "state": {"type": "Running"}, "lease": token}).ok
    return run, {"flow_run_id": run["id"], "token": token}


def child_write(run_id: str, version: int, state: dict[str, Any], index: int | None = None, slug: str = "a") -> dict[str, Any]:
    write: dict[str, Any] = {"task_run_id": run_id, "version": version, "state": state}
    if index is not None:
        write.update(task_slug=slug, map_index=index)
    return write


def children(server: TestServer, sa: requests.Session, run_id: str) -> dict[int, dict[str, Any]]:
    runs = sa.get(f"{server.api}/flow_runs/{run_id}/task_runs").json()
    return {r["map_index"]: r for r in runs if r["map_index"] >= 0}


def history(server: TestServer, sa: requests.Session, task_run_id: str) -> list[tuple[int, str]]:
    rows = sa.get(f"{server.api}/task_runs/{task_run_id}/states").json()
    return [(r["version"], r["state"]["type"]) for r in rows]


def test_a_task_without_children_is_answered_fresh_and_nothing_is_created(server: TestServer, sa: requests.Session) -> None:
    run, _ = leased_run(server, sa)
    page = {"flow_run_id": run["id"], "task_slug": "a", "map_indexes": [0, 1, 2], "fresh_ok": True}
    assert sa.post(f"{server.api}/task_runs/batch", json=page).json() == {"task_runs": [], "fresh": True}
    assert children(server, sa, run["id"]) == {}
    # once a child exists, the same request gets or creates the page, as without fresh_ok
    sa.post(f"{server.api}/task_runs/batch", json={**page, "map_indexes": [1], "fresh_ok": False}).raise_for_status()
    answer = sa.post(f"{server.api}/task_runs/batch", json=page).json()
    assert answer["fresh"] is False and [r["map_index"] for r in answer["task_runs"]] == [0, 1, 2]


def test_the_first_writes_create_the_children_with_their_last_state(server: TestServer, sa: requests.Session) -> None:
    run, lease = leased_run(server, sa)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    writes = []
    for index, task_run_id in enumerate(ids):
        writes += [child_write(task_run_id, 0, {"type": "Running"}, index), child_write(task_run_id, 1, SUCCESS)]
    answer = sa.post(f"{server.api}/task_run_states", json={"lease": lease, "writes": writes})
    assert answer.status_code == 200, answer.text
    assert [(r["status"], r["version"]) for r in answer.json()["results"]] == [("ok", 1), ("ok", 2)] * 3
    made = children(server, sa, run["id"])
    assert [made[i]["id"] for i in range(3)] == ids
    assert all(made[i]["state"] == SUCCESS and made[i]["version"] == 2 for i in range(3))
    # the history starts with the first write: no Pending row
    assert all(history(server, sa, task_run_id) == [(1, "Running"), (2, "Success")] for task_run_id in ids)


def test_a_batch_delivered_twice_creates_nothing_twice(server: TestServer, sa: requests.Session) -> None:
    run, lease = leased_run(server, sa)
    task_run_id = str(uuid.uuid4())
    body = {"lease": lease, "writes": [child_write(task_run_id, 0, {"type": "Running"}, 0), child_write(task_run_id, 1, SUCCESS)]}
    assert [r["status"] for r in sa.post(f"{server.api}/task_run_states", json=body).json()["results"]] == ["ok", "ok"]
    again = sa.post(f"{server.api}/task_run_states", json=body).json()["results"]
    # version-checked against the run the first delivery made (the client takes such a
    # conflict whose current state is its own as applied)
    assert [r["status"] for r in again] == ["conflict", "conflict"]
    assert again[-1]["version"] == 2 and again[-1]["current_state"] == SUCCESS
    assert list(children(server, sa, run["id"])) == [0]
    assert history(server, sa, task_run_id) == [(1, "Running"), (2, "Success")]


def test_a_child_index_another_run_has_is_a_conflict_and_the_rest_applies(server: TestServer, sa: requests.Session) -> None:
    run, lease = leased_run(server, sa)
    existing = sa.post(f"{server.api}/task_runs", json={"flow_run_id": run["id"], "task_slug": "a", "map_index": 0}).json()
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    writes = [child_write(mine, 0, SUCCESS, 0), child_write(other, 0, SUCCESS, 1), child_write(mine, 1, SUCCESS)]
    results = sa.post(f"{server.api}/task_run_states", json={"lease": lease, "writes": writes}).json()["results"]
    assert [r["status"] for r in results] == ["conflict", "ok", "conflict"]
    made = children(server, sa, run["id"])
    assert made[0]["id"] == existing["id"] and made[0]["state"]["type"] == "Pending"  # untouched
    assert made[1]["id"] == other and made[1]["state"] == SUCCESS


def test_a_child_of_a_task_the_flow_run_does_not_have_is_not_found(server: TestServer, sa: requests.Session) -> None:
    run, lease = leased_run(server, sa)
    write = child_write(str(uuid.uuid4()), 0, SUCCESS, 0, slug="no-such-task")
    results = sa.post(f"{server.api}/task_run_states", json={"lease": lease, "writes": [write]}).json()["results"]
    assert [r["status"] for r in results] == ["not_found"]
    assert children(server, sa, run["id"]) == {}


def test_another_tenant_cannot_create_children_in_a_flow_run(server: TestServer, sa: requests.Session, sb: requests.Session) -> None:
    run, lease = leased_run(server, sa)
    write = child_write(str(uuid.uuid4()), 0, SUCCESS, 0)
    assert sb.post(f"{server.api}/task_run_states", json={"lease": lease, "writes": [write]}).status_code == 404
    assert children(server, sa, run["id"]) == {}


@pytest.mark.parametrize(
    ("write", "lease", "message"),
    [
        ({"version": 0, "task_slug": "a"}, True, "task_slug and map_index go together"),
        ({"version": 1, "task_slug": "a", "map_index": 0}, True, "expects version 0"),
        ({"version": 0, "task_slug": "a", "map_index": 0, "task_run_id": "child-0"}, True, "new UUID"),
        ({"version": 0, "task_slug": "a", "map_index": -1}, True, "greater than or equal to 0"),
        ({"version": 0, "task_slug": "a", "map_index": 0}, False, "need the batch's lease"),
    ],
)
def test_a_malformed_creating_write_is_a_422_naming_the_rule(
    server: TestServer, sa: requests.Session, write: dict[str, Any], lease: bool, message: str
) -> None:
    run, batch_lease = leased_run(server, sa)
    body: dict[str, Any] = {"writes": [{"task_run_id": str(uuid.uuid4()), "state": SUCCESS, **write}]}
    if lease:
        body["lease"] = batch_lease
    answer = sa.post(f"{server.api}/task_run_states", json=body)
    assert answer.status_code == 422 and message in answer.text, answer.text
    assert children(server, sa, run["id"]) == {}


def test_a_cache_hit_can_create_its_child_too(server: TestServer, sa: requests.Session) -> None:
    # a Cached state on the server to name: task "b" of an earlier run, by its history row
    name = unique()
    earlier, earlier_lease = leased_run(server, sa, name)
    b = earlier["task_runs"][1]["id"]
    cached = {"type": "Cached", "message": "from before", "cache_key": "k" * 64}
    assert sa.post(f"{server.api}/task_run_states", json={"lease": earlier_lease, "writes": [child_write(b, 0, cached)]}).ok
    (candidate,) = sa.get(f"{server.api}/cached_states", params={"flow_name": name}).json()
    state_id = candidate["state_id"]
    run, lease = leased_run(server, sa, name)
    task_run_id = str(uuid.uuid4())
    hit = {"task_run_id": task_run_id, "version": 0, "state_id": state_id, "task_slug": "a", "map_index": 4}
    results = sa.post(f"{server.api}/cached_states/hits", json={"lease": lease, "hits": [hit]}).json()["results"]
    assert [r["status"] for r in results] == ["ok"]
    made = children(server, sa, run["id"])
    assert made[4]["id"] == task_run_id and made[4]["state"]["message"] == "from before"
    assert history(server, sa, task_run_id) == [(1, "Cached")]
