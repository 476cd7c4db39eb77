"""runwright-local's hook implementations: registers ``LocalResultHandler`` as ``local``."""

from __future__ import annotations

from collections.abc import Callable

from runwright import hookimpl
from runwright_local.handler import LocalResultHandler


@hookimpl
def runwright_register_result_handlers(register: Callable[..., None]) -> None:
    """Make ``result_handler = "local"`` and serialized ``{"type": "local"}`` resolve here."""
    register(LocalResultHandler, name="local")
