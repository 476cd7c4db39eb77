"""Caching inside one process: what a user sees when flows run twice."""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from runwright import Flow, Parameter, task
from runwright.config import temporary_config
from runwright.context import context
from runwright.engine.state import Cached
from runwright_cache import Inputs, Parameters, partial_inputs_only
from runwright_cache.plugin import get_store
from runwright_cache.store import CacheStore

HOUR = datetime.timedelta(hours=1)


def build(calls: list[Any], name: str = "flow", **task_kwargs: Any) -> tuple[Flow, Any]:
    task_kwargs.setdefault("cache_for", HOUR)

    @task(**task_kwargs)
    def expensive(x: int) -> int:
        calls.append(x)
        return x * 10

    with Flow(name) as flow:
        result = expensive(Parameter("x"))
    return flow, result


def test_second_run_is_served_from_the_cache(cache_config: Any) -> None:
    calls: list[int] = []
    flow, expensive = build(calls)
    first = flow.run(x=1)
    second = flow.run(x=1)
    assert calls == [1]
    assert isinstance(second.result[expensive], Cached)
    assert second.result[expensive].result == first.result[expensive].result == 10


def test_a_flow_run_sees_a_clear_by_another_connection_made_just_before_it(cache_config: Any) -> None:
    calls: list[int] = []
    flow, expensive = build(calls)
    flow.run(x=1)
    flow.run(x=1)  # a hit: this flow run's lookups may skip the freshness check
    assert calls == [1]
    CacheStore(get_store().path).clear()  # another connection, as `runwright cache clear` in another process
    state = flow.run(x=1)
    assert calls == [1, 1] and state.result[expensive].result == 10


def test_a_hit_is_not_stored_again(cache_config: Any) -> None:
    flow, _ = build([])
    flow.run(x=1)
    flow.run(x=1)
    flow.run(x=1)
    assert len(get_store().entries()) == 1


def test_default_validator_ignores_inputs(cache_config: Any) -> None:
    calls: list[int] = []
    flow, expensive = build(calls)  # cache_validator defaults to duration_only
    flow.run(x=1)
    state = flow.run(x=2)
    assert calls == [1] and state.result[expensive].result == 10


@pytest.mark.parametrize("validator", ["all_inputs", Inputs(), "inputs", "inputs_and_task_source"])
def test_changing_an_input_invalidates_input_validators(cache_config: Any, validator: Any) -> None:
    calls: list[int] = []
    flow, expensive = build(calls, cache_validator=validator)
    flow.run(x=1)
    flow.run(x=2)
    assert flow.run(x=1).result[expensive].result == 10
    assert calls == [1, 2]


@pytest.mark.parametrize("validator", ["all_parameters", Parameters()])
def test_changing_a_parameter_invalidates_parameter_validators(cache_config: Any, validator: Any) -> None:
    calls: list[int] = []

    @task(cache_for=HOUR, cache_validator=validator)
    def constant() -> int:
        calls.append(1)
        return 5

    with Flow("params") as flow:
        constant()
    flow.add_task(Parameter("p"))
    flow.run(p="a")
    flow.run(p="a")
    flow.run(p="b")
    assert len(calls) == 2


def test_partial_inputs_only_ignores_other_inputs(cache_config: Any) -> None:
    calls: list[tuple[int, int]] = []

    @task(cache_for=HOUR, cache_validator=partial_inputs_only(validate_on=["a"]))
    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    with Flow("partial") as flow:
        add(Parameter("a"), Parameter("b"))
    flow.run(a=1, b=1)
    flow.run(a=1, b=2)
    flow.run(a=2, b=2)
    assert calls == [(1, 1), (2, 2)]


def test_an_expired_entry_is_not_used_and_is_evicted(cache_config: Any) -> None:
    calls: list[int] = []
    flow, _ = build(calls, cache_for=datetime.timedelta(seconds=0.3))
    flow.run(x=1)
    time.sleep(0.4)
    flow.run(x=1)
    assert calls == [1, 1]
    assert len(get_store().entries()) == 1  # the expired entry was replaced, not kept


def test_mapped_children_are_cached_one_by_one(cache_config: Any) -> None:
    calls: list[int] = []

    @task(cache_for=HOUR, cache_validator="all_inputs")
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    with Flow("mapped") as flow:
        squares = square.map(Parameter("xs"))
    flow.run(xs=[1, 2, 3])
    state = flow.run(xs=[1, 2, 4])
    assert calls == [1, 2, 3, 4]
    assert state.result[squares].result == [1, 4, 16]
    assert {e.identity.map_index for e in get_store().entries()} == {0, 1, 2}


