"""Triggers decide, from the states of a task's upstream tasks, whether it may run.

A trigger takes a set of upstream states and returns True, or raises a signal:
``TRIGGERFAIL`` (the task becomes TriggerFailed) or ``PAUSE`` (``manual_only``).
"""

from __future__ import annotations

from collections.abc import Callable, Set

from runwright.context import context
from runwright.engine import signals
from runwright.engine.state import State, Success

Trigger = Callable[[Set[State]], bool]


def all_successful(upstream_states: Set[State]) -> bool:
    """Runs when every upstream task succeeded (the default)."""
    if not all(isinstance(s, Success) for s in upstream_states):
        raise signals.TRIGGERFAIL('Trigger was "all_successful" but some of the upstream tasks failed.')
    return True


def all_failed(upstream_states: Set[State]) -> bool:
    """Runs when every upstream task failed."""
    if not all(s.is_failed() for s in upstream_states):
        raise signals.TRIGGERFAIL('Trigger was "all_failed" but some of the upstream tasks succeeded.')
    return True


def all_finished(upstream_states: Set[State]) -> bool:
    """Runs when every upstream task finished, whatever the outcome."""
    if not all(s.is_finished() for s in upstream_states):
        raise signals.TRIGGERFAIL('Trigger was "all_finished" but some of the upstream tasks were not finished.')
    return True


always_run = all_finished


def any_successful(upstream_states: Set[State]) -> bool:
    """Runs when at least one upstream task succeeded (or there are none)."""
    if upstream_states and not any(s.is_successful() for s in upstream_states):
        raise signals.TRIGGERFAIL('Trigger was "any_successful" but none of the upstream tasks succeeded.')
    return True


def any_failed(upstream_states: Set[State]) -> bool:
    """Runs when at least one upstream task failed (or there are none)."""
    if upstream_states and not any(s.is_failed() for s in upstream_states):
        raise signals.TRIGGERFAIL('Trigger was "any_failed" but none of the upstream tasks failed.')
    return True


def manual_only(upstream_states: Set[State]) -> bool:
    """Pauses the task until it is resumed (``Resume`` state, ``context.resume``)."""
    if context.get("resume"):
        return True
    raise signals.PAUSE('Trigger function is "manual_only"')


def _count_trigger(name: str, predicate: Callable[[State], bool], at_least: float | None, at_most: float | None) -> Trigger:
    def trigger(upstream_states: Set[State]) -> bool:
        if not upstream_states:
            return True
        total = len(upstream_states)
        low = 0.0 if at_least is None else (at_least * total if at_least < 1 else at_least)
        high = float(total) if at_most is None else (at_most * total if at_most < 1 else at_most)
        count = sum(1 for s in upstream_states if predicate(s))
        if not low <= count <= high:
            raise signals.TRIGGERFAIL(
                f'Trigger was "{name}" but {count} of {total} upstream tasks matched '
                f"(wanted between {low:g} and {high:g})."
            )
        return True

    trigger.__name__ = name
    return trigger


def some_failed(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Runs when the number of failed upstream tasks is within bounds (a bound < 1 is a fraction)."""
    return _count_trigger("some_failed", State.is_failed, at_least, at_most)


def some_successful(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Runs when the number of successful upstream tasks is within bounds (a bound < 1 is a fraction)."""
    return _count_trigger("some_successful", State.is_successful, at_least, at_most)
