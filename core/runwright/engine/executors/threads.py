"""A thread-pool executor that runs independent branches and mapped children in parallel.

Work is dispatched to the pool only once every future in its ``upstream_states`` is done
(a mapped parent's future is done once its children are), so a pool thread never blocks
waiting for work queued behind it: no deadlock however deep the graph or small the pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from runwright.engine.executors.base import Executor
from runwright.engine.state import Mapped


def _when_all_done(futures: list[Future[Any]], callback: Callable[[], None]) -> None:
    """Call ``callback`` (in the thread finishing the last one) once every future is done."""
    if not futures:
        callback()
        return
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Future[Any]) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            callback()

    for future in futures:
        future.add_done_callback(one_done)


def _resolved(value: Any) -> Any:
    return value.result() if isinstance(value, Future) else value


class ThreadExecutor(Executor):
    """Runs task runs on a pool of ``max_workers`` threads (default from ``[engine] threads``)."""

    returns_futures = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        if max_workers is None:
            from runwright.config import get_config

            max_workers = int(get_config().get_nested("engine.threads", 0) or 0) or min(32, (os.cpu_count() or 1) + 4)
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None

    @contextmanager
    def start(self) -> Iterator[None]:
        self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="runwright")
        try:
            yield
        finally:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _require_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            raise ValueError("This executor has not been started: use `with executor.start():`")
        return self._pool

    def submit(
        self, fn: Callable[..., Any], *args: Any, upstream_states: Mapping[Any, Any] | None = None, **kwargs: Any
    ) -> Future[Any]:
        pool = self._require_pool()
        outer: Future[Any] = Future()

        def run() -> None:
            if not outer.set_running_or_notify_cancel():
                return
            try:
                if upstream_states is None:
                    value = fn(*args, **kwargs)
                else:
                    resolved = {key: _resolved(value) for key, value in upstream_states.items()}
                    value = fn(*args, upstream_states=resolved, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                outer.set_exception(exc)
                return
            self._set_when_final(outer, value)

        def dispatch() -> None:
            pool.submit(run)

        pending = [f for f in (upstream_states or {}).values() if isinstance(f, Future) and not f.done()]
        _when_all_done(pending, dispatch)
        return outer

    @staticmethod
    def _set_when_final(outer: Future[Any], value: Any) -> None:
        """Resolve ``outer`` with ``value``; a Mapped state once its children are done too."""
        children = value.map_states if isinstance(value, Mapped) else None
        if not children or not isinstance(children[0], Future):
            outer.set_result(value)
            return

        def finish() -> None:
            try:
                value.map_states = [_resolved(child) for child in children]
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                outer.set_exception(exc)
                return
            outer.set_result(value)

        _when_all_done([c for c in children if isinstance(c, Future)], finish)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Future[Any]]:
        return [self.submit(fn, *args) for args in zip(*iterables, strict=False)]

    def wait(self, futures: Any) -> Any:
        if isinstance(futures, Future):
            return futures.result()
        if isinstance(futures, dict):
            return {key: _resolved(value) for key, value in futures.items()}
        if isinstance(futures, (list, tuple)):
            return type(futures)(_resolved(value) for value in futures)
        return futures
