"""The state hierarchy of task and flow runs.

::

    State
    ├─ Pending(cached_inputs)            is_pending
    │  ├─ Paused
    │  └─ Scheduled(start_time)          is_scheduled
    │     ├─ Resume
    │     └─ Retrying(run_count)         is_retrying
    ├─ _MetaState(state)                 is_meta_state
    │  ├─ ClientFailed
    │  ├─ Submitted
    │  └─ Queued(start_time)
    ├─ Running                           is_running
    └─ Finished                          is_finished
       ├─ Success                        is_successful
       │  ├─ Cached(...)                 is_cached
       │  ├─ Mapped(map_states)          is_mapped
       │  └─ Skipped                     is_skipped
       └─ Failed                         is_failed
          ├─ Aborted
          ├─ TimedOut(cached_inputs)
          └─ TriggerFailed

Every ``is_*`` predicate is an ``isinstance`` check, so it holds for subclasses too.
"""

from __future__ import annotations

import datetime
from typing import Any

from runwright.engine.result import NoResult, Result, ResultInterface

UTC = datetime.UTC

#: per state class, the names of its slots (see State._attributes)
_SLOTS: dict[type, tuple[str, ...]] = {}


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def as_utc(value: datetime.datetime) -> datetime.datetime:
    """A timezone-aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _slot_names(cls: type) -> tuple[str, ...]:
    """The attributes the classes of ``cls``'s MRO keep in slots."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__slots__", ()):
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return tuple(names)


class State:
    """Base of all states: a message and a result.

    The engine's states keep their attributes in slots (a state is about half the size of
    one with a ``__dict__``: a wide flow's run keeps one per task); a subclass that declares
    no ``__slots__`` of its own has a ``__dict__`` as usual. Pickles, copies and equality
    see the same attributes as ever (``__getstate__`` gives them as a dict)."""

    __slots__ = ("_result", "message")

    color = "#000000"

    def __init__(self, message: str | None = None, result: Any = NoResult) -> None:
        self.message = message
        self._result: ResultInterface = result if isinstance(result, ResultInterface) else Result(result)

    # -- the result ---------------------------------------------------------------------
    @property
    def result(self) -> Any:
        return self._result.value

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value if isinstance(value, ResultInterface) else Result(value)

    # -- comparison and display -----------------------------------------------------------
    def _attributes(self) -> dict[str, Any]:
        """Every attribute the state holds (its slots, then its ``__dict__`` if it has one)."""
        cls = type(self)
        names = _SLOTS.get(cls)
        if names is None:
            names = _SLOTS[cls] = _slot_names(cls)
        found = {name: getattr(self, name) for name in names if hasattr(self, name)}
        own = getattr(self, "__dict__", None)
        if own:
            found.update(own)
        return found

    def _public_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self._attributes().items() if not k.startswith("_") and k not in ("message", "result")}

    def __getstate__(self) -> dict[str, Any]:
        return self._attributes()

    def __setstate__(self, state: dict[str, Any] | tuple[Any, Any]) -> None:
        if isinstance(state, tuple):  # (dict, slots), as the default protocol gives them
            attributes: dict[str, Any] = {}
            for part in state:
                attributes.update(part or {})
            state = attributes
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, State)
        return self._result.value == other._result.value and self._public_fields() == other._public_fields()

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        if self.message:
            return f'<{type(self).__name__}: "{self.message}">'
        return f"<{type(self).__name__}>"

    # -- predicates -----------------------------------------------------------------------
    def is_pending(self) -> bool:
        return isinstance(self, Pending)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    def is_scheduled(self) -> bool:
        return isinstance(self, Scheduled)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_running(self) -> bool:
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        return isinstance(self, Failed)

    def is_cancelled(self) -> bool:
        return isinstance(self, Cancelled)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_skipped(self) -> bool:
        return isinstance(self, Skipped)

    def is_meta_state(self) -> bool:
        return isinstance(self, _MetaState)

    def is_submitted(self) -> bool:
        return isinstance(self, Submitted)

    # -- serialization --------------------------------------------------------------------
    def serialize(self) -> dict[str, Any]:
        """A JSON-compatible dict; a result that was never stored is sent as NoResult."""
        from runwright.engine.serialization import serialize_state

        return serialize_state(self)

    @staticmethod
    def deserialize(data: dict[str, Any]) -> State:
        from runwright.engine.serialization import deserialize_state

        return deserialize_state(data)


def copy_state(state: State) -> State:
    """A shallow copy of ``state``: what ``copy.copy`` makes of a state, without its generic
    protocol (a mapped parent copies an upstream state once per child)."""
    cls = state.__class__
    copied = cls.__new__(cls)
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = _slot_names(cls)
    for name in names:  # the engine's states: attributes in slots (see State)
        try:
            value = getattr(state, name)
        except AttributeError:  # a slot never set
            continue
        object.__setattr__(copied, name, value)
    own = getattr(state, "__dict__", None)
    if own:  # a subclass without __slots__
        copied.__dict__.update(own)
    return copied


