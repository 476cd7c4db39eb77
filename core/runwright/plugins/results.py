"""The result store: writing and reading results through one plugin manager's result hooks.

Results are plain data (:mod:`runwright.engine.result`); this object is the service that
stores them. Each plugin manager owns one (``pm.results``); a task runner reads its inputs
and writes its checkpoints through ``runner.results``, and plugins use the same object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runwright.config import get_config
from runwright.engine.result import NoResult, Result, ResultInterface, SafeResult
from runwright.plugins.errors import PluginError, UnknownNameError

if TYPE_CHECKING:
    from runwright.engine.result_handlers import ResultHandler
    from runwright.plugins.manager import RunwrightPluginManager


class ResultStore:
    """Stores and loads results with the ``runwright_result_write`` / ``_read`` hooks, and
    names result handler classes (for serialized states)."""

    __slots__ = ("_pm",)

    def __init__(self, pm: RunwrightPluginManager) -> None:
        self._pm = pm

    def store(self, result: ResultInterface) -> SafeResult:
        """Write a Result's value with its handler once (later calls return the same
        SafeResult) and remember where it went (``result.safe_value``). A SafeResult is
        already stored and NoResult has nothing to store: both are returned as they are."""
        if not isinstance(result, Result):
            return result  # type: ignore[return-value]
        safe = result.safe_value
        if safe is not NoResult:
            return safe
        handler = result.result_handler
        if handler is None:
            name = get_config().get_nested("engine.result_handler")
            if name:
                self._pm.result_handler_class(name)  # raises "not installed: pip install ..."
            raise ValueError(
                "This result has no result handler, so it cannot be stored: give the task or the "
                "flow a result_handler, or set [engine] result_handler in the config."
            )
        safe = SafeResult(self.write(result.value, handler), handler)
        result.safe_value = safe
        return safe

    def load(self, result: ResultInterface) -> ResultInterface:
        """A Result holding the value: a stored (safe) result is read back, keeping its
        location; a Result or NoResult is returned as it is."""
        if result is NoResult or not isinstance(result, SafeResult):
            return result
        handler = result.result_handler
        loaded = Result(self.read(result.value, handler), handler)
        loaded.safe_value = result
        return loaded

    def write(self, value: Any, handler: ResultHandler) -> str:
        """The location where the result-write hook stored ``value``."""
        location = self._pm.call_attributed("runwright_result_write", value=value, handler=handler)
        if location is None:
            raise PluginError("<none>", "runwright_result_write", RuntimeError("no plugin wrote the result"))
        return location  # type: ignore[no-any-return]

    def read(self, location: str, handler: ResultHandler | None = None) -> Any:
        """The value stored at ``location`` (``handler`` None: found by the URI's scheme)."""
        result: Result | None = self._pm.call_attributed("runwright_result_read", location=location, handler=handler)
        if result is None:
            raise UnknownNameError(f"No plugin could read the result at {location!r}")
        return result.value

    def handler_name(self, cls: type[ResultHandler]) -> str | None:
        """The name ``cls`` is registered under (None: not registered)."""
        return self._pm.result_handler_name(cls)

    def handler_class(self, name: str) -> type[ResultHandler] | None:
        """The handler class registered as ``name`` (None: not installed)."""
        return self._pm.result_handler_class(name, missing_ok=True)
