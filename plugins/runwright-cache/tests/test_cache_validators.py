"""Validators and policies: raw-value comparisons, stable keys, registration by name."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import Any

import pytest

from runwright import Flow, task
from runwright.engine.result import Result
from runwright.engine.state import Cached, utcnow
from runwright_cache import cache_validators as cv
from runwright_cache.hashing import UnhashableValueError, stable_digest
from runwright_cache.policies import CompoundPolicy, Inputs, Parameters, TaskSource


def cached(inputs: dict[str, Any] | None = None, parameters: dict[str, Any] | None = None, expired: bool = False) -> Cached:
    delta = datetime.timedelta(hours=-1 if expired else 1)
    return Cached(
        result=1,
        cached_inputs={k: Result(v) for k, v in (inputs or {}).items()},
        cached_parameters=parameters,
        cached_result_expiration=utcnow() + delta,
    )


def test_core_validators_are_re_exported() -> None:
    from runwright.engine import cache_validators as core

    assert cv.never_use is core.never_use and cv.duration_only is core.duration_only


def test_all_inputs_compares_raw_values_with_cached_results() -> None:
    state = cached({"x": 1, "y": [1, 2]})
    assert cv.all_inputs(state, {"x": 1, "y": [1, 2]}, {})
    assert not cv.all_inputs(state, {"x": 2, "y": [1, 2]}, {})
    assert not cv.all_inputs(state, {"x": 1, "y": [1, 2], "z": 0}, {})
    assert not cv.all_inputs(cached({"x": 1}, expired=True), {"x": 1}, {})


def test_all_parameters_compares_parameters() -> None:
    state = cached(parameters={"p": 1})
    assert cv.all_parameters(state, {}, {"p": 1})
    assert not cv.all_parameters(state, {}, {"p": 2})


def test_partial_validators_compare_only_the_named_keys() -> None:
    state = cached({"a": 1, "b": 2}, {"p": 1, "q": 2})
    assert cv.partial_inputs_only(validate_on=["a"])(state, {"a": 1, "b": 99}, {})
    assert not cv.partial_inputs_only(validate_on=["a", "c"])(state, {"a": 1, "c": 3}, {})
    assert cv.partial_inputs_only()(state, {"a": 5}, {})  # None: expiry only, as in the seed
    assert cv.partial_parameters_only(validate_on="p")(state, {}, {"p": 1, "q": 5})
    assert not cv.partial_parameters_only(validate_on=["q"])(state, {}, {"p": 1, "q": 5})
    assert not cv.partial_inputs_only(validate_on=["a"])(cached({"a": 1}, expired=True), {"a": 1}, {})


@pytest.mark.parametrize(
    "name", ["never_use", "duration_only", "all_inputs", "all_parameters", "partial_inputs_only",
             "partial_parameters_only", "inputs", "parameters", "task_source", "inputs_and_task_source"]
)
def test_validators_and_policies_are_registered_by_name(plugin_manager: Any, name: str) -> None:
    named = task(cache_for=datetime.timedelta(hours=1), cache_validator=name)(lambda: 1)
    assert named.cache_validator(cached(), {}, {}) is (name != "never_use")


def test_stable_digest_is_the_same_in_another_process() -> None:
    value = {"b": {1, 2, "x", "y", "z"}, "a": [1.5, None, True, b"raw", ("t", frozenset({"q", "r"}))]}
    code = (
        "from runwright_cache.hashing import stable_digest;"
        "print(stable_digest({'a': [1.5, None, True, b'raw', ('t', frozenset({'r', 'q'}))], 'b': {'z', 'y', 'x', 2, 1}}))"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert digests == {stable_digest(value)}


def test_stable_digest_distinguishes_types_and_structure() -> None:
    assert len({stable_digest(v) for v in (1, 1.0, "1", b"1", [1], (1,), {1}, {"1": 1}, True, None)}) == 10
    assert stable_digest([[1, 2], [3]]) != stable_digest([[1], [2, 3]])


def test_unpicklable_values_cannot_be_keyed_clearly() -> None:
    import threading

    with pytest.raises(UnhashableValueError, match="exclude it"):
        stable_digest(threading.Lock())


def test_policies_combine_in_any_order_without_duplicates() -> None:
    assert Inputs() + TaskSource() == TaskSource() + Inputs() + Inputs()
    assert isinstance(Inputs() + Parameters(), CompoundPolicy)
    assert repr(Inputs(include=["a"]) + Parameters(exclude="p")) == "Inputs(include=['a']) + Parameters(exclude=['p'])"


def test_policy_keys_follow_what_they_depend_on() -> None:
    @task
    def first(x: int) -> int:
        return x

    @task
    def second(x: int) -> int:
        return x + 1

    policy = Inputs() + TaskSource()
    key = policy.compute_key(first, {"x": 1}, {"p": 1})
    assert key == policy.compute_key(first, {"x": 1}, {"p": 2})
    assert key != policy.compute_key(first, {"x": 2}, {"p": 1})
    assert key != policy.compute_key(second, {"x": 1}, {"p": 1})
    assert key != Inputs().compute_key(first, {"x": 1}, {"p": 1})
    assert Inputs(exclude=["y"]).compute_key(None, {"x": 1, "y": 1}, {}) == Inputs(exclude=["y"]).compute_key(None, {"x": 1, "y": 2}, {})
    assert Parameters(include=["p"]).compute_key(None, {}, {"p": 1, "q": 1}) == Parameters(include=["p"]).compute_key(None, {}, {"p": 1, "q": 2})


def test_a_policy_is_a_validator() -> None:
    state = cached({"x": 1}, {"p": 1})
    assert Inputs()(state, {"x": 1}, {"p": 5})
    assert not Inputs()(state, {"x": 2}, {"p": 1})
    assert not (Inputs() + Parameters())(state, {"x": 1}, {"p": 5})
    assert not Inputs()(cached({"x": 1}, expired=True), {"x": 1}, {})


def test_a_policy_validates_a_cached_state_handed_to_a_run(plugin_manager: Any, cache_config: Any) -> None:
    calls: list[int] = []

    @task(cache_for=datetime.timedelta(hours=1), cache_validator=Inputs())
    def constant() -> int:
        calls.append(1)
        return 7

    with Flow("handed") as flow:
        constant()
    [the_task] = list(flow.tasks)
    state = flow.run(task_states={the_task: cached()})
    assert state.is_successful() and calls == []
    assert flow.run(task_states={the_task: cached({"unexpected": 1})}).is_successful() and calls == [1]
