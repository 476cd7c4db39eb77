"""Literal arguments are bound to their task (``Flow.constants``): no task, edge or task run,
the same values, results and trigger outcomes as when each was a Constant task."""

import datetime

import pytest

from runwright import Flow, task, triggers, unmapped
from runwright.engine.state import Retrying, Success, TriggerFailed


@task
def add(x, y):
    return x + y


@task
def total(xs):
    return sum(xs)


def test_a_fan_out_with_literal_arguments_runs_one_task_run_per_child(hook_recorder):
    with Flow("fan") as flow:
        root = add(1, 1)
        last = total([add(root, i) for i in range(5)])
    assert len(flow.tasks) == 1 + 5 + 1 + 1  # root, children, the list of results, the reducer
    state = flow.run()
    assert state.is_successful()
    assert state.result[last].result == sum(2 + i for i in range(5))
    initialized = hook_recorder.calls_of("runwright_task_run_initialize")
    assert len(initialized) == len(flow.tasks)  # no task run for a literal


def test_unmapped_literal_goes_whole_to_every_mapped_child():
    with Flow("map") as flow:
        mapped = add.map([1, 2, 3], unmapped(10))
    state = flow.run()
    assert [child.result for child in state.result[mapped].map_states] == [11, 12, 13]


def test_structure_names_the_bound_arguments():
    with Flow("s") as flow:
        add(1, y=2)
    structure = flow.structure()
    assert [t["name"] for t in structure["tasks"]] == ["add"] and structure["edges"] == []
    assert structure["constants"] == [{"task": "add-1", "key": "x"}, {"task": "add-1", "key": "y"}]


def test_an_argument_bound_twice_is_a_clear_error():
    with Flow("twice") as flow:
        a = add(1, 2)
    with pytest.raises(ValueError, match='Argument "x" of task .add. is already bound to a value'):
        flow.bind_constant(a, "x", 5)
    with pytest.raises(ValueError, match='already bound to a value'):
        flow.add_edge(add.copy(), a, key="x")
    with pytest.raises(ValueError, match="has no argument named 'z'"):
        flow.bind_constant(a, "z", 5, validate=True)


def test_a_literal_counts_as_a_successful_upstream_for_triggers():
    # as with a Constant task upstream: all_failed sees one successful upstream
    @task(trigger=triggers.all_failed)
    def cleanup(x):
        return x

    @task(trigger=triggers.some_successful(at_least=2))
    def needs_two(x, y):
        return x + y

    with Flow("triggers") as flow:
        c = cleanup(1)
        n = needs_two(add(1, 2), 3)
    state = flow.run()
    assert isinstance(state.result[c], TriggerFailed)
    assert state.result[n].result == 6


def test_a_retrying_run_keeps_its_literal_inputs():
    calls = []

    @task(max_retries=1, retry_delay=datetime.timedelta(0))
    def flaky(x, y):
        calls.append((x, y))
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return x * y

    with Flow("retry") as flow:
        f = flaky(add(1, 2), 7)
    state = flow.run()
    assert calls == [(3, 7), (3, 7)]
    assert isinstance(state.result[f], Success) and state.result[f].result == 21
    assert not isinstance(state.result[f], Retrying)


def test_a_run_that_waits_for_a_later_retry_keeps_its_literal_inputs_as_results():
    # the lean path makes the literals' Results only when a state may keep them
    from runwright.engine.flow_runner import FlowRunner

    @task(max_retries=1, retry_delay=datetime.timedelta(hours=1))
    def fails(x, y):
        raise RuntimeError("fails")

    with Flow("later") as flow:
        f = fails(add(1, 2), 7)
    state = FlowRunner(flow).run(return_tasks=flow.tasks)
    retrying = state.result[f]
    assert isinstance(retrying, Retrying)
    assert {key: result.value for key, result in retrying.cached_inputs.items()} == {"x": 3, "y": 7}


def test_a_state_handler_that_fails_a_success_leaves_the_literals_to_the_retry():
    def fail_it(task, old, new):
        if isinstance(new, Success) and not getattr(fail_it, "done", False):
            fail_it.done = True
            from runwright.engine.state import Failed

            return Failed("the handler says no")
        return new

    @task(max_retries=1, retry_delay=datetime.timedelta(hours=1), state_handlers=[fail_it])
    def judged(x):
        return x

    from runwright.engine.flow_runner import FlowRunner

    with Flow("judged") as flow:
        j = judged(5)
    state = FlowRunner(flow).run(return_tasks=flow.tasks)
    retrying = state.result[j]
    assert isinstance(retrying, Retrying)
    assert retrying.cached_inputs["x"].value == 5


def test_a_handler_added_while_the_task_runs_sees_running_to_success():
    seen = []

    def watch(task, old, new):
        seen.append((type(old).__name__, type(new).__name__))
        return new

    @task
    def adds_a_handler(x):
        adding.state_handlers.append(watch)
        return x

    with Flow("late handler") as flow:
        adding = adds_a_handler(1)
    assert flow.run().is_successful()
    assert seen == [("Running", "Success")]


def test_invalid_argument_names_are_refused_when_a_task_is_called():
    @task
    def takes_any(**kwargs):
        return kwargs

    with Flow("names"), pytest.raises(ValueError, match="Argument name 'not valid' must be a valid"):
        takes_any(**{"not valid": 1})
    with Flow("names"), pytest.raises(ValueError, match="Edge key 'class' must be a valid"):
        takes_any(**{"class": add(1, 2)})
