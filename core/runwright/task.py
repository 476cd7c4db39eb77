"""Tasks: units of work. Subclass :class:`Task` and implement ``run``, or decorate a
function with :func:`task`."""

from __future__ import annotations

import collections.abc
import datetime
import functools
import inspect
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runwright import triggers
from runwright.context import context

if TYPE_CHECKING:
    from runwright.engine.result_handlers import ResultHandler
    from runwright.engine.state import State
    from runwright.flow import Flow

RESERVED_ARGUMENTS = ("upstream_tasks", "mapped", "task_args", "flow")

_UNSET = object()
#: attributes ``Task.copy`` does not share with the original
_FRESH_IN_COPY = frozenset({"slug", "_tags", "_state_handlers"})


@functools.lru_cache(maxsize=4096)
def _task_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"runwright.Task: {name}")


@functools.lru_cache(maxsize=4096)
def _signature(run: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(run)


class _Binder:
    """Binds call arguments to a ``run`` signature's parameter names (cached per function).

    A signature of plain parameters (positional-or-keyword, no ``**kwargs``) is bound
    directly; anything else, and every call that does not fit, goes through
    ``inspect.Signature.bind`` (its errors are the ones users see)."""

    __slots__ = ("kwargs_only", "n_required", "name_set", "names", "signature", "simple")

    def __init__(self, signature: inspect.Signature) -> None:
        self.signature = signature
        params = list(signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.name_set = frozenset(self.names)
        self.simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        # in a plain signature the parameters without a default come first
        self.n_required = sum(1 for p in params if p.default is inspect.Parameter.empty)
        # ``run(self, **task_results)`` (the collection tasks): keyword arguments bind as given
        self.kwargs_only = len(params) == 1 and params[0].kind is inspect.Parameter.VAR_KEYWORD

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any], owner: str) -> dict[str, Any]:
        if self.simple:
            names = self.names
            given = len(args)
            if not kwargs:
                if self.n_required <= given <= len(names):
                    return dict(zip(names, args, strict=False))
            elif given <= len(names):
                callargs = dict(zip(names, args, strict=False))
                name_set = self.name_set
                fits = True
                for key, value in kwargs.items():
                    if key in callargs or key not in name_set:
                        fits = False
                        break
                    callargs[key] = value
                if fits:
                    for name in names[given : self.n_required]:
                        if name not in callargs:
                            fits = False
                            break
                if fits:  # in parameter order, as Signature.bind gives them
                    return {name: callargs[name] for name in names if name in callargs}
        elif self.kwargs_only and not args:
            return dict(kwargs)
        try:
            callargs = dict(self.signature.bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise TypeError(f"Task {owner!r}: {exc}") from None
        for name, param in self.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in callargs:
                callargs.update(callargs.pop(name))
        return callargs


@functools.lru_cache(maxsize=4096)
def _binder(func: Callable[..., Any], is_method: bool) -> _Binder:
    signature = _signature(func)
    if is_method:  # a bound method's function: drop `self`
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return _Binder(signature)


#: the binders of the plain functions of FunctionTasks called lately (a dict lookup is a
#: fraction of an lru_cache call); emptied when it holds _BINDERS_MAX of them
_BINDERS: dict[Any, _Binder] = {}
_BINDERS_MAX = 1024


def _binder_of(run: Callable[..., Any]) -> _Binder:
    func = getattr(run, "__func__", None)
    if func is not None:  # a method: not kept in _BINDERS (a bound method is new each time)
        return _binder(func, True)
    binder = _binder(run, False)
    if len(_BINDERS) >= _BINDERS_MAX:
        _BINDERS.clear()
    _BINDERS[run] = binder
    return binder


def _validate_run_signature(run: Callable[..., Any], owner: str) -> None:
    for param in inspect.signature(run).parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ValueError(f"Tasks with variable positional arguments (*{param.name}) are not supported: {owner}")
        if param.name in RESERVED_ARGUMENTS:
            raise ValueError(f"{owner}: the argument name {param.name!r} is reserved for runwright; rename it")


class _TaskMeta(type):
    """Checks each Task subclass's ``run`` signature when the class is defined."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _TaskMeta:
        cls = super().__new__(mcs, name, bases, namespace)
        if "run" in namespace:
            _validate_run_signature(namespace["run"], f"{name}.run")
        return cls


class Task(metaclass=_TaskMeta):
    """A unit of work in a flow.

    Arguments mirror the seed engine's ``Task``: ``max_retries`` needs a ``retry_delay``;
    ``timeout`` is a number of seconds; ``cache_for`` (a timedelta) enables caching with
    ``cache_validator`` (a function or a registered name); ``checkpoint`` writes the result
    with its handler as soon as the task succeeds; ``on_failure(task, state)`` runs when the
    task fails. ``log_stdout`` sends what the task prints to its run logger too, a record per
    line (the console still shows the print itself, once).
    """

    # Defaults live on the class: a task stores only what differs from them, so the copies
    # a wide flow is made of (one per call) hold a name, a slug and, for a FunctionTask, its
    # function (see ``copy``). Reading an attribute gives what it always did.
    slug: str | None = None
    max_retries: int = 0
    retry_delay: datetime.timedelta | None = None
    timeout: float | None = None
    trigger: Callable[..., bool] = staticmethod(triggers.all_successful)  # type: ignore[assignment]
    skip_on_upstream_skip: bool = True
    cache_for: datetime.timedelta | None = None
    #: a validator function, or a registered name looked up on first use
    _cache_validator: Callable[..., bool] | str = "never_use"
    checkpoint: bool = False
    result_handler: ResultHandler | str | None = None
    log_stdout: bool = False
    #: the tags, None while there are none (see ``tags``)
    _tags: set[str] | None = None
    #: the state handlers, None while there are none (see ``state_handlers``)
    _state_handlers: list[Callable[..., Any]] | None = None

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int | None = None,
        retry_delay: datetime.timedelta | None = None,
        timeout: float | None = None,
        trigger: Callable[..., bool] | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: datetime.timedelta | None = None,
        cache_validator: Callable[..., bool] | str | None = None,
        checkpoint: bool | None = None,
        result_handler: ResultHandler | str | None = None,
        state_handlers: list[Callable[..., Any]] | None = None,
        on_failure: Callable[[Task, State], Any] | None = None,
        log_stdout: bool = False,
    ) -> None:
        from runwright.config import get_config

        defaults = get_config().section("tasks.defaults")
        self.name = name or type(self).__name__
        own = self.__dict__  # the task being made: its own attributes so far
        cls = type(self)

        def keep(attribute: str, value: Any) -> None:
            # stored unless the class already gives exactly this value (a subclass's class
            # attribute is hidden by the value, as when every value was stored)
            if attribute in own or getattr(cls, attribute, _UNSET) is not value:
                setattr(self, attribute, value)

        keep("slug", slug)
        if isinstance(tags, str):
            raise TypeError("tags should be a collection of strings, not a single string")
        self.tags = set(tags or ()) | set(context.get("tags", ()) or ())  # type: ignore[assignment]

        if max_retries is None:
            max_retries = int(defaults.get("max_retries") or 0)
        if retry_delay is None and defaults.get("retry_delay"):
            retry_delay = datetime.timedelta(seconds=float(defaults["retry_delay"]))
        if max_retries > 0 and retry_delay is None:
            raise ValueError(f"Task {self.name!r}: a retry_delay must be given when max_retries > 0")
        keep("max_retries", max_retries)
        keep("retry_delay", retry_delay)

        if timeout is None and defaults.get("timeout"):
            timeout = defaults["timeout"]
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"Task {self.name!r}: timeout must be a number of seconds, got {timeout!r}")
        keep("timeout", timeout)

        keep("trigger", trigger or triggers.all_successful)
        keep("skip_on_upstream_skip", skip_on_upstream_skip)

        if cache_for is not None and not isinstance(cache_for, datetime.timedelta):
            raise TypeError(f"Task {self.name!r}: cache_for must be a datetime.timedelta")
        keep("cache_for", cache_for)
        if cache_validator is not None and cache_for is None and cache_validator != "never_use":
            from runwright.engine.cache_validators import never_use

            if cache_validator is not never_use:
                warnings.warn(
                    f"Task {self.name!r}: cache_validator has no effect without cache_for", UserWarning, stacklevel=2
                )
        if cache_validator is None:
            cache_validator = "duration_only" if cache_for is not None else "never_use"
        keep("_cache_validator", cache_validator)

        keep("checkpoint", bool(defaults.get("checkpoint", False)) if checkpoint is None else checkpoint)
        keep("result_handler", result_handler)

        if state_handlers is not None and not isinstance(state_handlers, collections.abc.Sequence):
            raise TypeError("state_handlers should be iterable.")
        handlers = list(state_handlers or [])
        if on_failure is not None:
            handlers.append(_failure_handler(on_failure))
        if handlers or "state_handlers" in own or "_state_handlers" in own:
            self.state_handlers = handlers
        keep("log_stdout", bool(log_stdout))

    # -- properties ------------------------------------------------------------------------
    @property
    def tags(self) -> set[str]:
        """The task's tags (a set; mutable)."""
        tags = self._tags
        if tags is None:
            tags = self._tags = set()
        return tags

    @tags.setter
    def tags(self, value: Iterable[str]) -> None:
        if value:
            self._tags = set(value)
        elif self._tags is not None:
            self._tags = None

    @property
    def state_handlers(self) -> list[Callable[..., Any]]:
        """The task's state handlers, ``handler(task, old_state, new_state)`` (a list; mutable)."""
        handlers = self._state_handlers
        if handlers is None:
            handlers = self._state_handlers = []
        return handlers

    @state_handlers.setter
    def state_handlers(self, value: list[Callable[..., Any]]) -> None:
        self._state_handlers = value

    @property
    def cache_validator(self) -> Callable[..., bool]:
        """The validator function (a registered name is looked up on first use)."""
        validator = self._cache_validator
        if isinstance(validator, str):
            from runwright.plugins import get_plugin_manager

            validator = get_plugin_manager().cache_validator(validator)
            self._cache_validator = validator
        return validator

    @cache_validator.setter
    def cache_validator(self, value: Callable[..., bool] | str) -> None:
        self._cache_validator = value

    @property
    def logger(self) -> logging.Logger:
        return _task_logger(self.name)

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    # -- running ---------------------------------------------------------------------------
    def run(self) -> Any:
        """The task's work. Subclasses implement it; arguments come from upstream tasks."""

    # -- building graphs -------------------------------------------------------------------
    def copy(self, **overrides: Any) -> Task:
        """A copy with a fresh slug (assigned by the flow); ``overrides`` set attributes."""
        new = object.__new__(type(self))
        # attribute by attribute: the copy keeps the compact layout its class's instances
        # share (copying the __dict__ whole would give it a dict of its own, 64 bytes more)
        for key, value in self.__dict__.items():
            if key in _FRESH_IN_COPY:
                # no slug (the flow gives one); its own tags and handlers, made when first
                # read while there are none (an empty set is 216 bytes: wide flows have many)
                if value and key != "slug":
                    setattr(new, key, set(value) if key == "_tags" else list(value))
                continue
            setattr(new, key, value)
        for key, value in overrides.items():
            setattr(new, key, value)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: dict[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy the task and bind its arguments in the active (or given) flow."""
        cls = type(self)
        if task_args or cls.copy is not _TASK_COPY:
            new = self.copy(**task_args) if task_args else self.copy()
        else:  # copy(), inlined (a call of a task in a wide flow is one copy each)
            new = object.__new__(cls)
            for key, value in self.__dict__.items():
                if key in _FRESH_IN_COPY:
                    if value and key != "slug":
                        setattr(new, key, set(value) if key == "_tags" else list(value))
                    continue
                setattr(new, key, value)
        if type(new).bind is Task.bind:
            return new._bind(args, kwargs, mapped, upstream_tasks, flow)
        return new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind arguments to this task (no copy), adding edges to the flow."""
        return self._bind(args, kwargs, mapped, upstream_tasks, flow)

    def _bind(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mapped: bool,
        upstream_tasks: Iterable[Any] | None,
        flow: Flow | None,
    ) -> Task:
        run = self.run
        binder = _BINDERS.get(run)
        if binder is None:
            binder = _binder_of(run)
        if not kwargs and binder.simple and binder.n_required <= len(args) <= len(binder.names):
            callargs = dict(zip(binder.names, args, strict=False))  # binder.bind's first case, inlined
        else:
            callargs = binder.bind(args, kwargs, self.name)
        if flow is None:
            flow = context._data.get("flow")
            if flow is None:
                raise ValueError("Could not infer an active Flow: call tasks inside `with Flow(...):` or pass flow=")
        if type(self).set_dependencies is Task.set_dependencies:  # what it would do, one call less
            if upstream_tasks is None and flow._direct_calls:
                flow._add_called(self, callargs, mapped)
                return self
            flow.set_dependencies(
                task=self,
                upstream_tasks=upstream_tasks,
                downstream_tasks=None,
                keyword_tasks=callargs,
                mapped=mapped,
                validate=None,
            )
        else:
            self.set_dependencies(flow, upstream_tasks=upstream_tasks, keyword_tasks=callargs, mapped=mapped)
        return self

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy the task and map it over its arguments (``unmapped(x)`` passes x whole)."""
        new = self.copy()
        return new.bind(*args, mapped=True, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def set_dependencies(
        self,
        flow: Flow | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        flow = flow if flow is not None else context.get("flow")
        if flow is None:
            raise ValueError("Could not infer an active Flow: call inside `with Flow(...):` or pass flow=")
        flow.set_dependencies(
            task=self,
            upstream_tasks=upstream_tasks,
            downstream_tasks=downstream_tasks,
            keyword_tasks=keyword_tasks,
            mapped=mapped,
            validate=validate,
        )

    def set_upstream(self, task: Any, flow: Flow | None = None, key: str | None = None, mapped: bool = False) -> None:
        """Make ``task`` an upstream dependency; with ``key`` its result is passed as that argument."""
        if key is not None:
            self.set_dependencies(flow=flow, keyword_tasks={key: task}, mapped=mapped)
        else:
            self.set_dependencies(flow=flow, upstream_tasks=[task], mapped=mapped)

    def set_downstream(self, task: Task, flow: Flow | None = None, key: str | None = None, mapped: bool = False) -> None:
        """Make ``task`` a downstream dependent of this task."""
        task.set_upstream(self, flow=flow, key=key, mapped=mapped)

    def __or__(self, other: Task) -> Task:
        self.set_downstream(other)
        return other

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "state_handlers" in state:  # pickled before the handlers were kept as _state_handlers
            state["_state_handlers"] = state.pop("state_handlers") or None
        self.__dict__.update(state)


_TASK_COPY = Task.copy


def _failure_handler(on_failure: Callable[..., Any]) -> Callable[..., Any]:
    def on_failure_handler(obj: Any, old_state: State, new_state: State) -> State:
        if new_state.is_failed():
            on_failure(obj, new_state)
        return new_state

    on_failure_handler.__name__ = f"on_failure[{getattr(on_failure, '__name__', 'handler')}]"
    return on_failure_handler


class FunctionTask(Task):
    """A task whose work is a plain function (what ``@task`` builds)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError("FunctionTask needs a callable")
        _validate_run_signature(fn, getattr(fn, "__qualname__", repr(fn)))
        self.run = fn  # type: ignore[method-assign]
        super().__init__(name=name or getattr(fn, "__name__", None), **kwargs)

    @property
    def fn(self) -> Callable[..., Any]:
        return self.run


def task(fn: Callable[..., Any] | None = None, **task_init_kwargs: Any) -> Any:
    """Turn a function into a task: ``@task`` or ``@task(max_retries=2, retry_delay=...)``."""
    if fn is None:
        return lambda f: FunctionTask(fn=f, **task_init_kwargs)
    return FunctionTask(fn=fn, **task_init_kwargs)


class unmapped:  # noqa: N801 - named like the seed API
    """Wrap an argument of ``task.map(...)`` that must be passed whole to every child."""

    def __init__(self, task: Any) -> None:
        self.task = task
