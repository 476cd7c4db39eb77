"""Building and running a flow spaces out cyclic-garbage collections, and puts the process's
collector thresholds back afterwards (runwright.gc_quiet)."""

from __future__ import annotations

import gc

import pytest

from runwright import Flow, task
from runwright.gc_quiet import YOUNG_THRESHOLD


@task
def fails() -> None:
    raise ValueError("boom")


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_a_flow_build_and_run_restore_the_thresholds(thresholds):
    seen = []

    @task
    def look() -> int:
        seen.append(gc.get_threshold())
        return 1

    with Flow("f") as flow:
        seen.append(gc.get_threshold())
        with Flow("inner"):  # nested: still spaced, restored only by the outermost
            pass
        seen.append(gc.get_threshold())
        look()
    assert gc.get_threshold() == (700, 10, 10)
    state = flow.run()
    assert state.is_successful()
    assert gc.get_threshold() == (700, 10, 10)
    assert seen == [(YOUNG_THRESHOLD, 10, 10)] * 3


def test_a_failing_run_restores_the_thresholds(thresholds):
    with Flow("f") as flow:
        fails()
    assert flow.run().is_failed()
    assert gc.get_threshold() == (700, 10, 10)


def test_a_disabled_collector_is_left_alone(thresholds):
    gc.disable()
    try:
        with Flow("f"):
            assert gc.get_threshold() == (700, 10, 10)
        assert not gc.isenabled()
    finally:
        gc.enable()
