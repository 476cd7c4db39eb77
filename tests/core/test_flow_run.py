"""Running flows: final states, parameters, retries, timeouts, triggers, skips, mapping."""

import datetime
import threading
import time

import pytest

from runwright import Flow, Parameter, Task, context, signals, task, triggers
from runwright.engine import state as st
from runwright.engine.flow_runner import FlowRunner

ZERO = datetime.timedelta(0)


@task
def one():
    return 1


@task
def add(x, y):
    return x + y


@task
def boom():
    raise ValueError("boom")


def test_a_successful_flow_returns_every_task_state():
    with Flow("f") as flow:
        a = add(one(), 2)
    state = flow.run()
    assert state.is_successful() and state.message == "All reference tasks succeeded."
    assert state.result[a].result == 3 and len(state.result) == len(flow.tasks)


def test_a_failing_task_fails_the_flow_with_the_error_in_its_state():
    with Flow("f") as flow:
        b = boom()
        after = add(b, 1)
    state = flow.run()
    assert state.is_failed() and state.message == "Some reference tasks failed."
    assert isinstance(state.result[b].result, ValueError)
    assert "ValueError('boom')" in state.result[b].message
    assert isinstance(state.result[after], st.TriggerFailed)


def test_parameters_from_kwargs_and_dict_and_their_errors():
    with Flow("f") as flow:
        total = add(Parameter("x"), Parameter("y", default=5))
    assert flow.run(x=1).result[total].result == 6
    assert flow.run(parameters={"x": 1, "y": 1}).result[total].result == 2
    with pytest.raises(ValueError, match="unexpected parameters: z"):
        flow.run(x=1, parameters={"z": 2})
    with pytest.raises(ValueError, match="required parameters: x"):
        flow.run()


def test_a_missing_required_parameter_fails_the_parameter_task_in_the_runner():
    with Flow("f") as flow:
        p = Parameter("x")
        add(p, 1)
    state = FlowRunner(flow).run(return_tasks=[p])
    assert 'Parameter "x" was required but not provided.' in state.result[p].message


def test_reference_tasks_decide_the_final_state():
    with Flow("f") as flow:
        good = one()
        b = boom()
    flow.set_reference_tasks([good])
    assert flow.run().is_successful()
    flow.set_reference_tasks([b])
    assert flow.run().is_failed()


def test_retries_wait_in_process_and_count_attempts():
    attempts = []

    @task(max_retries=2, retry_delay=datetime.timedelta(milliseconds=50))
    def flaky():
        attempts.append(context.task_run_count)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    with Flow("f") as flow:
        f = flaky()
    start = time.monotonic()
    state = flow.run()
    assert state.is_successful() and state.result[f].result == "ok"
    assert attempts == [1, 2, 3]
    assert time.monotonic() - start >= 0.1


def test_retries_are_exhausted_into_failure_with_handler_sequence():
    seen = []

    def record(task_obj, old, new):
        seen.append(type(new).__name__)

    @task(max_retries=1, retry_delay=ZERO, state_handlers=[record])
    def always_fails():
        raise RuntimeError("no")

    with Flow("f") as flow:
        t = always_fails()
    state = flow.run()
    assert state.result[t].is_failed()
    assert seen == ["Running", "Failed", "Retrying", "Running", "Failed"]


def test_a_long_retry_ends_the_run_then_flow_run_waits_and_resumes(monkeypatch):
    from runwright.config import temporary_config

    calls = []

    @task(max_retries=1, retry_delay=datetime.timedelta(milliseconds=300))
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first")
        return 7

    with Flow("f") as flow:
        f = flaky()
    with temporary_config({"engine.inprocess_retry_limit": 0.01}):
        runner_state = FlowRunner(flow).run(return_tasks=[f])
        assert runner_state.is_running() and runner_state.result[f].is_retrying()
        calls.clear()
        state = flow.run()
    assert state.is_successful() and state.result[f].result == 7 and len(calls) == 2


def test_retry_signal_always_retries():
    @task
    def asks_for_retry():
        if context.task_run_count == 1:
            raise signals.RETRY("again")
        return context.task_run_count

    with Flow("f") as flow:
        t = asks_for_retry()
    assert flow.run().result[t].result == 2


def test_timeouts_end_in_timed_out():
    @task(timeout=0.05)
    def slow():
        time.sleep(1)

    with Flow("f") as flow:
        s = slow()
    state = flow.run()
    assert isinstance(state.result[s], st.TimedOut) and state.is_failed()


