"""The cloud runners against a real server: what is written, in which order, and how
failures of the backend end runs (the seed's documented behaviours)."""

from __future__ import annotations

import datetime
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runwright import Flow, task
from runwright.config import temporary_config
from runwright.engine.flow_runner import FlowRunner
from runwright.engine.result import SafeResult
from runwright.engine.state import ClientFailed, Failed, Running, Success
from runwright.testing.recorder import HookRecorder
from runwright_cloud import CloudFlowRunner, CloudResultHandler
from runwright_cloud.client import Client
from runwright_cloud.plugin import plugin as cloud_plugin
from runwright_cloud.switching import REPORTING_SWITCH_INTERVAL
from runwright_server.testing import ServerProcess, TestServer, unique

heartbeat = cloud_plugin.backend.services.heartbeat  # this process's heartbeat


def create_run(client: Client, flow: Any, parameters: dict[str, Any] | None = None) -> str:
    structure = flow.structure()
    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
    return client.create_flow_run(flow_id, parameters=parameters or {})


def histories(client: Client, flow_run_id: str) -> dict[str, list[str]]:
    """``{"slug" or "slug[i]": [state types, oldest first, after the run's creation]}`` (the
    Pending a run is created with, version 0; a fresh map's child has none)."""
    out = {}
    for task_run in client.get_flow_run_task_runs(flow_run_id):
        key = task_run.task_slug if task_run.map_index == -1 else f"{task_run.task_slug}[{task_run.map_index}]"
        out[key] = [row["state"]["type"] for row in client.get_task_run_states(task_run.id) if row["version"] > 0]
    return out


def flow_history(client: Client, flow_run_id: str) -> list[str]:
    return [row["state"]["type"] for row in client.get_flow_run_states(flow_run_id)]


@pytest.fixture
def cloud(server: TestServer) -> Iterator[Client]:
    """Config pointing at the test server; yields a client of tenant "a"."""
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        yield Client(server.url, server.token_a)


def chain(name: str, calls: list[str] | None = None) -> tuple[Flow, Any]:
    @task
    def first() -> int:
        if calls is not None:
            calls.append("first")
        return 1

    @task
    def second(x: int) -> int:
        if calls is not None:
            calls.append("second")
        return x + 1

    with Flow(name) as flow:
        last = second(first())
    return flow, last


def test_a_plain_flow_writes_running_then_success_for_each_task_and_the_flow(cloud: Client) -> None:
    flow, last = chain(unique())
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful() and state.result[last].result == 2
    assert histories(cloud, run_id) == {"first-1": ["Running", "Success"], "second-1": ["Running", "Success"]}
    assert flow_history(cloud, run_id) == ["Scheduled", "Running", "Success"]
    assert not heartbeat.beating()


def test_results_are_checkpointed_to_the_server_by_default(cloud: Client) -> None:
    flow, _ = chain(unique())
    run_id = create_run(cloud, flow)
    flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    task_run = next(t for t in cloud.get_flow_run_task_runs(run_id) if t.task_slug == "second-1")
    result = task_run.state._result
    assert isinstance(result, SafeResult) and result.value.startswith("rwcloud://")
    assert CloudResultHandler().read(result.value) == 2


def test_the_plain_flow_runner_with_the_cloud_backend_reports_identically(cloud: Client) -> None:
    flow, _ = chain(unique())
    run_id = create_run(cloud, flow)
    with temporary_config({"engine.backend": "cloud"}):
        state = FlowRunner(flow).run(context={"flow_run_id": run_id})
    assert state.is_successful()
    assert histories(cloud, run_id) == {"first-1": ["Running", "Success"], "second-1": ["Running", "Success"]}


def test_without_a_flow_run_id_the_flow_is_registered_and_a_run_created(cloud: Client) -> None:
    flow, _ = chain(unique())
    state = flow.run(runner_cls=CloudFlowRunner)
    assert state.is_successful()
    structure = flow.structure()
    flow_id = cloud.register_flow(structure["name"], structure["tasks"], structure["edges"])
    [run] = cloud.list_flow_runs(flow_id=flow_id)
    assert run["state"]["type"] == "Success"


