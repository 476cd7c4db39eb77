"""The cache validators every task can use without plugins.

A validator has the signature ``(state: Cached, inputs: dict, parameters: dict) -> bool`` and
compares raw values. ``runwright-cache`` adds input-, parameter- and code-based ones.
"""

from __future__ import annotations

from typing import Any

from runwright.engine.state import Cached, utcnow


def never_use(state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None) -> bool:
    """Never reuse a cached result (the default when ``cache_for`` is not set)."""
    return False


def duration_only(state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None) -> bool:
    """Reuse while the cache has not expired (the default when ``cache_for`` is set)."""
    expiration = state.cached_result_expiration
    return expiration is None or expiration > utcnow()


def cache_key(validator: Any, task: Any, inputs: dict[str, Any], parameters: dict[str, Any]) -> str | None:
    """The cache key of a run of ``task`` with these raw inputs and parameters, when its
    validator is *keyed*, else None.

    A keyed validator offers ``compute_key(task, inputs, parameters) -> str`` (runwright-cache's
    policies, and its ``all_inputs`` / ``all_parameters``): two runs with the same key may share
    a cached result. A backend that keeps cached states itself (``answers_cache_checks``)
    stores the key with each Cached state and validates a candidate by comparing keys (and
    its expiry), with no need to read the candidate's inputs back; for any other validator it
    calls the validator. Exceptions of ``compute_key`` (an input that cannot be keyed)
    propagate: the caller then falls back to the validator.
    """
    compute = getattr(validator, "compute_key", None)
    if compute is None:
        return None
    key = compute(task, inputs, parameters)
    return key if isinstance(key, str) else None