def test_signals_set_states_and_carry_results():
    @task
    def skip():
        raise signals.SKIP("nothing to do")

    @task
    def succeed():
        raise signals.SUCCESS("early", result=99)

    with Flow("f") as flow:
        s = skip()
        after = add(s, 1)
        ok = succeed()
    state = flow.run()
    assert state.result[s].is_skipped() and state.result[after].is_skipped()
    assert state.result[ok].result == 99
    assert state.is_successful()


def test_skip_propagation_can_be_turned_off():
    @task
    def skip():
        raise signals.SKIP()

    @task(skip_on_upstream_skip=False, trigger=triggers.always_run)
    def cleanup(x):
        return "ran"

    with Flow("f") as flow:
        c = cleanup(skip())
    assert flow.run().result[c].result == "ran"


@pytest.mark.parametrize(
    "trigger,upstream,expected",
    [
        (triggers.all_failed, "fail", st.Success),
        (triggers.all_failed, "ok", st.TriggerFailed),
        (triggers.any_failed, "fail", st.Success),
        (triggers.all_finished, "fail", st.Success),
        (triggers.any_successful, "fail", st.TriggerFailed),
        (triggers.some_failed(at_least=1), "fail", st.Success),
        (triggers.some_successful(at_least=0.5), "ok", st.Success),
    ],
)
def test_triggers_decide_whether_a_task_runs(trigger, upstream, expected):
    @task(trigger=trigger)
    def downstream():
        return "ran"

    with Flow("f") as flow:
        up = boom() if upstream == "fail" else one()
        d = downstream(upstream_tasks=[up])
    assert type(flow.run().result[d]) is expected


def test_manual_only_pauses_then_resumes():
    @task(trigger=triggers.manual_only)
    def approve():
        return "approved"

    with Flow("f") as flow:
        a = approve(upstream_tasks=[one()])
    first = flow.run()
    assert first.is_running() and first.result[a].is_paused()
    resumed = flow.run(task_states={**first.result, a: st.Resume()})
    assert resumed.is_successful() and resumed.result[a].result == "approved"


def test_a_finished_flow_state_is_returned_as_is():
    with Flow("f") as flow:
        one()
    assert FlowRunner(flow).run(state=st.Success(result=5)).result == 5