def test_local_runs_do_not_touch_the_backend(server: TestServer, hook_recorder: HookRecorder) -> None:
    flow, _ = chain(unique())
    with temporary_config({"cloud.api": "http://127.0.0.1:9", "cloud.auto_start": False}):
        state = flow.run()
    assert state.is_successful()
    assert "cloud_task_run" not in str(hook_recorder.names())


def test_a_failing_task_writes_running_then_failed_and_the_flow_fails(cloud: Client) -> None:
    @task
    def boom() -> None:
        raise ValueError("boom")

    with Flow(unique()) as flow:
        boom()
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_failed()
    assert histories(cloud, run_id) == {"boom-1": ["Running", "Failed"]}
    assert flow_history(cloud, run_id)[-1] == "Failed"


def test_retries_write_running_failed_retrying_then_again(cloud: Client) -> None:
    attempts: list[int] = []

    @task(max_retries=2, retry_delay=datetime.timedelta(0))
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return 7

    with Flow(unique()) as flow:
        flaky()
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_successful()
    expected = ["Running", "Failed", "Retrying"] * 2 + ["Running", "Success"]
    assert histories(cloud, run_id) == {"flaky-1": expected}
    [task_run] = cloud.get_flow_run_task_runs(run_id)
    assert task_run.version == len(expected)


def test_a_second_flow_run_hits_the_cache_on_the_server(cloud: Client) -> None:
    calls: list[int] = []

    @task(cache_for=datetime.timedelta(minutes=5))
    def expensive() -> int:
        calls.append(1)
        return 42

    @task
    def use(x: int) -> int:
        return x + 1

    name = unique()
    with Flow(name) as flow:
        used = use(expensive())
    first = create_run(cloud, flow)
    assert flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": first}).is_successful()
    assert histories(cloud, first)["expensive-1"] == ["Running", "Success", "Cached"]

    # a new process would have no in-memory cache: the hit must come from the server
    second = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": second})
    assert state.result[used].result == 43
    assert calls == [1]
    assert histories(cloud, second)["expensive-1"] == ["Cached"]


def test_mapped_tasks_record_the_parent_as_mapped_before_any_child(cloud: Client) -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow(unique()) as flow:
        result = total(double.map(numbers()))
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.result[result].result == 12
    found = histories(cloud, run_id)
    assert found["double-1"] == ["Mapped"]
    assert [found[f"double-1[{i}]"] for i in range(3)] == [["Running", "Success"]] * 3
    assert len(cloud.get_flow_run_task_runs(run_id)) == 3 + 3  # numbers, double (+3 children), total
    runs = {(t.task_slug, t.map_index): t.id for t in cloud.get_flow_run_task_runs(run_id)}
    parent_written = cloud.get_task_run_states(runs[("double-1", -1)])[1]["timestamp"]
    first_child = min(cloud.get_task_run_states(runs[("double-1", i)])[1]["timestamp"] for i in range(3))
    assert parent_written <= first_child


def test_a_failing_flow_state_handler_records_failed(cloud: Client) -> None:
    def handler(flow: Any, old: Any, new: Any) -> None:
        if isinstance(new, Running):
            raise ZeroDivisionError("handler")

    flow, _ = chain(unique())
    flow.state_handlers = [handler]
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert isinstance(state, Failed) and "state handlers" in (state.message or "")
    assert flow_history(cloud, run_id) == ["Scheduled", "Failed"]
    assert histories(cloud, run_id) == {"first-1": [], "second-1": []}


