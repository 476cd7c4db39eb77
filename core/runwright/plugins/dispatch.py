"""The hook dispatcher: the one code path every hook call takes.

pluggy decides *which* implementations a hook has and in what order (tryfirst, trylast,
wrappers outermost); this module decides how they are *called*. For each hook it compiles,
once per set of plugins, a dispatch entry: the implementations in call order with a
ready-made argument picker each. A hook whose implementations are all plain functions (every
runner hook, as installed today) is then called by a tight loop: no per-call argument
checks, no result objects. A hook with a wrapper (``wrapper=True`` or the old-style
``hookwrapper=True``) takes the general loop below, which gives wrappers exactly what pluggy
gives them. Call monitors (``add_hookcall_monitoring``, the ``hook_recorder`` fixture) are
called around either loop, so a test that records hooks runs the production loop.

Calls made through pluggy's own ``pm.hook.<name>(...)`` come here too (the manager's
``_inner_hookexec`` is this dispatcher), so there is no second execution engine.

Consistency under concurrent ``register`` / ``unregister``: every change to the plugin set
or to the monitors happens under one lock and replaces the dispatch table by a new, empty
one; entries are compiled under that same lock, so an entry compiled from a stale plugin set
can never be stored. A call already in progress finishes with the entry it started with.
"""

from __future__ import annotations

import operator
import threading
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any

import pluggy
from pluggy import HookCallError, HookImpl

from runwright.hookspecs import TASK_SCOPE_ATTRIBUTE
from runwright.plugins.errors import PluginError

#: ``before(hook_name, hook_impls, kwargs)`` and ``after(outcome, hook_name, hook_impls, kwargs)``
Monitor = tuple[Callable[..., None], Callable[..., None]]

_PLAIN, _WRAPPER, _OLD_STYLE_WRAPPER = 0, 1, 2


class _Impl:
    """One implementation, compiled for calling: function, argument picker, plugin name."""

    __slots__ = ("arguments", "function", "keywords", "kind", "plugin", "scope")

    def __init__(self, impl: HookImpl) -> None:
        self.function = impl.function
        self.arguments = _arguments_getter(impl.argnames)
        #: parameters with defaults: passed only when the caller provides them (as pluggy does)
        self.keywords: tuple[str, ...] = tuple(impl.kwargnames)
        self.plugin: str = impl.plugin_name
        self.kind = _OLD_STYLE_WRAPPER if impl.hookwrapper else _WRAPPER if impl.wrapper else _PLAIN
        #: ``predicate(task)`` of :func:`runwright.hookspecs.for_tasks`, or None (every task)
        self.scope: Callable[[Any], bool] | None = getattr(impl.function, TASK_SCOPE_ATTRIBUTE, None)

    def call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if self.keywords:
            return self.function(*args, **{k: kwargs[k] for k in self.keywords if k in kwargs})
        return self.function(*args)


