"""Contract tests every result handler (:class:`ResultHandlerContract`) and every executor
(:class:`ExecutorContract`) must pass.

    from runwright.testing import ResultHandlerContract

    class TestMyHandler(ResultHandlerContract):
        @pytest.fixture
        def handler(self, tmp_path):
            return MyHandler(root=tmp_path)

        @pytest.fixture
        def corrupt(self):           # optional: damage what is stored at a location
            def corrupt(handler, location): ...
            return corrupt

    from runwright.testing import ExecutorContract

    class TestMyExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self):          # a new, not yet started executor
            return MyExecutor()
"""

from __future__ import annotations

import datetime
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from runwright.engine.result_handlers import ResultHandler, ResultHandlerError

if TYPE_CHECKING:
    from runwright.engine.executors import Executor

SAMPLE_VALUES: list[Any] = [
    0,
    None,
    "text with ünïcode",
    {"nested": [1, 2.5, {"k": (1, 2)}]},
    b"\x00\x01 binary",
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    list(range(10_000)),
]


class ResultHandlerContract:
    """Subclass and provide a ``handler`` fixture (override ``sample_values`` for a handler
    that stores only some types, as JSON does)."""

    sample_values: list[Any] = SAMPLE_VALUES

    @pytest.fixture
    def handler(self) -> ResultHandler:
        raise NotImplementedError("provide a `handler` fixture returning the handler under test")

    @pytest.fixture
    def corrupt(self) -> Any:
        return None

    def test_written_values_read_back_equal(self, handler: ResultHandler) -> None:
        for value in self.sample_values:
            location = handler.write(value)
            assert isinstance(location, str) and location
            assert handler.read(location) == value, f"{type(value).__name__} did not round-trip"

    def test_each_write_gets_its_own_location(self, handler: ResultHandler) -> None:
        first, second = handler.write(1), handler.write(2)
        assert first != second
        assert (handler.read(first), handler.read(second)) == (1, 2)

    def test_reading_a_missing_location_is_a_clear_error(self, handler: ResultHandler) -> None:
        location = handler.write("x")
        missing = location[:-4] + ("zzzz" if not location.endswith("zzzz") else "yyyy")
        with pytest.raises(ResultHandlerError) as info:
            handler.read(missing)
        assert missing in str(info.value)

    def test_corrupt_data_is_a_clear_error(self, handler: ResultHandler, corrupt: Any) -> None:
        if corrupt is None:
            pytest.skip("this backend cannot be corrupted from a test (no `corrupt` fixture)")
        location = handler.write({"a": 1})
        corrupt(handler, location)
        with pytest.raises(ResultHandlerError) as info:
            handler.read(location)
        assert location in str(info.value)

    def test_unpicklable_values_fail_clearly(self, handler: ResultHandler) -> None:
        import threading

        if handler.handler_name == "json":
            pytest.skip("JSON handlers reject non-JSON values instead")
        with pytest.raises(ResultHandlerError):
            handler.write(threading.Lock())

    def test_handler_survives_serialization(self, handler: ResultHandler) -> None:
        from runwright.engine.serialization import deserialize_handler, serialize_handler

        location = handler.write([1, 2, 3])
        data = serialize_handler(handler)
        assert data is not None and isinstance(data["type"], str)
        import json

        restored = deserialize_handler(json.loads(json.dumps(data)))
        assert restored == handler
        assert restored is not None and restored.read(location) == [1, 2, 3]

    def test_handler_survives_pickling(self, handler: ResultHandler) -> None:
        location = handler.write("pickled")
        restored = pickle.loads(pickle.dumps(handler))
        assert restored.read(location) == "pickled"

    def test_the_location_alone_is_enough_to_read(self, handler: ResultHandler) -> None:
        if not handler.uri_schemes:
            pytest.skip("this handler's locations are not URIs")
        import runwright

        location = handler.write({"only": "uri"})
        assert location.split("://", 1)[0] in handler.uri_schemes
        assert runwright.read_uri(location) == {"only": "uri"}

    def test_a_checkpointed_task_result_travels_in_its_state(self, handler: ResultHandler) -> None:
        from runwright import Flow, task
        from runwright.engine.state import State

        @task(checkpoint=True, result_handler=handler)
        def produce() -> dict[str, int]:
            return {"answer": 42}

        with Flow("contract") as flow:
            produced = produce()
        state = flow.run().result[produced]
        assert state.is_successful()
        data = state.serialize()
        assert data["_result"]["type"] == "SafeResult"
        restored = State.deserialize(data)
        assert restored._result.to_result().value == {"answer": 42}


# -- executors -------------------------------------------------------------------------------
# Module-level functions: an executor that pickles work by reference finds them on its workers.
def _plus(base: int, upstream_states: dict[str, int]) -> int:
    return base + sum(upstream_states.values())


def _after_a_pause(seconds: float, value: int) -> int:
    import time

    time.sleep(seconds)
    return value


