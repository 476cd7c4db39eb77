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
