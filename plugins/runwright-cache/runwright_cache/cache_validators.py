"""The seed's cache validators, comparing raw values.

A validator has the signature ``(state: Cached, inputs: dict, parameters: dict) -> bool``:
``state`` is a cached candidate, ``inputs`` the task's inputs (raw values, by argument name)
and ``parameters`` the flow run's parameters. A candidate's ``cached_inputs`` hold Result
objects; their values are compared (a stored input is read back through its handler, and an
input that cannot be read makes the candidate invalid rather than failing the task).

All of them are registered by name (``@task(cache_validator="all_inputs")``). The factories
``partial_inputs_only`` and ``partial_parameters_only`` are registered as the validator they
return without ``validate_on`` (which checks expiry only); pass ``validate_on`` in code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runwright.engine.cache_validators import duration_only, never_use
from runwright.engine.result import NoResult, ResultInterface
from runwright.engine.state import Cached
from runwright.plugins import get_plugin_manager

__all__ = [
    "Validator",
    "all_inputs",
    "all_parameters",
    "duration_only",
    "never_use",
    "partial_inputs_only",
    "partial_parameters_only",
]

Validator = Callable[[Cached, "dict[str, Any] | None", "dict[str, Any] | None"], bool]

logger = logging.getLogger("runwright.cache")


class _Unreadable(Exception):
    """A cached input's stored value could not be read back."""


def raw_value(value: Any) -> Any:
    """The raw value of ``value``: a Result's value, a stored (safe) result read back, or
    ``value`` itself. Raises :class:`_Unreadable` when a stored value cannot be read."""
    if not isinstance(value, ResultInterface) or value is NoResult:
        return value
    try:
        return get_plugin_manager().results.load(value).value
    except Exception as exc:
        raise _Unreadable(str(exc)) from exc


def raw_values(values: Mapping[str, Any] | None, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """``values`` with every Result replaced by its raw value (only ``keys`` when given)."""
    values = values or {}
    if keys is not None:
        return {k: raw_value(values[k]) for k in keys if k in values}
    return {k: raw_value(v) for k, v in values.items()}


def _equal(cached: Mapping[str, Any] | None, current: Mapping[str, Any] | None, keys: Iterable[str] | None = None) -> bool:
    keys = list(keys) if keys is not None else None
    try:
        mine = raw_values(cached, keys)
    except _Unreadable as exc:
        logger.warning("A cached input could not be read back (%s); the cache entry is invalid.", exc)
        return False
    return mine == raw_values(current, keys)


def all_inputs(state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None) -> bool:
    """Valid while not expired and the cached inputs equal the current ones (same keys)."""
    return duration_only(state, inputs, parameters) and _equal(state.cached_inputs, inputs)


def all_parameters(state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None) -> bool:
    """Valid while not expired and the cached parameters equal the current ones."""
    return duration_only(state, inputs, parameters) and _equal(state.cached_parameters, parameters)


def _names(validate_on: Iterable[str] | str | None) -> list[str] | None:
    if validate_on is None:
        return None
    return [validate_on] if isinstance(validate_on, str) else list(validate_on)


def partial_inputs_only(validate_on: Iterable[str] | str | None = None) -> Validator:
    """A validator: not expired, and the ``validate_on`` inputs equal (all of them when None
    means: expiry only, as in the seed). An input present on one side only is a mismatch."""
    names = _names(validate_on)

    def partial_inputs_validator(state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        return names is None or _equal(state.cached_inputs, inputs or {}, names)

    partial_inputs_validator.__qualname__ = f"partial_inputs_only(validate_on={names!r})"
    return partial_inputs_validator


def partial_parameters_only(validate_on: Iterable[str] | str | None = None) -> Validator:
    """A validator: not expired, and the ``validate_on`` parameters equal (None: expiry only)."""
    names = _names(validate_on)

    def partial_parameters_validator(
        state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None
    ) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        return names is None or _equal(state.cached_parameters, parameters or {}, names)

    partial_parameters_validator.__qualname__ = f"partial_parameters_only(validate_on={names!r})"
    return partial_parameters_validator


#: The validators registered by name.
VALIDATORS: dict[str, Validator] = {
    "never_use": never_use,
    "duration_only": duration_only,
    "all_inputs": all_inputs,
    "all_parameters": all_parameters,
    "partial_inputs_only": partial_inputs_only(),
    "partial_parameters_only": partial_parameters_only(),
}
