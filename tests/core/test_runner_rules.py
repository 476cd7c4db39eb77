"""Rules of the runner base that the seed engine documents."""

import datetime

import pytest

from runwright import Flow, Task, task
from runwright.engine import signals
from runwright.engine import state as st
from runwright.engine.flow_runner import FlowRunner
from runwright.engine.signals import ENDRUN
from runwright.engine.task_runner import TaskRunner


def test_state_handlers_must_be_a_sequence():
    with pytest.raises(TypeError, match="state_handlers should be iterable"):
        FlowRunner(Flow("f"), state_handlers={lambda *a: None})


def test_initialize_run_unwraps_meta_states():
    runner = TaskRunner(Task())
    nested = st.Submitted(state=st.Queued(state=st.Submitted(state=st.Retrying(run_count=2))))
    state, context = runner.initialize_run(nested, {})
    assert isinstance(state, st.Retrying) and context["task_run_count"] == 3


def test_a_finished_task_state_is_returned_by_identity():
    done = st.Success(result=1)
    assert TaskRunner(Task()).run(state=done) is done


def test_a_running_task_state_is_left_alone():
    running = st.Running()
    assert TaskRunner(Task()).run(state=running) is running


def test_a_signal_from_a_state_handler_replaces_the_state():
    def skipper(runner, old, new):
        if new.is_running():
            raise signals.SKIP("handler said skip")
        return new

    @task
    def work():
        return 1

    with Flow("f") as flow:
        w = work()
    state = FlowRunner(flow, ).run(return_tasks=[w], task_runner_state_handlers=[skipper])
    assert state.result[w].is_skipped()


def test_endrun_from_a_runner_handler_ends_the_task():
    def stopper(runner, old, new):
        if new.is_running():
            raise ENDRUN(st.Failed("stopped by handler"))
        return new

    @task
    def work():
        raise AssertionError("must not run")

    with Flow("f") as flow:
        w = work()
    state = FlowRunner(flow).run(return_tasks=[w], task_runner_state_handlers=[stopper])
    assert state.result[w].message == "stopped by handler"


def test_endrun_is_a_plain_exception_not_a_signal():
    assert not issubclass(ENDRUN, signals.RunwrightSignal)
    assert ENDRUN(st.Success()).state.is_successful()


def test_hook_recorder_and_run_flow_fixtures(run_flow, hook_recorder):
    @task
    def hello():
        return "hi"

    with Flow("f") as flow:
        h = hello()
    assert run_flow(flow).result[h].result == "hi"
    assert hook_recorder.calls_of("runwright_task_run_end")[0].kwargs["state"].is_successful()


def _plain_chain() -> tuple[Flow, Task]:
    @task
    def one():
        return 1

    @task
    def inc(x):
        return x + 1

    with Flow("plain") as flow:
        last = inc(one())
    return flow, last


def test_a_task_runner_subclass_that_overrides_a_step_is_called_for_plain_tasks():
    """A plain run takes the lean path only for a class that keeps the engine's methods: a
    subclass's own get_task_run_state still runs, for every task."""
    seen: list[str] = []

    class Noting(TaskRunner):
        def get_task_run_state(self, state, inputs, timeout_handler):
            seen.append(self.task.name)
            return super().get_task_run_state(state, inputs, timeout_handler)

    flow, last = _plain_chain()
    state = FlowRunner(flow, task_runner_cls=Noting).run(return_tasks=[last])
    assert state.is_successful() and state.result[last].result == 2
    assert seen == ["one", "inc"]


def test_a_handler_that_changes_running_ends_a_plain_run_with_its_state():
    def skip_instead(task, old_state, new_state):
        if isinstance(new_state, st.Running):
            return st.Skipped("skipped by a handler")
        return new_state

    ran: list[int] = []

    @task(state_handlers=[skip_instead])
    def body():
        ran.append(1)
        return 1

    with Flow("handled") as flow:
        handled = body()
    state = flow.run()
    assert isinstance(state.result[handled], st.Skipped) and ran == []


def test_a_failing_plain_task_ends_failed_with_the_error_and_retries_as_its_task_says():
    attempts: list[int] = []

    @task(max_retries=1, retry_delay=datetime.timedelta(0))
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return "ok"

    @task
    def broken():
        raise ValueError("always")

    with Flow("failing") as flow:
        retried = flaky()
        failing = broken()
    state = flow.run()
    assert state.result[retried].result == "ok" and len(attempts) == 2
    failed = state.result[failing]
    assert isinstance(failed, st.Failed) and "ValueError('always')" in failed.message
