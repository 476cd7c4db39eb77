"""The executor interface."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any


def run_with_timeout(fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """Call ``fn``; with a ``timeout`` (seconds) raise ``TimeoutError`` when it takes longer.

    The call runs in a daemon thread that receives a copy of the caller's context. Python
    cannot kill a thread: on timeout the call is abandoned, not stopped.
    """
    if timeout is None:
        return fn(*args, **kwargs)
    from runwright.context import context

    ctx = context.to_dict()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            with context(ctx):
                outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="runwright-timeout", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError("Execution timed out.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class Executor:
    """Base class: ``start()`` a session, ``submit``/``map`` work, ``wait`` for results."""

    #: True when ``submit`` returns futures rather than values. A task runner then leaves a
    #: mapped parent's children as futures (the flow runner waits for them) instead of
    #: blocking a worker.
    returns_futures = False

    def __init__(self) -> None:
        self.executor_id = f"{type(self).__name__}: {uuid.uuid4()}"

    @contextmanager
    def start(self) -> Iterator[None]:
        yield

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        raise NotImplementedError

    def wait(self, futures: Any) -> Any:
        raise NotImplementedError

    timeout_handler = staticmethod(run_with_timeout)
