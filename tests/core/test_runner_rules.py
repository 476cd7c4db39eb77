"""Rules of the runner base that the seed engine documents."""

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
