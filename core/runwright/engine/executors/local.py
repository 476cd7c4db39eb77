"""The default executor: runs everything immediately, in the calling thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runwright.engine.executors.base import Executor


class LocalExecutor(Executor):
    """``submit`` calls the function at once and returns its value; ``wait`` is the identity."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        return [fn(*args) for args in zip(*iterables, strict=False)]

    def wait(self, futures: Any) -> Any:
        return futures
