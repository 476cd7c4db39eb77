"""Building and running a flow spaces out cyclic-garbage collections, and puts the process's
collector thresholds back afterwards (runwright.gc_quiet)."""

from __future__ import annotations

import gc
import weakref

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


def test_a_run_keeps_the_objects_alive_at_its_start_out_of_collections_until_it_ends(thresholds):
    seen = []

    @task
    def look() -> int:
        seen.append(gc.get_freeze_count())
        return 1

    with Flow("f") as flow:
        look()
    assert gc.get_freeze_count() == 0
    assert flow.run().is_successful()
    # the graph (and everything else alive at the run's start) was frozen during the run,
    # and is back in the collector's reach after it
    assert seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_a_failing_run_unfreezes(thresholds):
    with Flow("f") as flow:
        fails()
    assert flow.run().is_failed()
    assert gc.get_freeze_count() == 0


def test_cyclic_garbage_frozen_by_a_run_is_collected_after_it(thresholds):
    class Node:
        me: object = None

    collected: list[bool] = []
    held = [Node()]
    held[0].me = held[0]  # a cycle, alive when the run starts
    alive = weakref.ref(held[0], lambda _: collected.append(True))

    @task
    def drop() -> None:
        held.clear()  # now cyclic garbage, made of objects frozen by the run

    with Flow("f") as flow:
        drop()
    assert flow.run().is_successful()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None and collected == [True]


def test_a_process_that_froze_objects_itself_is_left_frozen(thresholds):
    with Flow("f") as flow:
        fails()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        flow.run()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