def test_a_future_scheduled_state_does_not_run():
    with Flow("f") as flow:
        one()
    later = st.Scheduled(start_time=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    assert FlowRunner(flow).run(state=later) is later


def test_provided_finished_task_states_are_not_rerun():
    ran = []

    @task
    def counted():
        ran.append(1)
        return 1

    with Flow("f") as flow:
        c = counted()
        out = add(c, 1)
    state = flow.run(task_states={c: st.Success(result=10)})
    assert ran == [] and state.result[out].result == 11


def test_a_map_over_a_restored_upstream_maps_its_value_and_restored_children_reduce_by_value():
    # what a backend hands a resumed run: finished states whose results are stored
    # locations only (SafeResult), not values
    from runwright import JSONResultHandler, SafeResult

    handler = JSONResultHandler()
    ran = []

    @task
    def items():
        ran.append("items")
        return [1, 2, 3]

    @task
    def square(x):
        ran.append(x)
        return x * x

    @task
    def total(xs):
        return sum(xs)

    with Flow("f") as flow:
        squares = square.map(items())
        out = total(squares)
    listed = next(t for t in flow.tasks if t.name == "items")
    restored_items = st.Success(result=SafeResult("[1, 2, 3]", handler))
    state = flow.run(task_states={listed: restored_items})
    assert ran == [1, 2, 3]  # mapped over the list, not over the characters of its location
    assert state.result[out].result == 14
    # children restored finished, with stored results: the reducer reads their values back
    parent = st.Mapped(map_states=[st.Success(result=SafeResult(str(x * x), handler)) for x in (1, 2, 3)])
    ran.clear()
    state = flow.run(task_states={listed: restored_items, squares: parent})
    assert ran == [] and state.result[out].result == 14
    assert state.result[squares].result == [1, 4, 9]


def test_mapping_runs_one_child_per_item_and_reduces():
    with Flow("f") as flow:
        doubled = add.map([1, 2, 3], [10, 20, 30])
        total = add(doubled, [0])
    state = flow.run()
    mapped = state.result[doubled]
    assert isinstance(mapped, st.Mapped) and [s.result for s in mapped.map_states] == [11, 22, 33]
    assert mapped.result == [11, 22, 33]
    assert state.result[total].result == [11, 22, 33, 0]


def test_map_over_empty_and_over_mapped():
    with Flow("f") as flow:
        empty = add.map([], [])
        first = add.map([1, 2], [1, 1])
        second = add.map(first, [100, 100])
    state = flow.run()
    assert state.result[empty].map_states == []
    assert state.result[second].result == [102, 103]


def test_mapping_over_a_non_sequence_is_a_clear_failure():
    with Flow("f") as flow:
        bad = add.map(one(), [1])
    message = flow.run().result[bad].message
    assert "has no length" in message and "unmapped" in message


def test_a_reducer_waits_for_retrying_children():
    seen = []

    @task(max_retries=1, retry_delay=datetime.timedelta(milliseconds=20))
    def flaky_child(x):
        seen.append(x)
        if x == 2 and seen.count(2) == 1:
            raise RuntimeError("transient")
        return x

    @task
    def reduce(xs):
        return sorted(xs)

    with Flow("f") as flow:
        r = reduce(flaky_child.map([1, 2, 3]))
    state = flow.run()
    assert state.result[r].result == [1, 2, 3]


def test_failed_children_fail_the_reducer_trigger_and_flow():
    @task
    def maybe(x):
        if x == 2:
            raise ValueError("two")
        return x

    @task
    def reduce(xs):
        return xs

    with Flow("f") as flow:
        m = maybe.map([1, 2, 3])
        r = reduce(m)
    state = flow.run()
    assert [type(s).__name__ for s in state.result[m].map_states] == ["Success", "Failed", "Success"]
    assert isinstance(state.result[r], st.TriggerFailed) and state.is_failed()


def test_state_handlers_chain_and_on_failure_fires():
    failures = []

    def replace(task_obj, old, new):
        if isinstance(new, st.Success):
            return st.Success("replaced", result=new._result)
        return None

    @task(state_handlers=[replace], on_failure=lambda t, s: failures.append(s))
    def good():
        return 1

    @task(on_failure=lambda t, s: failures.append(s))
    def bad():
        raise RuntimeError("x")

    with Flow("f") as flow:
        g = good()
        bad()
    state = flow.run()
    assert state.result[g].message == "replaced"
    assert len(failures) == 1 and failures[0].is_failed()


def test_a_failing_task_state_handler_fails_the_task_not_the_engine():
    def broken(task_obj, old, new):
        raise ZeroDivisionError("handler bug")

    with Flow("f") as flow:
        t = Task(name="t", state_handlers=[broken])
        flow.add_task(t)
    state = flow.run()
    assert "state handlers" in state.result[t].message and state.is_failed()


def test_flow_state_handlers_see_each_transition_once():
    seen = []
    with Flow("f", state_handlers=[lambda f, old, new: seen.append((type(old).__name__, type(new).__name__))]) as flow:
        one()
    flow.run()
    assert seen == [("Pending", "Running"), ("Running", "Success")]


def test_runner_handlers_get_the_runner():
    seen = []
    with Flow("f") as flow:
        one()
    FlowRunner(flow, state_handlers=[lambda runner, old, new: seen.append(runner)]).run()
    assert seen and all(isinstance(r, FlowRunner) for r in seen)


def test_context_keys_are_available_to_tasks():
    @task
    def read_context():
        return {k: context.get(k) for k in ("flow_name", "task_name", "task_slug", "today", "parameters", "task_run_count")}

    with Flow("ctx") as flow:
        r = read_context()
    value = flow.run().result[r].result
    assert value["flow_name"] == "ctx" and value["task_slug"] == "read_context-1"
    assert value["task_run_count"] == 1 and len(value["today"]) == 10


def test_callers_context_dict_is_not_mutated():
    with Flow("f") as flow:
        one()
    given = {"parameters": {"keep": 1}}
    FlowRunner(flow).run(context=given, parameters={})
    assert given == {"parameters": {"keep": 1}}


def test_unexpected_runner_errors_become_a_failed_flow():
    with Flow("f") as flow:
        one()
    state = FlowRunner(flow).run(return_tasks=[Task("stranger")])
    assert state.is_failed() and "return_tasks" in state.message


def test_raise_on_exception_reraises_for_debugging():
    with Flow("f") as flow:
        boom()
    with context(raise_on_exception=True):
        with pytest.raises(ValueError, match="boom"):
            flow.run()


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_executors_by_name_give_the_same_results(executor):
    with Flow("f") as flow:
        squares = add.map([1, 2, 3, 4], [1, 2, 3, 4])
        total = add(squares, [])
        b = boom()
        after = add(b, 1)
    state = flow.run(executor=executor)
    assert state.result[total].result == [2, 4, 6, 8]
    assert isinstance(state.result[after], st.TriggerFailed)


def test_thread_executor_runs_independent_branches_in_parallel():
    barrier = threading.Barrier(2, timeout=5)

    @task
    def meet():
        barrier.wait()
        return threading.get_ident()

    with Flow("f") as flow:
        a, b = meet(), meet()
    state = flow.run(executor="threads")
    assert state.is_successful() and state.result[a].result != state.result[b].result


def test_thread_executor_survives_deep_graphs_with_few_threads():
    from runwright.engine.executors import ThreadExecutor

    with Flow("f") as flow:
        prev = one()
        for _ in range(200):
            prev = add(prev, 1)
        mapped = add.map([1] * 50, [1] * 50)
        add(mapped, [prev])
    state = flow.run(executor=ThreadExecutor(max_workers=2))
    assert state.is_successful()


def test_unknown_executor_name_is_a_clear_error():
    with Flow("f") as flow:
        one()
    from runwright.plugins import UnknownNameError

    with pytest.raises(UnknownNameError, match="Executor 'nope' is not installed"):
        flow.run(executor="nope")


def test_class_based_tasks():
    class Multiply(Task):
        def run(self, x, factor=3):
            return x * factor

    with Flow("f") as flow:
        m = Multiply(name="multiply")(x=2)
    assert flow.run().result[m].result == 6


def test_flow_runner_run_never_mutates_what_the_caller_passed():
    import copy as _copy

    from runwright.engine.flow_runner import FlowRunner
    from runwright.engine.state import Pending, Running, Success

    @task
    def first():
        return 1

    @task
    def second(x):
        return x + 1

    with Flow("no-mutation") as flow:
        b = second(first())
    a = next(t for t in flow.tasks if t is not b)
    state = Running("resumed")
    task_states = {a: Success(result=1), b: Pending("waiting")}
    context = {"parameters": {"p": 1}, "custom": {"nested": [1, 2]}}
    task_contexts = {a: {"mine": "a"}, b: {"mine": "b"}}
    parameters = {"p": 2}
    passed = (state, task_states, context, task_contexts, parameters)
    snapshot = _copy.deepcopy(passed)
    state_attrs = {name: s.__getstate__() for name, s in (("flow", state), ("a", task_states[a]), ("b", task_states[b]))}

    final = FlowRunner(flow).run(
        state=state, task_states=task_states, context=context, task_contexts=task_contexts,
        parameters=parameters, return_tasks=[b],
    )

    assert final.is_successful() and final.result[b].result == 2
    assert context == snapshot[2] and task_contexts == {a: {"mine": "a"}, b: {"mine": "b"}} and parameters == snapshot[4]
    assert set(task_states) == {a, b} and task_states[a] is passed[1][a] and task_states[b] is passed[1][b]
    now = {name: s.__getstate__() for name, s in (("flow", state), ("a", task_states[a]), ("b", task_states[b]))}
    assert now == state_attrs  # no attribute of a state the caller passed was set or replaced


@task
def failing_extract():
    raise ValueError("no rows")


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_mapped_task_over_a_failed_upstream_ends_trigger_failed(executor):
    with Flow("f") as flow:
        loaded = add.map(failing_extract(), [1, 2])
        after = add(loaded, [0])
    state = flow.run(executor=executor)
    assert isinstance(state.result[loaded], st.TriggerFailed), state.result[loaded]
    assert "all_successful" in state.result[loaded].message
    assert isinstance(state.result[after], st.TriggerFailed)


def test_a_mapped_task_whose_trigger_lets_it_run_over_a_failed_upstream_says_it_cannot_map():
    @task(trigger=triggers.all_finished)
    def tolerant(x):
        return x

    with Flow("f") as flow:
        loaded = tolerant.map(failing_extract())
    result = flow.run().result[loaded]
    message = result.message
    assert isinstance(result, st.Failed) and not isinstance(result, st.TriggerFailed)
    assert "cannot map over x from 'failing_extract'" in message and "ended Failed" in message
    assert "all_finished" in message and "has no length" not in message


def test_children_over_a_partly_failed_mapped_upstream_keep_their_own_outcome():
    @task
    def maybe(x):
        if x == 2:
            raise ValueError("two")
        return x

    with Flow("f") as flow:
        first = maybe.map([1, 2, 3])
        second = add.map(first, [10, 10, 10])
    result = flow.run().result[second]
    assert isinstance(result, st.Mapped)
    assert [type(s).__name__ for s in result.map_states] == ["Success", "TriggerFailed", "Success"]
    assert [result.map_states[i].result for i in (0, 2)] == [11, 13]
