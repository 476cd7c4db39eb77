"""The default executor: runs everything immediately, in the calling thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runwright.engine.executors.base import Executor


class LocalExecutor(Executor):
    """``submit`` calls the function at once and returns its value; ``wait`` is the identity
    (upstream "futures" are the states themselves)."""

    def submit(
        self, fn: Callable[..., Any], *args: Any, upstream_states: Mapping[Any, Any] | None = None, **kwargs: Any
    ) -> Any:
        if upstream_states is None:
            return fn(*args, **kwargs)
        return fn(*args, upstream_states=upstream_states, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        return [fn(*args) for args in zip(*iterables, strict=False)]

    def wait(self, futures: Any) -> Any:
        return futures
