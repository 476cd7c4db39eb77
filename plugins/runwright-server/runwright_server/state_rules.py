"""Which states the server stores, and which transitions it refuses.

**Types.** A state's ``"type"`` must be the name of one of runwright's state classes
(:data:`runwright.engine.state.ALL_STATES`, the names the engine can deserialize); so must a
meta state's inner ``"state"``.

**Messages.** A state's ``"message"`` longer than :data:`MAX_MESSAGE_CHARS` is cut to that
length (its end replaced by a note saying how long it was): a run's state is stored twice
(the run's row and its history), and a cut message never makes a batch of other writes fail.
A whole state must encode to at most :data:`MAX_STATE_CHARS` characters of JSON (else 422).

**Transitions.** A finished run (a ``Finished`` state: Success, Cached, Mapped, Skipped,
Failed, ...) goes back only through a retry or a resume: to a ``Pending`` state (Pending,
Scheduled, Retrying, Resume, Paused) or another finished state (a mapped parent mapped
again, a cache found invalid). Moving it straight to ``Running`` or to a meta state
(Submitted, Queued, ClientFailed) is refused, except from the ``Failed`` state the server's
own zombie sweeper wrote (``"no heartbeat for N s"``), which the runner resuming the run
claims directly. Every other transition is the writer's business (version-checked).
"""

from __future__ import annotations

from typing import Any

from runwright.engine.state import ALL_STATES, Finished, Running, _MetaState

STATE_TYPES: frozenset[str] = frozenset(ALL_STATES)
FINISHED_TYPES: tuple[str, ...] = tuple(sorted(name for name, cls in ALL_STATES.items() if issubclass(cls, Finished)))
#: types that may not follow a finished state (except the sweeper's Failed)
REVIVING_TYPES: frozenset[str] = frozenset(
    name for name, cls in ALL_STATES.items() if issubclass(cls, (Running, _MetaState))
)
MAX_MESSAGE_CHARS = 16 * 1024
MAX_STATE_CHARS = 512 * 1024
#: how every state the zombie sweeper writes begins, as stored (see ``sweeper.failed_state``)
SWEPT_PREFIX = '{"type":"Failed","message":"no heartbeat for '


def check_state(value: dict[str, Any]) -> dict[str, Any]:
    """Validate a state's type (and a meta state's inner type); cut a long message."""
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in STATE_TYPES:
        raise ValueError(_unknown(kind))
    inner = value.get("state")
    if isinstance(inner, dict) and "type" in inner:
        inner_kind = inner.get("type")
        if not isinstance(inner_kind, str) or inner_kind not in STATE_TYPES:
            raise ValueError("inner " + _unknown(inner_kind))
    message = value.get("message")
    if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
        note = f"… [cut by the server: {len(message):,} characters]"
        value["message"] = message[: MAX_MESSAGE_CHARS - len(note)] + note
    return value


def _unknown(kind: object) -> str:
    shown = repr(kind)[:60] if not isinstance(kind, str) else repr(kind[:60])
    return f"state type {shown} is not a runwright state (known: {', '.join(sorted(STATE_TYPES))})"


def refused(old_type: str, old_text: str, new_type: str) -> bool:
    """True when a run in state ``old_type`` (stored as ``old_text``) may not go to ``new_type``."""
    return new_type in REVIVING_TYPES and old_type in FINISHED_TYPES and not old_text.startswith(SWEPT_PREFIX)


REFUSED_DETAIL = (
    "a finished run goes back to Running only through a retry or a resume (a Pending, Scheduled, Retrying or "
    "Resume state first), or from the Failed state of the server's zombie sweeper"
)