class DispatchEntry:
    """A hook's implementations in call order, compiled once per plugin set."""

    __slots__ = (
        "defaults", "direct", "fast", "firstresult", "hookimpls", "idle", "impls", "monitored", "plain", "scoped",
        "scopes", "subsets",
    )

    def __init__(self, caller: pluggy.HookCaller, monitored: bool) -> None:
        spec = caller.spec
        self._compile(
            tuple(caller.get_hookimpls()),
            bool(spec and spec.opts.get("firstresult")),
            dict(getattr(spec, "kwargdefaults", None) or {}),
            monitored,
        )

    @classmethod
    def _subset(cls, parent: DispatchEntry, keep: Sequence[HookImpl]) -> DispatchEntry:
        entry = cls.__new__(cls)
        entry._compile(tuple(keep), parent.firstresult, parent.defaults, parent.monitored)
        return entry

    def _compile(
        self, hookimpls: tuple[HookImpl, ...], firstresult: bool, defaults: dict[str, Any], monitored: bool
    ) -> None:
        #: pluggy's own order (what monitors receive); calls go last to first
        self.hookimpls = hookimpls
        self.impls = tuple(_Impl(impl) for impl in reversed(hookimpls))
        self.firstresult = firstresult
        self.defaults = defaults
        self.monitored = monitored
        #: the implementations scoped to some tasks (``for_tasks``), in call order
        self.scopes: tuple[_Impl, ...] = tuple(i for i in self.impls if i.scope is not None)
        self.scoped = bool(self.scopes)
        #: the entries of :meth:`narrowed`, by the flags they were made for
        self.subsets: dict[tuple[bool, ...], DispatchEntry] = {}
        #: (function, argument picker, plugin) for the tight loop
        self.plain = tuple((i.function, i.arguments, i.plugin) for i in self.impls)
        #: only plain implementations: the tight loop serves the hook (monitored or not)
        self.fast = not self.defaults and all(i.kind == _PLAIN and not i.keywords for i in self.impls)
        #: the tight loop inlined in call_attributed, with no monitor around it
        self.direct = self.fast and not monitored
        #: no implementation and no monitor: a call would do nothing at all
        self.idle = not self.impls and not monitored

    def narrowed(self, keep: tuple[bool, ...]) -> DispatchEntry:
        """This entry with only the scoped implementations ``keep`` says (one flag per
        implementation in :attr:`scopes`, in that order), and every unscoped one; cached."""
        if all(keep):
            return self
        subset = self.subsets.get(keep)
        if subset is None:
            dropped = {id(impl) for (impl, wanted) in zip(self.scopes, keep, strict=True) if not wanted}
            # impls are in call order (hookimpls reversed): the subset keeps pluggy's order
            kept = [hookimpl for hookimpl, impl in zip(reversed(self.hookimpls), self.impls, strict=True) if id(impl) not in dropped]
            subset = self.subsets[keep] = DispatchEntry._subset(self, kept[::-1])
        return subset


