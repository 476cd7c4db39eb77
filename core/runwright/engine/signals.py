"""Signals: exceptions a task (or trigger) raises to put itself in a given state.

Unlike the seed engine, a signal accepts ``result=`` (the seed raised TypeError); without
it, the signal itself is the state's result, so the traceback is kept.
"""

from __future__ import annotations

from typing import Any

from runwright.engine import state as _state


class RunwrightError(Exception):
    """Base of runwright's own errors."""


class RunwrightSignal(RunwrightError):
    """Raise to end the current step with ``self.state``."""

    _state_cls: type[_state.State] = _state.State

    def __init__(self, message: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(message)
        kwargs.setdefault("result", self)
        self.state = self._state_cls(message, *args, **kwargs)


class FAIL(RunwrightSignal):
    _state_cls = _state.Failed


class TRIGGERFAIL(FAIL):
    _state_cls = _state.TriggerFailed


class SUCCESS(RunwrightSignal):
    _state_cls = _state.Success


class RETRY(RunwrightSignal):
    """Always ends in Retrying (even past ``max_retries``); ``start_time`` defaults to now."""

    _state_cls = _state.Retrying


class SKIP(RunwrightSignal):
    _state_cls = _state.Skipped


class PAUSE(RunwrightSignal):
    _state_cls = _state.Paused


class ENDRUN(Exception):
    """Stop the runner's pipeline; the run's state is ``self.state``. Not a signal."""

    def __init__(self, state: _state.State) -> None:
        super().__init__(state)
        self.state = state
