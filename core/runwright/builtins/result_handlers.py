"""Registers the result handlers that ship with the core: ``json``."""

from __future__ import annotations

from collections.abc import Callable

from runwright.engine.result_handlers import JSONResultHandler
from runwright.hookspecs import hookimpl


@hookimpl
def runwright_register_result_handlers(register: Callable[..., None]) -> None:
    register(JSONResultHandler, name="json")
