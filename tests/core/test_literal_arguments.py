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