def test_a_failing_task_state_handler_records_the_failed_task(cloud: Client) -> None:
    def handler(task: Any, old: Any, new: Any) -> None:
        if isinstance(new, Success):
            raise ZeroDivisionError("handler")

    @task(state_handlers=[handler])
    def one() -> int:
        return 1

    with Flow(unique()) as flow:
        one()
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert state.is_failed()
    assert histories(cloud, run_id) == {"one-1": ["Running", "Failed"]}


def test_a_version_conflict_on_the_flow_run_ends_the_run_with_the_state_it_tried(cloud: Client) -> None:
    @task
    def bump() -> None:
        from runwright.context import context

        info = cloud.get_flow_run_info(context.flow_run_id)
        cloud.set_flow_run_state(info.id, info.version, {"type": "Running", "message": "another writer"})

    with Flow(unique()) as flow:
        bump()
    run_id = create_run(cloud, flow)
    with temporary_config({"cloud.task_claims": "sync"}):
        state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert isinstance(state, Success)  # the state it could not write
    assert flow_history(cloud, run_id) == ["Scheduled", "Running", "Running"]


def test_another_writer_of_the_flow_run_state_takes_the_lease_and_this_runner_stops(cloud: Client) -> None:
    """With leases (the default), a flow-run write by another writer replaces this runner's
    lease: its queued task states are refused, its final state is not written."""

    @task
    def bump() -> None:
        from runwright.context import context

        info = cloud.get_flow_run_info(context.flow_run_id)
        cloud.set_flow_run_state(info.id, info.version, {"type": "Running", "message": "another writer"})

    with Flow(unique()) as flow:
        bump()
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert isinstance(state, ClientFailed) and "took flow run" in str(state.message)
    assert flow_history(cloud, run_id) == ["Scheduled", "Running", "Running"]
    assert "Success" not in histories(cloud, run_id)["bump-1"]  # refused (its claim may have landed before)
    assert not heartbeat.beating()


@pytest.mark.parametrize("claims", ["sync", "lease"])
def test_a_version_conflict_on_a_task_claim_ends_the_task_as_client_failed(cloud: Client, claims: str) -> None:
    calls: list[str] = []
    flow, last = chain(unique(), calls)

    @task
    def intruder() -> None:
        from runwright.context import context

        second = next(t for t in cloud.get_flow_run_task_runs(context.flow_run_id) if t.task_slug == "second-1")
        cloud.set_task_run_state(second.id, second.version, {"type": "Pending", "message": "another writer"})

    first = next(t for t in flow.tasks if t.slug == "first-1")
    flow.add_task(intruder)
    flow.set_dependencies(last, upstream_tasks=[intruder])
    flow.set_dependencies(intruder, upstream_tasks=[first])
    run_id = create_run(cloud, flow)
    with temporary_config({"cloud.task_claims": claims}):
        state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert not state.is_finished()
    if claims == "sync":
        assert isinstance(state.result[last], ClientFailed)
        assert isinstance(state.result[last].state, Running)
        assert calls == ["first"]  # the task body never ran
    else:
        # the claim was queued: the body ran, but neither its claim nor its Success is
        # recorded, and the flow run is left Running (resuming it runs the task again)
        assert calls == ["first", "second"]
        assert isinstance(state, ClientFailed)
        assert histories(cloud, run_id)["second-1"] == ["Pending"]  # only the intruder's write
        assert flow_history(cloud, run_id) == ["Scheduled", "Running"]
        assert not cloud.get_flow_run_info(run_id).leased  # released: a resume can start at once


