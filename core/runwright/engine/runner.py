"""The runner base: state-handler chaining and the step decorator shared by flow and task runners."""

from __future__ import annotations

import collections.abc
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from runwright.backends import BackendError
from runwright.context import context
from runwright.engine import signals
from runwright.engine.signals import ENDRUN
from runwright.engine.state import Failed, Pending, State
from runwright.plugins.errors import PluginError

if TYPE_CHECKING:
    from runwright.backends import Backend

F = TypeVar("F", bound=Callable[..., State])


@functools.cache
def _logger(name: str) -> logging.Logger:
    return logging.getLogger(f"runwright.{name}")


#: the logger of each runner class (a dict lookup per runner made: one per task run)
_LOGGERS: dict[type, logging.Logger] = {}


def raise_on_exception() -> bool:
    """True when ``context.raise_on_exception`` asks runners to re-raise errors (debugging)."""
    return bool(context.get("raise_on_exception", False))


class Runner:
    """Base class of FlowRunner and TaskRunner.

    Every transition produced by a step goes through :meth:`handle_state_change` exactly
    once: the target's own handlers (the flow's or the task's), then the runner's
    ``state_handlers``, then the plugins' state-change hook.
    """

    #: The registered name of the backend runs of this class use (see
    #: :mod:`runwright.backends`); None: the run context's, else ``[engine] backend``.
    backend: str | None = None

    def __init__(self, state_handlers: list[Callable[..., Any]] | None = None) -> None:
        if state_handlers is not None and not isinstance(state_handlers, collections.abc.Sequence):
            raise TypeError("state_handlers should be iterable.")
        self.state_handlers: list[Callable[..., Any]] = [] if state_handlers is None else list(state_handlers)
        cls = type(self)
        logger = _LOGGERS.get(cls)
        if logger is None:
            logger = _LOGGERS[cls] = _logger(cls.__name__)
        self.logger = logger
        #: the backend object of the current run (set when the run starts)
        self.active_backend: Backend | None = None
        #: ``active_backend`` when it records runs, else None: the runners call it directly
        self._recording: Backend | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Dask pickles runners (a flow runner's ``run_task``): a backend object stays in its
        # process; a task run on a worker resolves the run's backend name there.
        state = self.__dict__.copy()
        state["active_backend"] = state["_recording"] = None
        # what this process's plugin manager resolved (hooks, the run's backend): resolved again there
        for key in ("_hooks", "_task_hooks", "_run_backend", "_task_backend"):
            if key in state:
                state[key] = None
        return state

    def _use_backend(self, backend: Backend) -> Backend:
        self.active_backend = backend
        self._recording = backend if backend.records_runs else None
        return backend

    def call_backend(
        self, backend: Backend, method: str, *args: Any, passthrough: tuple[type[BaseException], ...] = (ENDRUN,)
    ) -> Any:
        """``backend.<method>(*args)``; an error other than ``passthrough`` becomes a
        :class:`~runwright.backends.BackendError` naming the backend and the method."""
        try:
            return getattr(backend, method)(*args)
        except passthrough:
            raise
        except Exception as exc:
            raise BackendError(backend, method, exc) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def initialize_run(self, state: State | None, context: dict[str, Any]) -> tuple[State, dict[str, Any]]:
        """Unwrap meta states (Submitted, Queued, ClientFailed); None becomes Pending."""
        while state is not None and state.is_meta_state():
            state = state.state  # type: ignore[attr-defined]
        return (state if state is not None else Pending()), context

    def describe_target(self) -> str:
        """What this runner runs, for log messages ("Task 'load[3]'", "Flow 'etl'")."""
        return type(self).__name__

    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        """Call the flow's or task's own handlers; subclasses override. Runs first."""
        return new_state

    def notify_plugins(self, old_state: State, new_state: State) -> None:
        """Call the plugins' state-change hook (subclasses choose the hook)."""

    def handle_state_change(self, old_state: State, new_state: State) -> State:
        try:
            new_state = self.call_runner_target_handlers(old_state, new_state)
            for handler in self.state_handlers:
                new_state = handler(self, old_state, new_state) or new_state
            self.notify_plugins(old_state, new_state)
        except (ENDRUN, signals.PAUSE):
            raise
        except signals.RunwrightSignal as signal:
            if raise_on_exception():
                raise
            return signal.state
        except Exception as exc:
            if isinstance(exc, PluginError):
                self.logger.error("%s", exc)
                raise ENDRUN(Failed(str(exc), result=exc)) from exc
            self.logger.debug("Exception raised while calling state handlers: %r", exc)
            if raise_on_exception():
                raise
            raise ENDRUN(Failed(f"Exception raised while calling state handlers: {exc!r}", result=exc)) from exc
        return new_state


def call_state_handlers(method: F) -> F:
    """Decorate a pipeline step so that any new state it produces goes through the handlers.

    A step returns a state, raises a signal (its state is taken), raises ENDRUN (its state is
    taken, and ENDRUN is raised again after the handlers), or raises anything else (which
    becomes ``Failed("Unexpected error: ...")``). No transition (the same object) calls no
    handler.
    """

    @functools.wraps(method)
    def step(self: Runner, state: State, *args: Any, **kwargs: Any) -> State:
        endrun = False
        try:
            new_state = method(self, state, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - step_raised applies the rules above
            new_state, endrun = step_raised(self, exc)
        if new_state is not state:
            new_state = self.handle_state_change(state, new_state)
        if endrun:
            raise ENDRUN(new_state)
        return new_state

    return step  # type: ignore[return-value]


def step_raised(runner: Runner, exc: Exception) -> tuple[State, bool]:
    """What a step that raised ``exc`` produced (the rules of :func:`call_state_handlers`):
    the new state, and whether ENDRUN is raised again after the handlers. Under
    ``raise_on_exception`` a signal or an error is raised again instead. Call it only from
    the ``except`` block that caught ``exc``."""
    if isinstance(exc, ENDRUN):
        return exc.state, True
    if isinstance(exc, signals.RunwrightSignal):
        runner.logger.debug("%s signal raised: %r", type(exc).__name__, exc)
        if raise_on_exception():
            raise exc
        return exc.state, False
    # the user's own failing code: its whole traceback, at ERROR
    runner.logger.error("%s: unexpected error: %r", runner.describe_target(), exc, exc_info=exc)
    if raise_on_exception():
        raise exc
    return Failed(f"Unexpected error: {exc!r}", result=exc), False
