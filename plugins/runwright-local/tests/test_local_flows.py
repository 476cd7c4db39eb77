"""LocalResultHandler inside flows: checkpointing, precedence, and failures as Failed states."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import runwright
from runwright import Flow, SafeResult, task
from runwright.config import temporary_config
from runwright.engine.state import Failed, State, Success
from runwright.plugins import RunwrightPluginManager
from runwright_local import LocalResultHandler
from runwright_local.handler import path_from_location


def _location(state: State) -> str:
    safe = state._result.safe_value
    assert isinstance(safe, SafeResult) and safe is not runwright.NoResult, f"{state} was not checkpointed"
    return str(safe.value)


def test_a_checkpointed_task_stores_its_result_as_soon_as_it_succeeds(
    local_handler: LocalResultHandler, results_dir: Path
) -> None:
    seen_on_disk: list[bool] = []

    @task(checkpoint=True, result_handler=local_handler)
    def extract() -> dict[str, int]:
        return {"rows": 3}

    @task
    def check(rows: dict[str, int]) -> None:
        seen_on_disk.append(len(os.listdir(results_dir)) == 1)

    with Flow("etl") as flow:
        extracted = extract()
        check(extracted)
    state = flow.run()
    assert state.is_successful()
    assert seen_on_disk == [True], "the result must be on disk before the downstream task runs"
    uri = _location(state.result[extracted])
    assert path_from_location(uri).parent == results_dir
    assert runwright.read_uri(uri) == {"rows": 3}


def test_without_checkpointing_nothing_is_written(configured_dir: Path, result_files: Callable[[Path], list[Path]]) -> None:
    @task
    def produce() -> int:
        return 1

    with Flow("plain") as flow:
        produce()
    assert flow.run().is_successful()
    assert not configured_dir.exists() or result_files(configured_dir) == []


def test_config_checkpointing_stores_every_task_with_the_configured_handler(
    configured_dir: Path, result_files: Callable[[Path], list[Path]]
) -> None:
    @task
    def one() -> int:
        return 1

    @task
    def plus_one(x: int) -> int:
        return x + 1

    with Flow("chain") as flow:
        first = one()
        second = plus_one(first)
    with temporary_config({"engine.checkpointing": True}):
        state = flow.run()
    assert state.is_successful()
    uris = [_location(state.result[t]) for t in (first, second)]
    assert [runwright.read_uri(u) for u in uris] == [1, 2]
    assert sorted(path_from_location(u) for u in uris) == result_files(configured_dir)


def test_handler_precedence_is_task_then_flow_then_config(configured_dir: Path, tmp_path: Path) -> None:
    task_dir, flow_dir = tmp_path / "task-level", tmp_path / "flow-level"

    @task(result_handler=LocalResultHandler(dir=task_dir))
    def own_handler() -> str:
        return "task"

    @task
    def inherits() -> str:
        return "flow"

    with temporary_config({"engine.checkpointing": True}):
        with Flow("with-handler", result_handler=LocalResultHandler(dir=flow_dir)) as flow:
            a, b = own_handler(), inherits()
        state = flow.run()
        assert path_from_location(_location(state.result[a])).parent == task_dir
        assert path_from_location(_location(state.result[b])).parent == flow_dir

        with Flow("without-handler") as bare:
            c = inherits()
        state = bare.run()
        assert path_from_location(_location(state.result[c])).parent == configured_dir


def test_a_handler_named_by_string_resolves_through_the_registry(configured_dir: Path) -> None:
    @task(checkpoint=True, result_handler="local")
    def produce() -> str:
        return "by name"

    with Flow("by-name") as flow:
        produced = produce()
    state = flow.run()
    uri = _location(state.result[produced])
    assert path_from_location(uri).parent == configured_dir
    assert runwright.read_uri(uri) == "by name"


def test_an_unknown_handler_name_fails_the_task_listing_what_is_installed() -> None:
    @task(checkpoint=True, result_handler="s3")
    def produce() -> int:
        return 1

    with Flow("s3") as flow:
        produced = produce()
    task_state = flow.run().result[produced]
    assert isinstance(task_state, Failed)
    assert "Result handler 's3' is not installed" in task_state.message
    installed = task_state.message.split("installed:")[1].split(")")[0]
    assert "local" in installed and "json" in installed


def test_a_known_but_missing_handler_names_the_package_to_install(plugin_manager: RunwrightPluginManager) -> None:
    if plugin_manager.get_plugin("gcs") is not None:
        plugin_manager.unregister(name="gcs")  # as if runwright-gcs were not installed

    @task(checkpoint=True, result_handler="gcs")
    def produce() -> int:
        return 1

    with Flow("gcs-missing") as flow:
        produced = produce()
    task_state = flow.run().result[produced]
    assert isinstance(task_state, Failed)
    assert "'gcs' is not installed" in task_state.message
    assert "pip install runwright-gcs" in task_state.message


def test_an_unknown_configured_handler_fails_a_checkpointed_task() -> None:
    @task
    def produce() -> int:
        return 1

    with Flow("s3-config") as flow:
        produced = produce()
    with temporary_config({"engine.result_handler": "s3", "engine.checkpointing": True}):
        state = flow.run()
    assert isinstance(state.result[produced], Failed)
    message = state.result[produced].message
    assert "Result handler 's3' is not installed" in message and "local" in message


def test_an_unpicklable_result_fails_the_task_and_writes_nothing(local_handler: LocalResultHandler, results_dir: Path) -> None:
    @task(checkpoint=True, result_handler=local_handler)
    def make_lock() -> object:
        return threading.Lock()

    with Flow("unpicklable") as flow:
        made = make_lock()
    task_state = flow.run().result[made]
    assert isinstance(task_state, Failed)
    assert "not picklable" in task_state.message and "Nothing was written" in task_state.message
    assert os.listdir(results_dir) == []


def test_a_write_failure_fails_the_task_naming_the_uri(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    @task(checkpoint=True, result_handler=LocalResultHandler(dir=blocker))
    def produce() -> int:
        return 1

    with Flow("unwritable") as flow:
        produced = produce()
    task_state = flow.run().result[produced]
    assert isinstance(task_state, Failed)
    assert f"Could not write the result to {blocker.as_uri()}/" in task_state.message


def _flow_reading(upstream_location: str, handler: LocalResultHandler) -> tuple[Flow, object, object, dict[object, State]]:
    @task
    def upstream() -> int:
        raise AssertionError("must not run: its state is given")

    @task
    def downstream(x: int) -> int:
        return x + 1

    with Flow("resume") as flow:
        up = upstream()
        down = downstream(up)
    given = {up: Success(result=SafeResult(upstream_location, handler))}
    return flow, up, down, given


def test_a_stored_upstream_result_is_read_back_in_a_later_run(local_handler: LocalResultHandler) -> None:
    flow, _, down, given = _flow_reading(local_handler.write(41), local_handler)
    assert flow.run(task_states=given).result[down].result == 42


def test_a_missing_upstream_result_fails_the_reading_task_naming_the_uri(local_handler: LocalResultHandler) -> None:
    uri = local_handler.write(41)
    os.remove(path_from_location(uri))
    flow, _, down, given = _flow_reading(uri, local_handler)
    task_state = flow.run(task_states=given).result[down]
    assert isinstance(task_state, Failed)
    assert f"No result at {uri}" in task_state.message


def test_a_corrupt_upstream_result_fails_the_reading_task_naming_the_uri(local_handler: LocalResultHandler) -> None:
    uri = local_handler.write(41)
    path = path_from_location(uri)
    path.write_bytes(path.read_bytes()[:-2])
    flow, _, down, given = _flow_reading(uri, local_handler)
    task_state = flow.run(task_states=given).result[down]
    assert isinstance(task_state, Failed)
    assert f"The result file {uri} is not a valid result" in task_state.message
