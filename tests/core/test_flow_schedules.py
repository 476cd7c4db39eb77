"""flow.run() on a schedule: waiting for each start, Cached states carried, running once."""

import datetime
import os
import signal
import threading
import time

import pytest

from runwright import Flow, Parameter, context, task
from runwright.config import temporary_config
from runwright.plugins import build_plugin_manager, use_plugin_manager
from runwright.schedules import IntervalSchedule, Schedule

UTC = datetime.UTC
STEP = datetime.timedelta(seconds=0.2)


@pytest.fixture(autouse=True)
def core_only():
    """No installed plugin (runwright-cache would persist caches itself): what a task does
    not re-run is what the core carried from one scheduled run into the next."""
    with use_plugin_manager(build_plugin_manager(autoload=False)):
        yield


def three_starts(first_in=0.2):
    """A schedule of exactly three starts, 0.2 s apart, the first ``first_in`` s from now."""
    start = datetime.datetime.now(UTC) + datetime.timedelta(seconds=first_in)
    return IntervalSchedule(start, STEP, end_date=start + 2 * STEP)


def recording_flow(schedule, runs):
    """A flow whose ``expensive`` task is cached for a minute and whose ``record`` task
    notes the wall time and the run context's scheduled start of each run."""
    with Flow("scheduled", schedule=schedule) as flow:

        @task(cache_for=datetime.timedelta(minutes=1))
        def expensive():
            runs["expensive"] += 1
            return 42

        @task
        def record(value):
            runs["at"].append((datetime.datetime.now(UTC), context.get("scheduled_start_time")))
            return (value, len(runs["at"]))

        result = record(expensive())
    return flow, result


def test_a_flow_runs_at_each_start_carries_cached_states_and_returns_the_last_run():
    schedule = three_starts()
    starts = schedule.next(3)
    runs = {"expensive": 0, "at": []}
    flow, result = recording_flow(schedule, runs)

    state = flow.run()

    assert state.is_successful()
    assert state.result[result].result == (42, 3)  # the last run's state
    assert runs["expensive"] == 1  # the Cached state was carried into runs 2 and 3
    assert [scheduled for _, scheduled in runs["at"]] == starts
    for ran_at, scheduled in runs["at"]:
        assert scheduled <= ran_at < scheduled + STEP  # it waited for the start, and no longer than to the next


def test_run_on_schedule_false_runs_once_now():
    schedule = three_starts(first_in=30)
    runs = {"expensive": 0, "at": []}
    flow, result = recording_flow(schedule, runs)
    began = time.monotonic()
    state = flow.run(run_on_schedule=False)
    assert time.monotonic() - began < 5
    assert state.is_successful() and state.result[result].result == (42, 1)
    assert len(runs["at"]) == 1


def test_the_config_key_flows_run_on_schedule_false_runs_once():
    runs = {"expensive": 0, "at": []}
    flow, result = recording_flow(three_starts(first_in=30), runs)
    with temporary_config({"flows.run_on_schedule": False}):
        state = flow.run()
    assert state.result[result].result == (42, 1) and len(runs["at"]) == 1


def test_an_explicit_run_on_schedule_true_wins_over_the_config():
    runs = {"expensive": 0, "at": []}
    flow, result = recording_flow(three_starts(), runs)
    with temporary_config({"flows.run_on_schedule": False}):
        state = flow.run(run_on_schedule=True)
    assert state.result[result].result == (42, 3)


def test_a_flow_whose_schedule_ended_says_so():
    ended = IntervalSchedule(datetime.datetime(2020, 1, 1, tzinfo=UTC), STEP, end_date=datetime.datetime(2020, 1, 2, tzinfo=UTC))
    runs = {"expensive": 0, "at": []}
    flow, _ = recording_flow(ended, runs)
    with pytest.raises(ValueError, match="has no more scheduled runs.*run_on_schedule=False"):
        flow.run()
    assert runs["at"] == []
    assert flow.run(run_on_schedule=False).is_successful()


def test_each_start_gets_its_clocks_parameter_defaults_and_explicit_parameters_win():
    start = datetime.datetime.now(UTC) + STEP
    schedule = Schedule(
        [
            IntervalSchedule(start, 2 * STEP, end_date=start + STEP, parameter_defaults={"region": "eu"}),
            IntervalSchedule(start + STEP, 2 * STEP, end_date=start + STEP, parameter_defaults={"region": "us", "n": 2}),
        ]
    )
    seen = []
    with Flow("params", schedule=schedule) as flow:

        @task
        def note(region, n):
            seen.append((region, n))

        note(Parameter("region"), Parameter("n", default=1))
    flow.run()
    assert seen == [("eu", 1), ("us", 2)]
    seen.clear()
    flow.schedule = IntervalSchedule(
        datetime.datetime.now(UTC) + STEP, STEP, end_date=datetime.datetime.now(UTC) + STEP, parameter_defaults={"region": "eu"}
    )
    flow.run(region="apac")
    assert seen == [("apac", 1)]


def test_a_start_without_a_required_parameter_is_refused_before_waiting():
    with Flow("params", schedule=three_starts(first_in=30)) as flow:
        task(lambda region: region, name="echo")(Parameter("region"))
    began = time.monotonic()
    with pytest.raises(ValueError, match="did not receive the following required parameters: region"):
        flow.run()
    assert time.monotonic() - began < 5


def test_ctrl_c_while_waiting_stops_the_schedule_and_returns_the_last_run():
    start = datetime.datetime.now(UTC) + STEP
    schedule = IntervalSchedule(start, datetime.timedelta(seconds=30))  # the second start is far away
    runs = {"expensive": 0, "at": []}
    flow, result = recording_flow(schedule, runs)
    timer = threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        began = time.monotonic()
        state = flow.run()
    finally:
        timer.cancel()
    assert time.monotonic() - began < 5
    assert len(runs["at"]) == 1
    assert state.is_successful() and state.result[result].result == (42, 1)



def test_cached_mapped_children_are_carried_into_the_next_scheduled_run():
    calls = []

    @task(cache_for=datetime.timedelta(minutes=1))
    def double(x):
        calls.append(x)
        return 2 * x

    @task
    def total(values):
        return sum(values)

    with Flow("mapped", schedule=three_starts(first_in=0.1)) as flow:
        result = total(double.map([1, 2, 3]))
    state = flow.run()
    assert state.result[result].result == 12
    assert calls == [1, 2, 3]  # each child ran once, in the first of three runs


def test_a_schedule_that_is_not_one_is_refused_when_the_flow_is_built():
    with pytest.raises(TypeError, match="schedule must be a runwright.schedules IntervalSchedule"):
        Flow("f", schedule="*/5 * * * *")