def test_two_flows_never_share_a_cache(cache_config: Any) -> None:
    calls: list[int] = []
    first, _ = build(calls, name="first")
    second, _ = build(calls, name="second")
    first.run(x=1)
    second.run(x=1)
    assert calls == [1, 1]


def _result_files(config: dict[str, Any]) -> list[Path]:
    return [p for p in Path(config["plugins.local.dir"]).rglob("*") if p.is_file()]


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_missing_or_corrupt_result_is_a_miss_with_a_warning(
    cache_config: Any, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    calls: list[int] = []

    @task(cache_for=HOUR)
    def expensive() -> str:
        calls.append(1)
        return "value"

    with Flow("damaged") as flow:
        expensive()
    flow.run()
    for path in _result_files(cache_config):
        if damage == "delete":
            path.unlink()
        else:
            path.write_bytes(b"garbage" * 10)
    with caplog.at_level(logging.WARNING, logger="runwright"):
        state = flow.run()
    assert state.is_successful() and len(calls) == 2
    assert "cached result could not be read" in caplog.text
    assert flow.run().is_successful() and len(calls) == 2  # the re-run stored a fresh entry


def test_a_corrupt_database_is_a_warning_and_a_miss(
    cache_config: Any, cache_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_db.parent.mkdir(parents=True, exist_ok=True)
    cache_db.write_bytes(b"this is not an sqlite database" * 100)
    calls: list[int] = []
    flow, _ = build(calls)
    with caplog.at_level(logging.WARNING, logger="runwright"):
        assert flow.run(x=1).is_successful()
        assert flow.run(x=1).is_successful()
    assert calls == [1, 1]
    assert "runwright cache clear" in caplog.text
    get_store().recreate()
    flow.run(x=1)
    flow.run(x=1)
    assert calls == [1, 1, 1]


def test_cloud_runs_are_left_to_the_cloud_plugin(cache_config: Any) -> None:
    calls: list[int] = []
    flow, _ = build(calls)
    # no server answers and none may be auto-started: the run fails to report, and the cache
    # plugin still stays out of it
    with temporary_config({"cloud.auto_start": False, "cloud.api": "http://127.0.0.1:9"}), context(backend="cloud"):
        flow.run(x=1, context={"backend": "cloud"})
    assert get_store().entries() == []


def test_an_unstorable_result_is_not_cached_and_does_not_fail(cache_config: Any, caplog: pytest.LogCaptureFixture) -> None:
    import threading

    calls: list[int] = []

    @task(cache_for=HOUR)
    def unpicklable() -> Any:
        calls.append(1)
        return threading.Lock()

    with Flow("unpicklable") as flow:
        unpicklable()
    with caplog.at_level(logging.WARNING, logger="runwright"):
        assert flow.run().is_successful()
        assert flow.run().is_successful()
    assert len(calls) == 2
    assert "not cached" in caplog.text


def test_the_cache_watches_only_the_runs_of_tasks_with_cache_for(cache_config: Any, plugin_manager: Any) -> None:
    """runwright-cache scopes its state-change hook (for_tasks): a call monitor sees every
    transition of every task, with the cache among the implementations only for the task
    that has cache_for; that task is still cached."""
    seen: list[tuple[str, str, bool]] = []

    def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
        if hook_name == "runwright_task_state_change":
            plugins = {impl.plugin_name for impl in hook_impls}
            seen.append((kwargs["task"].name, type(kwargs["new_state"]).__name__, "cache" in plugins))

    undo = plugin_manager.add_hookcall_monitoring(before, lambda *args: None)
    try:

        @task
        def plain() -> int:
            return 2

        @task(cache_for=HOUR)
        def cached(x: int) -> int:
            return x * 10

        with Flow("scoped cache") as flow:
            last = cached(plain())
        state = flow.run()
    finally:
        undo()
    assert state.is_successful()
    assert isinstance(state.result[last], Cached)
    assert seen == [
        ("plain", "Running", False),
        ("plain", "Success", False),
        ("cached", "Running", True),
        ("cached", "Success", True),
        ("cached", "Cached", True),
    ]
