"""Results: a task's value together with the handler that can store it.

* :class:`Result` holds a raw value in memory, and, once stored, the :class:`SafeResult`
  (location + handler) it was written to.
* :class:`SafeResult` holds only a location (a URI, or a JSON string for the JSON handler)
  and the handler that can read it back.
* :data:`NoResult` means "no computation happened", which is different from a result of
  ``None``.

Results are plain data. Writing and reading are a service's job: a :class:`ResultStore`
(``runner.results``, ``pm.results``) writes and reads through the ``runwright_result_write``
/ ``runwright_result_read`` hooks, so plugins can observe or redirect storage. The runners
and plugins always pass theirs; ``to_result()`` and ``store_safe_value()`` without a store
(the seed's API, for user code and tests) use the process-wide plugin manager's store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.result_handlers import ResultHandler
    from runwright.plugins.results import ResultStore

_default_store: Callable[[], ResultStore] | None = None


def set_default_result_store(provider: Callable[[], ResultStore]) -> None:
    """Name the function that returns the process-wide store (``runwright.plugins`` does,
    on import; the engine never imports the plugin host)."""
    global _default_store
    _default_store = provider


def default_result_store() -> ResultStore:
    """The process-wide result store, for callers that were given none."""
    if _default_store is None:
        raise RuntimeError("No result store: import runwright (which sets up the plugin host) first")
    return _default_store()


class ResultInterface:
    """What every result offers: ``value``, ``to_result()`` and ``store_safe_value()``."""

    # no __dict__ for a Result (it has slots: a run keeps one per task); SafeResult has one
    __slots__ = ()

    value: Any
    result_handler: ResultHandler | None

    def to_result(self, store: ResultStore | None = None) -> ResultInterface:
        return self

    def store_safe_value(self, store: ResultStore | None = None) -> None:
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

    def store_safe_value(self, store: ResultStore | None = None) -> None:
        """Write the value with its handler once (through ``store``, default: the
        process-wide one); later calls do nothing."""
        if self.safe_value is NoResult:
            (store or default_result_store()).store(self)


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

    def to_result(self, store: ResultStore | None = None) -> ResultInterface:
        """The value read back (through ``store``, default: the process-wide one) as a
        Result that keeps this location."""
        return (store or default_result_store()).load(self)


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

    def to_result(self, store: ResultStore | None = None) -> NoResultType:
        return self


NoResult = NoResultType()