class HookDispatcher(pluggy.PluginManager):
    """A pluggy plugin manager whose hook calls all go through :meth:`call_attributed`'s
    dispatcher (see the module docstring)."""

    #: Plugins whose exceptions are raised as they are, not wrapped in PluginError (the
    #: host's own defaults: their errors already say what is wrong and what to do).
    unattributed_plugins: frozenset[str] = frozenset()

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self._lock = threading.RLock()
        #: The current dispatch table (a plain attribute: task runs compare it): a new object
        #: after every change to the plugin set or the monitors, which is what a caller
        #: compares to know its :meth:`hook_is_idle` answers and entries still hold.
        self.dispatch_table: dict[str, DispatchEntry] = {}
        self._dispatch = self.dispatch_table
        self._monitors: tuple[Monitor, ...] = ()
        self._inner_hookexec = self._execute_hook_caller  # type: ignore[assignment]

    # -- changes to the plugin set ---------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None) -> str | None:
        with self._lock:
            result = super().register(plugin, name)
            self._plugins_changed()
            return result

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        with self._lock:
            result = super().unregister(plugin, name)
            self._plugins_changed()
            return result

    def _plugins_changed(self) -> None:
        """Called under the lock after the plugin set changed."""
        self._dispatch = self.dispatch_table = {}

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        """Call ``before(hook_name, hook_impls, kwargs)`` and ``after(outcome, hook_name,
        hook_impls, kwargs)`` around every hook call, as pluggy does (the monitor added last
        is outermost). The returned undo function removes this monitor; calling it again
        does nothing."""
        monitor: Monitor = (before, after)
        with self._lock:
            self._monitors = (*self._monitors, monitor)
            self._dispatch = self.dispatch_table = {}

        def undo() -> None:
            with self._lock:
                monitors = list(self._monitors)
                for index, candidate in enumerate(monitors):
                    if candidate is monitor:
                        del monitors[index]
                        self._monitors = tuple(monitors)
                        self._dispatch = self.dispatch_table = {}
                        return

        return undo

    # -- calling ---------------------------------------------------------------------------
    def call_attributed(
        self,
        hook_name: str,
        passthrough: tuple[type[BaseException], ...] = (),
        on_plugin_error: Callable[[PluginError], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call a hook: every implementation, or up to the first non-None result for a
        ``firstresult`` hook, in pluggy's order, wrappers around them.

        An exception is raised as :class:`PluginError` naming the plugin that raised it,
        except exceptions of a ``passthrough`` type and those of :attr:`unattributed_plugins`
        (raised as they are). A missing argument that an implementation needs is the
        caller's error: :class:`pluggy.HookCallError` naming the argument.

        With ``on_plugin_error``, a failing implementation's PluginError (a built-in
        plugin's too) is passed to it and the remaining implementations still run; a
        failing wrapper is skipped. ``passthrough`` exceptions and HookCallError still
        propagate.
        """
        entry = self._dispatch.get(hook_name)
        if entry is None:
            entry = self._dispatch_entry(hook_name)
        return self.call_entry(hook_name, entry, kwargs, passthrough, on_plugin_error)

    def call_entry(
        self,
        hook_name: str,
        entry: DispatchEntry,
        kwargs: dict[str, Any],
        passthrough: tuple[type[BaseException], ...] = (),
        on_plugin_error: Callable[[PluginError], None] | None = None,
    ) -> Any:
        """:meth:`call_attributed` with the dispatch entry given: one that
        :meth:`dispatch_entry` returned (or its ``for_task``), while :attr:`dispatch_table`
        is the table it came from. The task runners call their scoped entries this way."""
        if not entry.direct or on_plugin_error is not None:
            return self._call_general(hook_name, entry, kwargs, passthrough, on_plugin_error)
        # The tight loop (the same as _call_plain, inlined: most hook calls take it).
        firstresult = entry.firstresult
        results = []
        for function, arguments, plugin in entry.plain:
            try:
                args = arguments(kwargs)
            except KeyError as missing:
                raise _missing_argument(hook_name, plugin, missing) from None
            try:
                result = function(*args)
            except passthrough:
                raise
            except Exception as exc:
                if plugin in self.unattributed_plugins:
                    raise
                raise PluginError(plugin, hook_name, exc) from exc
            if result is not None:
                if firstresult:
                    return result
                results.append(result)
        return None if firstresult else results

    def hook_is_idle(self, hook_name: str) -> bool:
        """True when calling ``hook_name`` would do nothing: no plugin implements it and no
        call monitor watches. Valid while :attr:`dispatch_table` is the same object (any
        change to the plugin set or the monitors replaces it)."""
        entry = self._dispatch.get(hook_name)
        if entry is None:
            entry = self._dispatch_entry(hook_name)
        return entry.idle

    def dispatch_entry(self, hook_name: str) -> DispatchEntry:
        """The compiled entry of ``hook_name`` in the current :attr:`dispatch_table`."""
        entry = self._dispatch.get(hook_name)
        if entry is None:
            entry = self._dispatch_entry(hook_name)
        return entry

    def _dispatch_entry(self, hook_name: str) -> DispatchEntry:
        with self._lock:
            table = self._dispatch
            entry = table.get(hook_name)
            if entry is None:
                entry = DispatchEntry(getattr(self.hook, hook_name), monitored=bool(self._monitors))
                table[hook_name] = entry
            return entry

    def _call_general(
        self,
        hook_name: str,
        entry: DispatchEntry,
        kwargs: dict[str, Any],
        passthrough: tuple[type[BaseException], ...],
        on_plugin_error: Callable[[PluginError], None] | None,
    ) -> Any:
        """Hooks with wrappers, monitored calls, and calls that collect plugin errors."""
        if entry.defaults:
            kwargs = {**entry.defaults, **kwargs}
        blame: list[Any] = []  # [exception, plugin] of the last exception an implementation raised
        if entry.fast and on_plugin_error is None:

            def run() -> Any:
                return self._call_plain(hook_name, entry, kwargs, blame)

        else:

            def run() -> Any:
                return _execute(hook_name, entry.impls, kwargs, entry.firstresult, passthrough, on_plugin_error, blame)

        try:
            monitors = self._monitors
            if monitors:
                return _monitored(monitors, hook_name, entry.hookimpls, kwargs, run)
            return run()
        except passthrough:
            raise
        except HookCallError:
            raise
        except Exception as exc:
            plugin = blame[1] if blame and blame[0] is exc else self.plugin_name_for_error(hook_name, exc.__traceback__)
            if plugin in self.unattributed_plugins:
                raise
            raise PluginError(plugin, hook_name, exc) from exc

    def _call_plain(self, hook_name: str, entry: DispatchEntry, kwargs: Mapping[str, Any], blame: list[Any]) -> Any:
        """The tight loop for plain implementations, raising their exceptions as they are."""
        firstresult = entry.firstresult
        results = []
        for function, arguments, plugin in entry.plain:
            try:
                args = arguments(kwargs)
            except KeyError as missing:
                raise _missing_argument(hook_name, plugin, missing) from None
            try:
                result = function(*args)
            except Exception as exc:
                blame[:] = [exc, plugin]
                raise
            if result is not None:
                if firstresult:
                    return result
                results.append(result)
        return None if firstresult else results

    def _execute_hook_caller(
        self, hook_name: str, hook_impls: Sequence[HookImpl], kwargs: Mapping[str, object], firstresult: bool
    ) -> Any:
        """pluggy's ``pm.hook.<name>(...)`` (and subset callers) land here: the general loop,
        with monitors, and exceptions raised as they are (pluggy's contract)."""

        def run() -> Any:
            impls = tuple(_Impl(impl) for impl in reversed(hook_impls))
            return _execute(hook_name, impls, kwargs, firstresult, (), None, [])

        monitors = self._monitors
        if monitors:
            return _monitored(monitors, hook_name, tuple(hook_impls), kwargs, run)
        return run()

    # -- error attribution -----------------------------------------------------------------
    def plugin_name_for_error(self, hook_name: str, tb: TracebackType | None) -> str:
        """The name of the plugin whose implementation of ``hook_name`` appears in ``tb``
        (for an exception the dispatcher did not see leave an implementation)."""
        codes = set()
        while tb is not None:
            codes.add(tb.tb_frame.f_code)
            tb = tb.tb_next
        caller = getattr(self.hook, hook_name)
        for impl in caller.get_hookimpls():
            if getattr(impl.function, "__code__", None) in codes:
                return impl.plugin_name
        return "<unknown plugin>"


def _execute(
    hook_name: str,
    impls: Sequence[_Impl],
    kwargs: Mapping[str, Any],
    firstresult: bool,
    passthrough: tuple[type[BaseException], ...],
    on_plugin_error: Callable[[PluginError], None] | None,
    blame: list[Any],
) -> Any:
    """The general loop: call ``impls`` (in call order), wrappers' setup on the way in and
    their teardown, innermost first, on the way out, exactly as pluggy's contract says:

    * a new-style wrapper receives the result (``yield`` returns it) or the exception
      (raised at its ``yield``) and returns the result to pass on, or raises;
    * an old-style wrapper receives a :class:`pluggy.Result` and may ``force_result`` /
      ``force_exception``; an exception raised in its teardown warns and propagates;
    * a firstresult hook stops at the first non-None result (wrappers still run).
    """
    results: list[Any] = []
    teardowns: list[tuple[Generator[None, Any, Any], _Impl]] = []
    error: BaseException | None = None
    try:
        for impl in impls:
            try:
                args = impl.arguments(kwargs)
            except KeyError as missing:
                raise _missing_argument(hook_name, impl.plugin, missing) from None
            try:
                value = impl.call(args, kwargs)
                if impl.kind != _PLAIN:
                    value = _start_wrapper(hook_name, impl, value)
            except passthrough:
                raise
            except Exception as exc:
                if on_plugin_error is None:
                    blame[:] = [exc, impl.plugin]
                    raise
                on_plugin_error(PluginError(impl.plugin, hook_name, exc))
                continue
            if impl.kind != _PLAIN:
                teardowns.append((value, impl))
            elif value is not None:
                results.append(value)
                if firstresult:
                    break
    except BaseException as exc:  # noqa: BLE001 - wrappers see every exception, then it is raised again
        error = exc
    outcome: Any = (results[0] if results else None) if firstresult else results
    for teardown, impl in reversed(teardowns):
        try:
            if error is None:
                teardown.send(outcome)
            else:
                teardown.throw(error)
        except StopIteration as stop:
            outcome, error = stop.value, None
            continue
        except RuntimeError as exc:
            if isinstance(error, StopIteration) and exc.__cause__ is error:
                teardown.close()  # a StopIteration thrown into a generator comes back as RuntimeError
                continue
            error = _teardown_error(hook_name, impl, exc, error, passthrough, on_plugin_error, blame)
            continue
        except BaseException as exc:  # noqa: BLE001 - passed to the next wrapper, then raised
            error = _teardown_error(hook_name, impl, exc, error, passthrough, on_plugin_error, blame)
            continue
        teardown.close()
        failure = _wrapper_failure(teardown, "has second yield")
        blame[:] = [failure, impl.plugin]
        raise failure
    if error is not None:
        raise error
    return outcome


def _teardown_error(
    hook_name: str,
    impl: _Impl,
    exc: BaseException,
    error: BaseException | None,
    passthrough: tuple[type[BaseException], ...],
    on_plugin_error: Callable[[PluginError], None] | None,
    blame: list[Any],
) -> BaseException | None:
    """The exception to pass on after a wrapper's teardown raised ``exc``."""
    if exc is error:  # the wrapper let the exception through
        return error
    if on_plugin_error is not None and isinstance(exc, Exception) and not isinstance(exc, passthrough):
        on_plugin_error(PluginError(impl.plugin, hook_name, exc))
        return error
    blame[:] = [exc, impl.plugin]
    return exc


def _start_wrapper(hook_name: str, impl: _Impl, value: Any) -> Generator[None, Any, Any]:
    """Run a wrapper up to its ``yield``; an old-style one is adapted to the new protocol."""
    generator: Generator[None, Any, Any] = value
    try:
        next(generator)
    except StopIteration:
        raise _wrapper_failure(generator, "did not yield") from None
    if impl.kind == _OLD_STYLE_WRAPPER:
        adapted = _old_style_teardown(hook_name, impl, generator)
        next(adapted)
        return adapted
    return generator


def _old_style_teardown(hook_name: str, impl: _Impl, generator: Generator[None, Any, Any]) -> Generator[None, Any, Any]:
    """An old-style hookwrapper's teardown as a new-style one: it is sent a pluggy.Result of
    the inner calls and what that Result holds afterwards is passed on."""
    try:
        outcome = pluggy.Result((yield), None)
    except BaseException as exc:  # noqa: BLE001 - the wrapper's Result carries it, then it is raised
        outcome = pluggy.Result(None, exc)
    try:
        generator.send(outcome)
    except StopIteration:
        pass
    except BaseException as exc:
        warnings.warn(
            pluggy.PluggyTeardownRaisedWarning(
                f"A plugin raised an exception during an old-style hookwrapper teardown.\n"
                f"Plugin: {impl.plugin}, Hook: {hook_name}\n{type(exc).__name__}: {exc}"
            ),
            stacklevel=2,
        )
        raise
    else:
        raise _wrapper_failure(generator, "has second yield")
    finally:
        generator.close()
    return outcome.get_result()


def _monitored(
    monitors: Sequence[Monitor], hook_name: str, hookimpls: Sequence[HookImpl], kwargs: Mapping[str, Any], run: Callable[[], Any]
) -> Any:
    """``run()`` inside every monitor, the last added outermost (pluggy's nesting)."""
    for before, after in monitors:
        run = _with_monitor(before, after, hook_name, hookimpls, kwargs, run)
    return run()


def _with_monitor(
    before: Callable[..., None],
    after: Callable[..., None],
    hook_name: str,
    hookimpls: Sequence[HookImpl],
    kwargs: Mapping[str, Any],
    inner: Callable[[], Any],
) -> Callable[[], Any]:
    def run() -> Any:
        before(hook_name, list(hookimpls), kwargs)
        outcome = pluggy.Result.from_call(inner)
        after(outcome, hook_name, list(hookimpls), kwargs)
        return outcome.get_result()

    return run


def _wrapper_failure(generator: Generator[None, Any, Any], what: str) -> RuntimeError:
    code = generator.gi_code  # type: ignore[attr-defined]
    return RuntimeError(f"wrap_controller at {code.co_name!r} {code.co_filename}:{code.co_firstlineno} {what}")


def _missing_argument(hook_name: str, plugin: str, missing: KeyError) -> HookCallError:
    name = missing.args[0] if missing.args else "?"
    return HookCallError(
        f"{hook_name}() was called without the argument {name!r}, which the implementation in "
        f"plugin {plugin!r} takes: pass every argument of the hook spec (this is an error of the "
        "code calling the hook, not of the plugin)"
    )


def _arguments_getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function picking the values of ``names`` out of a call's keyword arguments, in order
    (``operator.itemgetter``, which returns a bare value for a single name, made uniform)."""
    if not names:
        return lambda kwargs: ()
    if len(names) == 1:
        name = names[0]
        return lambda kwargs: (kwargs[name],)
    return operator.itemgetter(*names)  # type: ignore[return-value]
