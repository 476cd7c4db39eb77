"""Optimistic locking: 409s, races between writers, race-safe get-or-create, batch writes."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from runwright_server.testing import TestServer

THREADS = 4


def test_conflict_answers_current_version_and_state(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    url = f"{server.api}/flow_runs/{run['id']}/state"
    assert sa.post(url, json={"version": 0, "state": {"type": "Running", "message": "mine"}}).json()["version"] == 1
    r = sa.post(url, json={"version": 0, "state": {"type": "Running"}})
    assert r.status_code == 409
    assert r.json()["current_version"] == 1
    assert r.json()["current_state"] == {"type": "Running", "message": "mine"}
    assert "detail" in r.json()
    assert sa.post(url, json={"version": 5, "state": {"type": "Success"}}).status_code == 409
    assert sa.get(f"{server.api}/flow_runs/{run['id']}").json()["version"] == 1


def test_exactly_one_runner_claims_running(server: TestServer) -> None:
    for _ in range(5):
        with server.session() as s:
            run = server.make_run(s)
        task_run = run["task_runs"][0]["id"]
        barrier = threading.Barrier(THREADS)

        def claim(i: int, task_run: str = task_run, barrier: threading.Barrier = barrier) -> int:
            with server.session() as s:
                barrier.wait()
                return s.post(
                    f"{server.api}/task_runs/{task_run}/state", json={"version": 0, "state": {"type": "Running", "by": i}}
                ).status_code

        with ThreadPoolExecutor(THREADS) as pool:
            statuses = Counter(pool.map(claim, range(THREADS)))
        assert statuses == {200: 1, 409: THREADS - 1}


def test_racing_writers_win_each_version_exactly_once(server: TestServer, sa: requests.Session) -> None:
    n = 60
    run = server.make_run(sa)
    task_run = run["task_runs"][0]["id"]
    barrier = threading.Barrier(THREADS)

    def writer(i: int) -> list[int]:
        won = []
        with server.session() as s:
            barrier.wait()
            for version in range(n):
                r = s.post(
                    f"{server.api}/task_runs/{task_run}/state",
                    json={"version": version, "state": {"type": "Running", "writer": i, "v": version}},
                )
                assert r.status_code in (200, 409), r.text
                if r.status_code == 200:
                    assert r.json()["version"] == version + 1
                    won.append(version)
        return won

    with ThreadPoolExecutor(THREADS) as pool:
        wins = list(pool.map(writer, range(THREADS)))
    every = sorted(v for w in wins for v in w)
    assert every == list(range(n))  # each version won once: no lost or duplicate updates
    history = sa.get(f"{server.api}/task_runs/{task_run}/states").json()
    assert [h["version"] for h in history] == list(range(n + 1))
    owner = {v: i for i, w in enumerate(wins) for v in w}
    assert all(h["state"]["writer"] == owner[h["version"] - 1] for h in history[1:])


def test_get_or_create_race(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    barrier = threading.Barrier(THREADS)

    def get_or_create(_: int) -> tuple[int, str]:
        with server.session() as s:
            barrier.wait()
            r = s.post(f"{server.api}/task_runs", json={"flow_run_id": run["id"], "task_slug": "b", "map_index": 7})
            return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(get_or_create, range(THREADS)))
    assert len({task_id for _, task_id in results}) == 1
    assert sorted(status for status, _ in results) == [200] * (THREADS - 1) + [201]


def test_batch_writes(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    a, b = (t["id"] for t in run["task_runs"])
    r = sa.post(
        f"{server.api}/task_run_states",
        json={
            "writes": [
                {"task_run_id": a, "version": 0, "state": {"type": "Running"}},
                {"task_run_id": a, "version": 1, "state": {"type": "Success"}},
                {"task_run_id": b, "version": 3, "state": {"type": "Running"}},
                {"task_run_id": "0" * 8, "version": 0, "state": {"type": "Running"}},
            ]
        },
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["ok", "ok", "conflict", "not_found"]
    assert [x["version"] for x in results[:3]] == [1, 2, 0]
    assert results[2]["current_state"]["type"] == "Pending"
    assert [h["state"]["type"] for h in sa.get(f"{server.api}/task_runs/{a}/states").json()] == [
        "Pending",
        "Running",
        "Success",
    ]


def test_a_batch_of_interleaved_chains_applies_every_write_with_its_history(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa, ("a", "b", "c"))
    a, b, c = (t["id"] for t in run["task_runs"])
    writes = [
        {"task_run_id": a, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": b, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": a, "version": 1, "state": {"type": "Success", "n": 1}},
        {"task_run_id": b, "version": 1, "state": {"type": "Retrying"}},
        {"task_run_id": b, "version": 2, "state": {"type": "Running"}},
        {"task_run_id": c, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": b, "version": 3, "state": {"type": "Failed"}},
    ]
    r = sa.post(f"{server.api}/task_run_states", json={"writes": writes})
    assert r.status_code == 200
    assert [(x["status"], x["version"]) for x in r.json()["results"]] == [
        ("ok", 1), ("ok", 1), ("ok", 2), ("ok", 2), ("ok", 3), ("ok", 1), ("ok", 4)
    ]
    for run_id, types, last in ((a, ["Pending", "Running", "Success"], {"type": "Success", "n": 1}),
                                (b, ["Pending", "Running", "Retrying", "Running", "Failed"], {"type": "Failed"}),
                                (c, ["Pending", "Running"], {"type": "Running"})):
        history = sa.get(f"{server.api}/task_runs/{run_id}/states").json()
        assert [h["state"]["type"] for h in history] == types
        assert [h["version"] for h in history] == list(range(len(types)))
        current = sa.get(f"{server.api}/task_runs/{run_id}").json()
        assert (current["version"], current["state"]) == (len(types) - 1, last)


def test_a_batch_skipping_a_version_applies_only_what_matches(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa)
    a, b = (t["id"] for t in run["task_runs"])
    writes = [
        {"task_run_id": a, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": b, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": a, "version": 2, "state": {"type": "Success"}},
    ]
    r = sa.post(f"{server.api}/task_run_states", json={"writes": writes})
    assert [x["status"] for x in r.json()["results"]] == ["ok", "ok", "conflict"]
    assert [h["state"]["type"] for h in sa.get(f"{server.api}/task_runs/{a}/states").json()] == ["Pending", "Running"]
    assert sa.get(f"{server.api}/task_runs/{b}").json()["version"] == 1


def test_a_batch_answers_each_write_in_the_declared_shape_and_keys_only_its_cached_states(
    server: TestServer, sa: requests.Session
) -> None:
    """Several writes of one run in a batch (one row update): every write answered with its
    version, every history row kept; a Cached state's key is stored from a batch that mixes
    it with other states, and a batch without a Cached state stores none."""
    name = f"keys-{uuid.uuid4().hex[:8]}"
    run = server.make_run(sa, ("a", "b"), name=name)
    a, b = (t["id"] for t in run["task_runs"])
    plain = [
        {"task_run_id": a, "version": 0, "state": {"type": "Running", "message": "é"}},
        {"task_run_id": a, "version": 1, "state": {"type": "Success", "cache_key": "not-cached"}},
    ]
    r = sa.post(f"{server.api}/task_run_states", json={"writes": plain})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "results": [
            {"task_run_id": a, "status": "ok", "version": 1, "current_state": None},
            {"task_run_id": a, "status": "ok", "version": 2, "current_state": None},
        ]
    }
    mixed = [
        {"task_run_id": b, "version": 0, "state": {"type": "Running"}},
        {"task_run_id": b, "version": 1, "state": {"type": "Cached", "cache_key": "k-b"}},
        {"task_run_id": a, "version": 2, "state": {"type": "Pending"}},
        {"task_run_id": a, "version": 3, "state": {"type": "Cached", "cache_key": "k-a"}},
    ]
    r = sa.post(f"{server.api}/task_run_states", json={"writes": mixed})
    assert [(x["status"], x["version"]) for x in r.json()["results"]] == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    assert [h["state"]["type"] for h in sa.get(f"{server.api}/task_runs/{a}/states").json()] == [
        "Pending", "Running", "Success", "Pending", "Cached"
    ]
    assert sa.get(f"{server.api}/task_runs/{a}").json()["state"] == {"type": "Cached", "cache_key": "k-a"}
    rows = sa.get(server.api + "/cached_states", params={"flow_name": name}).json()
    assert sorted((row["task_slug"], row["cache_key"]) for row in rows) == [("a", "k-a"), ("b", "k-b")]


def test_a_batch_of_new_children_answers_in_the_declared_shape(server: TestServer, sa: requests.Session) -> None:
    run = server.make_run(sa, ("a",))
    body = {"flow_run_id": run["id"], "task_slug": "a", "map_indexes": [2, 0, 2]}
    created = sa.post(f"{server.api}/task_runs/batch", json=body)
    assert created.status_code == 200 and created.headers["content-type"] == "application/json"
    children = created.json()["task_runs"]
    assert [c["map_index"] for c in children] == [2, 0, 2] and children[0]["id"] == children[2]["id"]
    for child in children:
        assert set(child) == {"id", "flow_run_id", "task_slug", "map_index", "state", "version", "heartbeat", "created", "updated"}
        assert child["state"] == {"type": "Pending", "message": None} and child["version"] == 0
        assert child["created"].endswith("Z") and child["heartbeat"] is None
    again = sa.post(f"{server.api}/task_runs/batch", json=body).json()["task_runs"]
    assert again == children  # read back from the database: the same answer


def test_a_batch_of_children_returns_exactly_the_indexes_asked(server: TestServer, sa: requests.Session) -> None:
    """Existing children are found by a range probe (consecutive pages) or by lists (sparse
    indexes): either way only the indexes asked for come back, each once per time asked."""
    run = server.make_run(sa, ("a",))
    url = f"{server.api}/task_runs/batch"
    first = sa.post(url, json={"flow_run_id": run["id"], "task_slug": "a", "map_indexes": list(range(6))}).json()
    ids = {c["map_index"]: c["id"] for c in first["task_runs"]}
    for asked in ([4, 0, 2], [5, 1_000_000, 3], [1_000_000, 7, 1]):
        got = sa.post(url, json={"flow_run_id": run["id"], "task_slug": "a", "map_indexes": asked}).json()["task_runs"]
        assert [c["map_index"] for c in got] == asked
        ids.update((c["map_index"], c["id"]) for c in got if c["map_index"] not in ids)
        assert all(c["id"] == ids[c["map_index"]] for c in got)
    every = sa.get(f"{server.api}/flow_runs/{run['id']}/task_runs").json()
    assert sorted(t["map_index"] for t in every) == [-1, 0, 1, 2, 3, 4, 5, 7, 1_000_000]