# ---------------------------------------------------------------------------------------
class Pending(State):
    """Waiting to run; ``cached_inputs`` keeps inputs for a later run (retries, pauses)."""

    __slots__ = ("cached_inputs",)

    color = "#d3d3d3"

    def __init__(
        self, message: str | None = None, result: Any = NoResult, cached_inputs: dict[str, Any] | None = None
    ) -> None:
        # State.__init__, inlined: every task run makes a Pending state
        self.message = message
        self._result: ResultInterface = result if isinstance(result, ResultInterface) else Result(result)
        self.cached_inputs = cached_inputs


class Paused(Pending):
    """Waiting for a manual resume (the ``manual_only`` trigger)."""

    __slots__ = ()

    color = "#cfd8dc"


class Scheduled(Pending):
    """Pending until ``start_time`` (UTC; now when not given)."""

    __slots__ = ("start_time",)

    color = "#b0c4de"

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        start_time: datetime.datetime | None = None,
        cached_inputs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, result, cached_inputs)
        self.start_time = as_utc(start_time) if start_time is not None else utcnow()


class Resume(Scheduled):
    """Resume a Paused task: its trigger is skipped via ``context.resume``."""

    __slots__ = ()

    color = "#20b2aa"


class Retrying(Scheduled):
    """A failed task that will run again; ``run_count`` counts the attempts made so far."""

    __slots__ = ("run_count",)

    color = "#ffa500"

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        start_time: datetime.datetime | None = None,
        cached_inputs: dict[str, Any] | None = None,
        run_count: int | None = None,
    ) -> None:
        super().__init__(message, result, start_time, cached_inputs)
        if run_count is None:
            from runwright.context import context

            run_count = context.get("task_run_count", 1)
        self.run_count = run_count


# ---------------------------------------------------------------------------------------
class _MetaState(State):
    """A state that wraps another one; ``initialize_run`` unwraps it."""

    __slots__ = ("state",)

    color = "#00ced1"

    def __init__(self, message: str | None = None, result: Any = NoResult, state: State | None = None) -> None:
        super().__init__(message, result)
        self.state = state


class ClientFailed(_MetaState):
    """The backend refused or could not record ``state``; the run stopped there."""

    __slots__ = ()

    color = "#ff4500"


class Submitted(_MetaState):
    """Submitted for execution."""

    __slots__ = ()


class Queued(_MetaState):
    """Queued until ``start_time``."""

    __slots__ = ("start_time",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        state: State | None = None,
        start_time: datetime.datetime | None = None,
    ) -> None:
        super().__init__(message, result, state)
        self.start_time = start_time or utcnow()


# ---------------------------------------------------------------------------------------
class Running(State):
    __slots__ = ()

    color = "#00ff00"


class Finished(State):
    __slots__ = ()

    color = "#ba55d3"


class Success(Finished):
    __slots__ = ()

    color = "#008000"


class Cached(Success):
    """A successful result that later runs may reuse while it is valid."""

    __slots__ = ("cached_inputs", "cached_parameters", "cached_result_expiration")

    color = "#ffa500"

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        cached_inputs: dict[str, Any] | None = None,
        cached_parameters: dict[str, Any] | None = None,
        cached_result_expiration: datetime.datetime | None = None,
    ) -> None:
        super().__init__(message, result)
        self.cached_inputs = cached_inputs
        self.cached_parameters = cached_parameters
        self.cached_result_expiration = (
            as_utc(cached_result_expiration) if cached_result_expiration is not None else None
        )


class Mapped(Success):
    """The parent of mapped children; ``map_states`` holds one state per child."""

    __slots__ = ("map_states",)

    color = "#97fff5"

    def __init__(self, message: str | None = None, result: Any = NoResult, map_states: list[Any] | None = None) -> None:
        super().__init__(message, result)
        self.map_states: list[Any] = map_states if map_states is not None else []

    @property
    def n_map_states(self) -> int:
        return len(self.map_states)


class Skipped(Success):
    __slots__ = ()

    color = "#f0fff0"


class Cancelled(Finished):
    """Stopped on request (``runwright runs cancel``) before it finished; a retry runs it again."""

    __slots__ = ()

    color = "#808080"


class Failed(Finished):
    __slots__ = ()

    color = "#ff0000"


class Aborted(Failed):
    __slots__ = ()

    color = "#c42800"


class TimedOut(Failed):
    __slots__ = ("cached_inputs",)

    color = "#cdb4ff"

    def __init__(
        self, message: str | None = None, result: Any = NoResult, cached_inputs: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, result)
        self.cached_inputs = cached_inputs


class TriggerFailed(Failed):
    __slots__ = ()

    color = "#c42800"


ALL_STATES: dict[str, type[State]] = {
    cls.__name__: cls
    for cls in (
        State, Pending, Paused, Scheduled, Resume, Retrying, _MetaState, ClientFailed, Submitted, Queued,
        Running, Finished, Success, Cached, Mapped, Skipped, Cancelled, Failed, Aborted, TimedOut, TriggerFailed,
    )
}
