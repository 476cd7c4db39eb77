"""States as the server stores them: their results stored first (the writer's batches, the
flow run's writes and the client's ``State`` arguments all go through here)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.state import State

logger = logging.getLogger("runwright.cloud.writer")


def store_results(state: State, checkpoint: bool) -> None:
    """Store what a state needs on the server before it is serialized.

    A Cached state's result and the ``cached_inputs`` of Pending, Retrying, TimedOut and
    Cached states are always stored; a Success's result when ``checkpoint`` is set. Only the
    :class:`~runwright.engine.result.Result` objects gain their stored location: the state
    itself is never replaced or changed (unlike the seed's ``prepare_state_for_cloud``).
    """
    from runwright.engine.result import Result
    from runwright.engine.state import Cached, Mapped, Success
    from runwright.plugins import get_plugin_manager

    results = get_plugin_manager().results
    result = state._result
    if isinstance(result, Result) and (
        isinstance(state, Cached) or (checkpoint and isinstance(state, Success) and not isinstance(state, Mapped))
    ):
        results.store(result)
    inputs = getattr(state, "cached_inputs", None)
    if inputs:
        for value in inputs.values():
            if isinstance(value, Result):
                results.store(value)


def serialize_for_server(state: State, checkpoint: bool, what: str) -> dict[str, Any]:
    """The state as the server stores it, its results stored first; a result that cannot be
    stored is logged and the state goes without it (resume then re-runs the task)."""
    try:
        store_results(state, checkpoint)
    except Exception as exc:  # noqa: BLE001 - reporting must not break the run
        logger.warning("Could not store the result of %s (%s); its %s state is recorded without it", what, exc, type(state).__name__)
    return state.serialize()
