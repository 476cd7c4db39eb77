"""Results: a task's value together with the handler that can store it.

* :class:`Result` holds a raw value in memory, and, once stored, the :class:`SafeResult`
  (location + handler) it was written to.
* :class:`SafeResult` holds only a location (a URI, or a JSON string for the JSON handler)
  and the handler that can read it back.
* :data:`NoResult` means "no computation happened", which is different from a result of
  ``None``.

Writing and reading go through the ``runwright_result_write`` / ``runwright_result_read``
hooks, so plugins can observe or redirect storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.result_handlers import ResultHandler
    from runwright.plugins import RunwrightPluginManager

_plugins_module: Any = None


def _plugin_manager() -> RunwrightPluginManager:
    """The process-wide plugin manager (``runwright.plugins`` imports this module, so it is
    imported on first use; a function-level import would cost a microsecond per result)."""
    global _plugins_module
    if _plugins_module is None:
        import runwright.plugins

        _plugins_module = runwright.plugins
    return _plugins_module.get_plugin_manager()  # type: ignore[no-any-return]


class ResultInterface:
    """What every result offers: ``value``, ``to_result()`` and ``store_safe_value()``."""

    value: Any
    result_handler: ResultHandler | None

    def to_result(self) -> ResultInterface:
        return self

    def store_safe_value(self) -> None:
        return None

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        mine = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        theirs = {k: v for k, v in vars(other).items() if not k.startswith("_")}
        return mine == theirs

    def __hash__(self) -> int:
        return id(self)


class Result(ResultInterface):
    """A value produced in this process, and (after ``store_safe_value``) where it is stored."""

    __slots__ = ("result_handler", "safe_value", "value")

    def __init__(self, value: Any, result_handler: ResultHandler | None = None) -> None:
        self.value = value
        self.result_handler = result_handler
        self.safe_value: SafeResult = NoResult

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, Result)
        return (
            self.value == other.value
            and self.result_handler == other.result_handler
            and self.safe_value == other.safe_value
        )

    __hash__ = ResultInterface.__hash__

    def __repr__(self) -> str:
        return f"<Result: {self.value!r}>"

    def store_safe_value(self) -> None:
        """Write the value with its handler once; later calls do nothing."""
        if self.safe_value is not NoResult:
            return
        if self.result_handler is None:
            from runwright.config import get_config

            name = get_config().get_nested("engine.result_handler")
            if name:
                _plugin_manager().result_handler_class(name)  # raises "not installed: pip install ..."
            raise ValueError(
                "This result has no result handler, so it cannot be stored: give the task or the "
                "flow a result_handler, or set [engine] result_handler in the config."
            )
        location = _plugin_manager().write_result(self.value, self.result_handler)
        self.safe_value = SafeResult(location, self.result_handler)


class SafeResult(ResultInterface):
    """A stored value: its location and the handler that reads it."""

    def __init__(self, value: Any, result_handler: ResultHandler | None) -> None:
        self.value = value
        self.result_handler = result_handler

    @property
    def safe_value(self) -> SafeResult:  # type: ignore[override]
        return self

    def __repr__(self) -> str:
        return f"<SafeResult: {self.value!r}>"

    def to_result(self) -> ResultInterface:
        """Read the value back through the result-read hook; the Result keeps this location."""
        value = _plugin_manager().read_result(self.value, self.result_handler)
        result = Result(value, self.result_handler)
        result.safe_value = self
        return result


class NoResultType(SafeResult):
    """The singleton :data:`NoResult`: no computation happened."""

    _instance: NoResultType | None = None

    def __new__(cls) -> NoResultType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __init__(self) -> None:
        pass

    @property  # type: ignore[override]
    def value(self) -> NoResultType:  # type: ignore[override]
        return self

    @property  # type: ignore[override]
    def result_handler(self) -> None:  # type: ignore[override]
        return None

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<No result>"

    def __str__(self) -> str:
        return "NoResult"

    def __reduce__(self) -> str:
        return "NoResult"

    def to_result(self) -> NoResultType:
        return self


NoResult = NoResultType()
