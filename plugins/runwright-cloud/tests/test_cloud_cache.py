"""Cache checks of cloud runs against a real server: one request answers every cache check
of a flow run, keys are compared without reading inputs back, small results come inline,
and a bad candidate is a miss, never a failure."""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from runwright import Flow, task
from runwright.config import temporary_config
from runwright_cloud import CloudFlowRunner
from runwright_cloud.client import Client
from runwright_server.testing import TestServer, unique


@pytest.fixture
def cloud(server: TestServer) -> Iterator[Client]:
    """Config pointing at the test server; yields a client of tenant "a"."""
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        yield Client(server.url, server.token_a)


@pytest.fixture
def requests_made(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """Every request the clients of this process send, counted by (method, path)."""
    counts: Counter[tuple[str, str]] = Counter()
    original = Client._request

    def counting(self: Client, method: str, path: str, **kwargs: Any) -> Any:
        counts[(method, path.split("?")[0])] += 1
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Client, "_request", counting)
    return counts


def cached_chain(name: str, length: int, calls: list[int], cache_for: datetime.timedelta) -> tuple[Flow, Any]:
    @task(cache_for=cache_for, cache_validator="all_inputs")
    def step(x: int) -> int:
        calls.append(x)
        return x + 1

    with Flow(name) as flow:
        x: Any = 0
        for _ in range(length):
            x = step(x)
    return flow, x


def run(flow: Flow, **context: Any) -> Any:
    state = flow.run(runner_cls=CloudFlowRunner, context=context)
    assert state.is_successful(), state
    return state


def task_states(cloud: Client, flow_run_id: str) -> list[str]:
    return sorted({f"{run.task_slug}:{type(run.state).__name__}" for run in cloud.get_flow_run_task_runs(flow_run_id)})


def test_a_cached_rerun_makes_one_request_for_all_its_cache_checks(
    cloud: Client, requests_made: Counter[tuple[str, str]]
) -> None:
    calls: list[int] = []
    flow, last = cached_chain(unique(), 30, calls, datetime.timedelta(minutes=5))
    run(flow)
    assert len(calls) == 30
    requests_made.clear()
    state = run(flow)
    assert state.result[last].result == 30
    assert len(calls) == 30  # no task body ran again
    assert requests_made[("GET", "/cached_states")] == 1
    assert requests_made[("GET", "/results")] == 0  # keys compared, results inline: no download


def test_every_task_of_a_rerun_is_cached_on_the_server(cloud: Client) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 5, calls, datetime.timedelta(minutes=5))
    run(flow)
    flow_id = cloud.register_flow(name, flow.structure()["tasks"], flow.structure()["edges"])
    second = cloud.create_flow_run(flow_id)
    state = run(flow, flow_run_id=second)
    assert state.result[last].result == 5 and len(calls) == 5
    # every task is Cached (the literal 0 of the first step is no task of its own)
    assert task_states(cloud, second) == [f"step-{i}:Cached" for i in range(1, 6)]


def test_a_candidate_for_other_inputs_is_a_miss(cloud: Client) -> None:
    calls: list[int] = []

    @task(cache_for=datetime.timedelta(minutes=5), cache_validator="all_inputs")
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    name = unique()
    for value in (1, 2, 1):
        with Flow(name) as flow:
            doubled = double(value)
        assert run(flow).result[doubled].result == 2 * value
    assert calls == [1, 2]  # the third run found the first run's entry, keyed on x = 1


def test_an_expired_candidate_is_a_miss(cloud: Client) -> None:
    calls: list[int] = []
    flow, last = cached_chain(unique(), 2, calls, datetime.timedelta(seconds=1))
    run(flow)
    time.sleep(1.5)
    assert run(flow).result[last].result == 2
    assert len(calls) == 4


def test_a_corrupt_inline_result_is_a_miss_not_a_failure(cloud: Client, server: TestServer) -> None:
    calls: list[int] = []
    flow, last = cached_chain(unique(), 3, calls, datetime.timedelta(minutes=5))
    run(flow)
    engine = sa.create_engine(server.db_url)
    with engine.begin() as conn:  # damage every stored result (a disk fault, a bad restore)
        conn.execute(sa.text("UPDATE results SET data = :junk"), {"junk": b"not a framed result"})
    engine.dispose()
    state = run(flow)  # the cached results do not unpickle: the tasks run again
    assert state.result[last].result == 3
    assert len(calls) == 6


def test_tenants_never_see_each_others_cached_states(cloud: Client, server: TestServer) -> None:
    calls: list[int] = []
    name = unique()
    flow, last = cached_chain(name, 3, calls, datetime.timedelta(minutes=5))
    run(flow)
    other = Client(server.url, server.token_b)
    assert other.get_cached_candidates(name) == []
    assert len(cloud.get_cached_candidates(name)) == 3
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_b, "cloud.auto_start": False}):
        assert run(flow).result[last].result == 3
    assert len(calls) == 6  # tenant b found none of tenant a's cached states


def test_repeated_reruns_send_one_candidate_per_task_and_key(cloud: Client) -> None:
    calls: list[int] = []
    name = unique()
    flow, _ = cached_chain(name, 4, calls, datetime.timedelta(minutes=5))
    for _ in range(3):
        run(flow)
    rows = cloud.get_cached_candidates(name)
    assert sorted(row["task_slug"] for row in rows) == [f"step-{i}" for i in range(1, 5)]
    assert all(isinstance(row["cache_key"], str) and isinstance(row.get("result"), str) for row in rows)


def test_a_rerun_fetches_no_candidate_older_than_its_longest_cache_for(
    cloud: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    @task(cache_for=datetime.timedelta(seconds=0.5), cache_validator="all_inputs")
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    answered: list[int] = []
    original = Client.get_cached_candidates

    def counting(self: Client, flow_name: str, **kwargs: Any) -> list[dict[str, Any]]:
        rows = original(self, flow_name, **kwargs)
        answered.append(len(rows))
        return rows

    monkeypatch.setattr(Client, "get_cached_candidates", counting)
    name = unique()
    for value in (1, 2, 2):
        with Flow(name) as flow:
            doubled = double(value)
        assert run(flow).result[doubled].result == 2 * value
    assert calls == [1, 2] and answered == [0, 1, 2]  # the third run found the second's entry
    time.sleep(0.6)  # every stored candidate is now older than the flow's cache_for
    assert run(flow).result[doubled].result == 4
    assert calls == [1, 2, 2]
    assert answered[-1] == 0  # the expired history was not sent at all


def test_the_server_keeps_the_key_of_every_cached_state_it_stores(cloud: Client, server: TestServer) -> None:
    calls: list[int] = []
    name = unique()
    flow, _ = cached_chain(name, 3, calls, datetime.timedelta(minutes=5))
    for _ in range(2):  # computed and cached, then three hits
        run(flow)
    engine = sa.create_engine(server.db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.state, s.cache_key FROM task_run_states s JOIN task_runs t ON t.id = s.task_run_id"
                " JOIN flow_runs r ON r.id = t.flow_run_id JOIN flows f ON f.id = r.flow_id"
                " WHERE s.state_type = 'Cached' AND f.name = :name"
            ),
            {"name": name},
        ).all()
    engine.dispose()
    assert len(rows) == 6
    assert all(key is not None and key == json.loads(state)["cache_key"] for state, key in rows)
