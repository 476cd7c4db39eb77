"""A thread-pool executor that runs independent branches and mapped children in parallel.

Work is dispatched to the pool only once every future among its arguments (upstream task
states, mapped children) is done, so a pool thread never blocks waiting for work queued
behind it: no deadlock however deep the graph or small the pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from runwright.engine.executors.base import Executor
from runwright.engine.state import Mapped

_MAX_DEPTH = 3  # args -> upstream_states dict -> state; deeper values are user data


def _pending_futures(obj: Any, out: list[Future[Any]], depth: int = 0) -> None:
    """Collect unfinished futures in ``obj`` (looking inside finished ones' results too).

    Only the first few container levels are searched: futures sit in argument tuples,
    ``upstream_states`` dicts and Mapped states, never deep inside user data.
    """
    if isinstance(obj, Future):
        if obj.done():
            if obj.exception() is None:
                _pending_futures(obj.result(), out, 0)
        else:
            out.append(obj)
    elif depth >= _MAX_DEPTH:
        return
    elif isinstance(obj, Mapped):
        for value in obj.map_states:
            _pending_futures(value, out, depth + 1)
    elif isinstance(obj, dict):
        for value in obj.values():
            _pending_futures(value, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _pending_futures(value, out, depth + 1)


def resolve(obj: Any, depth: int = 0) -> Any:
    """Replace every (finished) future in ``obj`` by its result; Mapped children in place."""
    if isinstance(obj, Future):
        return resolve(obj.result(), 0)
    if depth >= _MAX_DEPTH:
        return obj
    if isinstance(obj, Mapped):
        if any(isinstance(s, (Future, Mapped)) for s in obj.map_states):
            obj.map_states = [resolve(s, depth + 1) for s in obj.map_states]
        return obj
    if isinstance(obj, dict):
        return {key: resolve(value, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [resolve(value, depth + 1) for value in obj]
    if isinstance(obj, tuple):
        return tuple(resolve(value, depth + 1) for value in obj)
    return obj


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

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        pool = self._require_pool()
        outer: Future[Any] = Future()

        def dispatch() -> None:
            def run() -> None:
                if not outer.set_running_or_notify_cancel():
                    return
                try:
                    outer.set_result(fn(*resolve(args), **resolve(kwargs)))
                except BaseException as exc:  # noqa: BLE001 - delivered through the future
                    outer.set_exception(exc)

            pool.submit(run)

        self._when_ready((args, kwargs), dispatch)
        return outer

    def _when_ready(self, obj: Any, callback: Callable[[], None]) -> None:
        pending: list[Future[Any]] = []
        _pending_futures(obj, pending)
        if not pending:
            callback()
            return
        remaining = [len(pending)]
        lock = threading.Lock()

        def one_done(_: Future[Any]) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:  # results may hold more futures (a Mapped parent's children)
                self._when_ready(obj, callback)

        for future in pending:
            future.add_done_callback(one_done)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Future[Any]]:
        return [self.submit(fn, *args) for args in zip(*iterables, strict=False)]

    def wait(self, futures: Any) -> Any:
        pending: list[Future[Any]] = []
        _pending_futures(futures, pending)
        while pending:
            for future in pending:
                future.exception()  # blocks until done
            pending = []
            _pending_futures(futures, pending)
        return resolve(futures)
