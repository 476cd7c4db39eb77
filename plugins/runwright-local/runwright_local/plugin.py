"""runwright-local's hook implementations: registers ``LocalResultHandler`` as ``local``."""

from __future__ import annotations

from collections.abc import Callable

from runwright import hookimpl
from runwright_local.handler import CONFIG_DEFAULTS, LocalResultHandler


@hookimpl
def runwright_register_result_handlers(register: Callable[..., None]) -> None:
    """Make ``result_handler = "local"`` and serialized ``{"type": "local"}`` resolve here."""
    register(LocalResultHandler, name="local")


@hookimpl
def runwright_register_config(register: Callable[..., None]) -> None:
    """``[plugins.local]``: ``dir`` and ``prefix``."""
    register("plugins.local", CONFIG_DEFAULTS)
