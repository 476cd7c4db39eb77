"""Registers the two cache validators the core needs: ``never_use`` and ``duration_only``.

The ``runwright-cache`` plugin adds the input- and parameter-based validators and policies.
"""

from __future__ import annotations

from collections.abc import Callable

from runwright.engine.cache_validators import duration_only, never_use
from runwright.hookspecs import hookimpl


@hookimpl
def runwright_register_cache_validators(register: Callable[..., None]) -> None:
    register("never_use", never_use)
    register("duration_only", duration_only)