def _echo(value: Any, upstream_states: dict[str, Any]) -> Any:
    return value


def _attempt(directory: str, name: str) -> int:
    """Record an attempt of ``name`` in ``directory`` (shared by worker processes); its number."""
    import os
    import uuid

    os.makedirs(directory, exist_ok=True)
    open(os.path.join(directory, f"{name}-{uuid.uuid4().hex}"), "w").close()
    return sum(1 for entry in os.listdir(directory) if entry.startswith(f"{name}-"))


class ExecutorContract:
    """Subclass and provide an ``executor`` fixture returning a new, not yet started executor.

    The tests check what a user relies on: results of independent and dependent task runs,
    upstream work finished before downstream work starts, mapped children and reducers,
    failures and timeouts becoming states, retries, the run context, and the executor
    interface itself (``submit`` with named ``upstream_states``, ``wait`` keeping order). Task
    functions are defined in the tests (cloudpickle sends them by value) and coordinate
    through files, so the executor may run them in other processes of this machine.
    """

    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError("provide an `executor` fixture returning a new executor")

    # -- the interface -------------------------------------------------------------------------
    def test_a_submission_receives_its_upstream_results_by_name(self, executor: Executor) -> None:
        with executor.start():
            first = executor.submit(_plus, 1, upstream_states={})
            second = executor.submit(_plus, 10, upstream_states={"first": first})
            third = executor.submit(_plus, 100, upstream_states={"first": first, "second": second})
            assert executor.wait([first, second, third]) == [1, 11, 112]

    def test_wait_keeps_the_order_and_keys_it_was_given(self, executor: Executor) -> None:
        with executor.start():
            futures = [executor.submit(_after_a_pause, 0.02 * (5 - i), i) for i in range(6)]
            assert executor.wait(futures) == list(range(6))
            by_name = {f"n{i}": future for i, future in enumerate(futures)}
            assert executor.wait(by_name) == {f"n{i}": i for i in range(6)}
            assert executor.wait(futures[2]) == 2

    def test_other_arguments_reach_the_function_as_given(self, executor: Executor) -> None:
        data = {"nested": [1, (2, 3)], "text": "as is"}
        with executor.start():
            assert executor.wait(executor.submit(_echo, data, upstream_states={})) == data

    # -- flows ---------------------------------------------------------------------------------
    def test_independent_and_dependent_tasks_give_their_results(self, executor: Executor) -> None:
        from runwright import Flow, task

        @task
        def number(x: int) -> int:
            return x

        @task
        def add(x: int, y: int) -> int:
            return x + y

        with Flow("contract-graph") as flow:
            a, b = number(1), number(2)
            left, right = add(a, 10), add(b, 20)
            total = add(left, right)  # a diamond: two branches joined
        state = flow.run(executor=executor)
        assert state.is_successful(), state
        assert [state.result[t].result for t in (a, b, left, right, total)] == [1, 2, 11, 22, 33]

    def test_upstream_tasks_finish_before_downstream_tasks_start(self, executor: Executor, tmp_path: Any) -> None:
        import os
        import time

        from runwright import Flow, task

        marker = str(tmp_path / "upstream-done")

        @task
        def slow() -> int:
            time.sleep(0.3)
            open(marker, "w").close()
            return 1

        @task
        def check(x: int) -> bool:
            return os.path.exists(marker)

        with Flow("contract-order") as flow:
            checked = check(slow())
        assert flow.run(executor=executor).result[checked].result is True

    def test_mapped_children_and_their_reducer(self, executor: Executor) -> None:
        from runwright import Flow, task

        @task
        def items() -> list[int]:
            return list(range(20))

        @task
        def double(x: int) -> int:
            return 2 * x

        @task
        def plus_one(x: int) -> int:
            return x + 1

        @task
        def total(xs: list[int]) -> int:
            return sum(xs)

        with Flow("contract-map") as flow:
            doubled = double.map(items())
            chained = plus_one.map(doubled)
            summed = total(chained)
        state = flow.run(executor=executor)
        assert state.is_successful(), state
        assert [child.result for child in state.result[chained].map_states] == [2 * i + 1 for i in range(20)]
        assert state.result[chained].result == [2 * i + 1 for i in range(20)]
        assert state.result[summed].result == sum(2 * i + 1 for i in range(20))

    def test_mapping_over_an_empty_list(self, executor: Executor) -> None:
        from runwright import Flow, task

        @task
        def nothing() -> list[int]:
            return []

        @task
        def double(x: int) -> int:
            return 2 * x

        @task
        def count(xs: list[int]) -> int:
            return len(xs)

        with Flow("contract-empty-map") as flow:
            counted = count(double.map(nothing()))
        state = flow.run(executor=executor)
        assert state.is_successful(), state
        assert state.result[counted].result == 0

    def test_an_exception_becomes_a_failed_state_and_triggers_apply(self, executor: Executor) -> None:
        from runwright import Flow, task, triggers
        from runwright.engine.state import Failed, TriggerFailed

        @task
        def boom() -> int:
            raise ValueError("boom in a task")

        @task
        def after(x: int) -> int:
            return x

        @task(trigger=triggers.always_run)
        def cleanup(x: Any) -> str:
            return "cleaned"

        with Flow("contract-failure") as flow:
            failed = boom()
            skipped = after(failed)
            cleaned = cleanup(skipped)
        state = flow.run(executor=executor)
        assert isinstance(state.result[failed], Failed)
        assert "boom in a task" in state.result[failed].message
        assert isinstance(state.result[failed].result, ValueError)
        assert isinstance(state.result[skipped], TriggerFailed)
        assert state.result[cleaned].result == "cleaned"

    def test_a_failed_mapped_child_fails_alone(self, executor: Executor) -> None:
        from runwright import Flow, task, triggers

        @task
        def items() -> list[int]:
            return [1, 2, 0, 4]

        @task
        def invert(x: int) -> float:
            return 1 / x

        @task(trigger=triggers.always_run)
        def successes(xs: list[Any]) -> int:
            return sum(1 for x in xs if isinstance(x, float))

        with Flow("contract-child-failure") as flow:
            inverted = invert.map(items())
            counted = successes(inverted)
        state = flow.run(executor=executor)
        kinds = [type(child).__name__ for child in state.result[inverted].map_states]
        assert kinds == ["Success", "Success", "Failed", "Success"]
        assert state.result[counted].result == 3

    def test_retries_run_the_task_again(self, executor: Executor, tmp_path: Any) -> None:
        import datetime

        from runwright import Flow, task

        attempts = str(tmp_path / "attempts")

        @task(max_retries=2, retry_delay=datetime.timedelta(seconds=0))
        def flaky() -> int:
            attempt = _attempt(attempts, "flaky")
            if attempt < 3:
                raise RuntimeError(f"attempt {attempt} fails")
            return attempt

        @task
        def after(x: int) -> int:
            return x * 10

        with Flow("contract-retries") as flow:
            result = after(flaky())
        state = flow.run(executor=executor)
        assert state.is_successful(), state
        assert state.result[result].result == 30

    def test_a_timeout_becomes_a_timed_out_state(self, executor: Executor) -> None:
        import time

        from runwright import Flow, task
        from runwright.engine.state import TimedOut

        @task(timeout=0.2)
        def too_slow() -> int:
            time.sleep(3)
            return 1

        with Flow("contract-timeout") as flow:
            slow = too_slow()
        started = time.monotonic()
        state = flow.run(executor=executor)
        assert isinstance(state.result[slow], TimedOut), state.result[slow]
        assert time.monotonic() - started < 2.5

    def test_the_run_context_reaches_tasks_and_mapped_children(self, executor: Executor) -> None:
        from runwright import Flow, Parameter, task, unmapped

        @task
        def items() -> list[int]:
            return [0, 1]

        @task
        def describe(x: int, suffix: str) -> str:
            from runwright import context  # imported here: a task body's closure travels by value

            return f"{context.get('flow_name')}/{context.get('task_full_name')}/{context.get('map_index')}{suffix}"

        with Flow("contract-context") as flow:
            described = describe.map(items(), suffix=unmapped(Parameter("suffix")))
        state = flow.run(executor=executor, suffix="!")
        assert state.result[described].result == ["contract-context/describe[0]/0!", "contract-context/describe[1]/1!"]

    def test_one_executor_runs_flows_one_after_the_other(self, executor: Executor) -> None:
        from runwright import Flow, task

        @task
        def number(x: int) -> int:
            return x

        with Flow("contract-again") as flow:
            value = number(7)
        assert flow.run(executor=executor).result[value].result == 7
        assert flow.run(executor=executor).result[value].result == 7


    def test_finished_runs_are_reported_once_each_when_their_hooks_fire_elsewhere(self, executor: Executor) -> None:
        import threading

        from runwright import Flow, task

        @task
        def items() -> list[int]:
            return [1, 2]

        @task
        def double(x: int) -> int:
            return 2 * x

        @task
        def broken() -> int:
            raise ValueError("on purpose")

        reported: list[tuple[str, str, int | None]] = []
        lock = threading.Lock()

        def on_finished(task: Any, state_type: type, map_count: int | None) -> None:
            with lock:
                reported.append((task.name, state_type.__name__, map_count))

        with Flow("contract-finished") as flow:
            double.map(items())
            broken()
        reports = executor.report_finished_runs(on_finished)
        flow.run(executor=executor)
        if reports:
            assert not executor.task_hooks_in_process
            assert sorted(reported) == [("broken", "Failed", None), ("double", "Mapped", 2), ("items", "Success", None)]
        else:  # the task-run hooks fire in this process and tell it
            assert executor.task_hooks_in_process
            assert reported == []
