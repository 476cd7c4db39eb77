"""Default result write and read: ask the handler (or the handler for the URI's scheme)."""

from __future__ import annotations

from typing import Any

from runwright.engine.result import Result
from runwright.engine.result_handlers import ResultHandler
from runwright.hookspecs import hookimpl


@hookimpl(trylast=True)
def runwright_result_write(value: Any, handler: ResultHandler) -> str:
    return handler.write(value)


@hookimpl(trylast=True)
def runwright_result_read(location: str, handler: ResultHandler | None) -> Result:
    if handler is None:
        from runwright.plugins import get_plugin_manager

        handler = get_plugin_manager().handler_for_uri(location)
    return Result(handler.read(location), handler)
