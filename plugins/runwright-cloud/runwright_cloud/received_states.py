"""States as the client reads them from the server: runwright ``State`` objects.

The server stores serialized states; :func:`state_from_server` rebuilds them with the
engine's deserializer. A state this process cannot rebuild — a state type or a result
handler it does not know (written by a newer runwright, or with a plugin not installed
here) — does not break the read: it becomes an :class:`UnknownState` that keeps the type
name, the message and the reason. Whoever needs the real state (resuming a run) calls
:func:`require_known`, which raises :class:`UnknownStateError` naming the type and the fix.
"""

from __future__ import annotations

from typing import Any

from runwright.engine.serialization import SerializationError
from runwright.engine.state import State


class UnknownStateError(SerializationError):
    """A state read from the server that this process cannot rebuild."""


class UnknownState(State):
    """A stored state this process cannot rebuild; ``type_name`` is the type it was stored as
    and ``reason`` why it could not be rebuilt. None of the ``is_*`` checks hold for it."""

    def __init__(self, type_name: str, message: str | None, reason: str) -> None:
        super().__init__(message=message)
        self.type_name = type_name
        self.reason = reason

    def __repr__(self) -> str:
        return f"<UnknownState {self.type_name!r}: {self.reason}>"


def state_from_server(data: Any) -> State:
    """The ``State`` a serialized state from the server stands for (see the module docstring)."""
    try:
        return State.deserialize(data)
    except SerializationError as exc:
        kind = data.get("type") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        return UnknownState(
            str(kind) if kind is not None else "?", message if isinstance(message, str) else None, str(exc)
        )


def state_name(state: State) -> str:
    """The state's type name as stored (for an :class:`UnknownState`, the type it was stored as)."""
    return state.type_name if isinstance(state, UnknownState) else type(state).__name__


def require_known(state: State, what: str) -> State:
    """``state`` unless it is an :class:`UnknownState`, which raises a clear error about ``what``."""
    if isinstance(state, UnknownState):
        raise UnknownStateError(
            f"The {what} is stored as a {state.type_name!r} state that this runwright cannot read ({state.reason}). "
            "Install the runwright version (and the plugins) that wrote it, then run again."
        )
    return state