@pytest.mark.parametrize("claims", ["sync", "lease"])
def test_a_backend_that_goes_away_mid_run_stops_the_run(tmp_path: Path, claims: str) -> None:
    from runwright_server import migrate
    from runwright_server.auth import create_token
    from runwright_server.db import make_engine

    db = f"sqlite:///{tmp_path / 'gone.db'}"
    engine = make_engine(db)
    migrate.upgrade(engine)
    token = create_token(engine, "t")
    engine.dispose()
    proc = ServerProcess(db).start()
    try:
        client = Client(proc.url, token, retries=1, backoff=0.05)
        calls: list[str] = []

        @task
        def first() -> int:
            calls.append("first")
            proc.kill()
            return 1

        @task
        def second(x: int) -> int:
            calls.append("second")
            return x

        with Flow(unique()) as flow:
            second(first())
        run_id = create_run(client, flow)
        settings = {
            "cloud.api": proc.url,
            "cloud.api_token": token,
            "cloud.auto_start": False,
            "cloud.task_claims": claims,
            "cloud.outage_tolerance": 0.3,  # the server never comes back: give up soon
        }
        with temporary_config(settings):
            started = time.monotonic()
            state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
        assert not state.is_successful()
        assert time.monotonic() - started < 10
        if claims == "sync":
            assert calls == ["first"]
            assert isinstance([s for t, s in state.result.items() if t.name == "second"][0], ClientFailed)
        else:  # queued claims: the body ran; nothing after the server went away is recorded
            assert calls == ["first", "second"] and isinstance(state, ClientFailed)
        assert not heartbeat.beating()
    finally:
        proc.stop()


def test_the_thread_executor_reports_every_task_from_its_own_thread(cloud: Client) -> None:
    threads: set[str] = set()

    @task
    def numbers() -> list[int]:
        return list(range(8))

    @task
    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow(unique()) as flow:
        result = total(square.map(numbers()))
    run_id = create_run(cloud, flow)
    state = flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id}, executor="threads")
    assert state.result[result].result == sum(x * x for x in range(8))
    found = histories(cloud, run_id)
    assert all(found[f"square-1[{i}]"] == ["Running", "Success"] for i in range(8))
    assert found["total-1"] == ["Running", "Success"]
    assert threads and all(name.startswith("runwright") for name in threads)


def test_heartbeats_are_sent_while_a_task_runs(server: TestServer) -> None:
    with temporary_config(
        {"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False, "cloud.heartbeat_interval": 0.05}
    ):
        client = Client(server.url, server.token_a)
        seen: list[Any] = []

        @task
        def slow() -> None:
            import time

            from runwright.context import context

            time.sleep(0.1)  # the claim (which sets the first heartbeat) is queued with leases
            first = client.get_flow_run_task_runs(context.flow_run_id)[0].heartbeat
            time.sleep(0.4)
            seen.extend([first, client.get_flow_run_task_runs(context.flow_run_id)[0].heartbeat])

        with Flow(unique()) as flow:
            slow()
        run_id = create_run(client, flow)
        flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id})
    assert seen[1] > seen[0]
    assert not heartbeat.beating()


@pytest.mark.parametrize(("backend", "loaded"), [("local", False), ("cloud", True)])
def test_the_http_client_loads_with_the_plugin_only_in_a_process_configured_for_cloud_runs(
    backend: str, loaded: bool, tmp_path: Path
) -> None:
    """Configured for cloud runs, the first run does not pay for importing requests; a local
    process (a local run included) never imports it."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from runwright.plugins import get_plugin_manager\n"
        "get_plugin_manager().registry\n"
        "print('requests' in sys.modules, 'runwright_cloud.reporting' in sys.modules)\n"
    )
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    env.update(RUNWRIGHT__ENGINE__BACKEND=backend, RUNWRIGHT_CONFIG=str(config), HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(loaded), str(loaded)]


def test_a_reporting_flow_run_lowers_the_switch_interval_and_puts_it_back(cloud: Client) -> None:
    seen: list[float] = []

    @task
    def look() -> None:
        seen.append(sys.getswitchinterval())

    before = sys.getswitchinterval()
    with Flow(unique()) as flow:
        look()
    run_id = create_run(cloud, flow)
    assert flow.run(runner_cls=CloudFlowRunner, context={"flow_run_id": run_id}).is_successful()
    # the writer's threads take the GIL back sooner while the run reports (switching.py)
    assert seen == [min(before, REPORTING_SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == before
