"""The run context: a thread-local mapping that runners and tasks read.

``with runwright.context(key=value):`` sets keys for the duration of the block and restores
exactly the keys it touched on exit. Restoring only the touched keys (rather than snapshotting
the whole mapping, as the seed engine did) keeps a task's context switch O(keys set), not
O(context size).

Every thread starts with the ``[context]`` table of the configuration. A new thread does not
inherit the keys of the thread that started it: runners pass the context explicitly to work
they submit to an executor. Pickling the context gives the unpickling process's own
context (see ``Context.__reduce__``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from itertools import repeat
from typing import Any

_MISSING = object()


class Context(threading.local):
    """Thread-local key/value store with attribute access (``context.flow_run_id``)."""

    def __init__(self) -> None:
        from runwright.config import ConfigError, get_config

        try:
            seed = dict(get_config().section("context"))
        except ConfigError:
            seed = {}  # reported where the configuration is used, as a one-line error
        self.__dict__["_data"] = seed

    def __reduce__(self) -> str:
        """Pickled by reference, as the module's ``context``: a function pickled by value (a
        task in a ``__main__`` script sent to a Dask worker process) that refers to the
        context gets the unpickling process's own context, never a copy of this thread's."""
        return "context"

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(f"Context has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def update(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        self._data.update(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the current thread's context."""
        return dict(self._data)

    def clear(self) -> None:
        self._data.clear()

    def _push(self, updates: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """Set ``updates``; return what :meth:`_restore` needs to put those keys back as they
        were (``with context(updates):`` as two calls, for the engine's hot path; underscored so that no
        key of the context is hidden by a method name)."""
        data = self._data
        # [(key, value or _MISSING), ...], made without a Python-level loop
        saved = list(zip(updates, map(data.get, updates, repeat(_MISSING))))
        data.update(updates)
        return saved

    def _restore(self, saved: list[tuple[str, Any]]) -> None:
        """Put back the keys a :meth:`_push` set (a key that was missing is removed)."""
        data = self._data
        for key, value in saved:
            if value is _MISSING:
                data.pop(key, None)
            else:
                data[key] = value

    def __call__(self, *args: Mapping[str, Any], **kwargs: Any) -> _ContextUpdate:
        """``with context(mapping, key=value):`` sets keys for the block, then restores them."""
        if len(args) == 1 and not kwargs:
            # one mapping (a task run's context): read once on entry, so no copy is needed
            return _ContextUpdate(self, args[0])
        if args:
            updates: dict[str, Any] = {}
            for mapping in args:
                updates.update(mapping)
            updates.update(kwargs)
        else:
            updates = kwargs
        return _ContextUpdate(self, updates)


class _ContextUpdate:
    """The context manager returned by ``context(...)`` (a class: it runs per task)."""

    __slots__ = ("_context", "_saved", "_updates")

    def __init__(self, ctx: Context, updates: Mapping[str, Any]) -> None:
        self._context = ctx
        self._updates = updates
        self._saved: list[tuple[str, Any]] = []

    def __enter__(self) -> Context:
        self._saved = self._context._push(self._updates)
        return self._context

    def __exit__(self, *exc: object) -> None:
        self._context._restore(self._saved)


context = Context()
