"""The plugin manager: built-in defaults plus plugins found through entry points.

``get_plugin_manager()`` builds the process-wide manager on first use (never at import):
it registers the built-in plugins by name, then loads every entry point of the
``runwright`` group, except when ``RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD`` is set or the entry
point (or its distribution) is listed in ``[plugins] disable``. The manager is never pickled:
an executor worker in another process builds its own from its configuration.
"""

from __future__ import annotations

import importlib
import logging
import operator
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from runwright import hookspecs
from runwright.config import get_config
from runwright.engine.result import Result
from runwright.engine.result_handlers import ResultHandler

if TYPE_CHECKING:
    from runwright.backends import Backend

logger = logging.getLogger("runwright.plugins")

ENTRY_POINT_GROUP = "runwright"
DISABLE_AUTOLOAD_ENV = "RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD"

#: Built-in plugins, registered under these names (they can be disabled like any other).
BUILTIN_PLUGINS: dict[str, str] = {
    "runwright.executors": "runwright.builtins.executors",
    "runwright.result_handlers": "runwright.builtins.result_handlers",
    "runwright.result_io": "runwright.builtins.result_io",
    "runwright.cache_validators": "runwright.builtins.cache_validators",
    "runwright.commands": "runwright.builtins.commands",
    "runwright.backends": "runwright.builtins.backends",
}


class PluginError(Exception):
    """A plugin raised inside a hook; the message names the plugin and the hook."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"Plugin {plugin!r} raised in {hook}: {error!r}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


class UnknownNameError(LookupError):
    """A name (result handler, executor, cache validator) that no installed plugin provides."""


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    dist: str | None = None
    builtin: bool = False


@dataclass
class _Registry:
    result_handlers: dict[str, type[ResultHandler]] = field(default_factory=dict)
    cache_validators: dict[str, Callable[..., Any]] = field(default_factory=dict)
    executors: dict[str, type] = field(default_factory=dict)
    backends: dict[str, Backend] = field(default_factory=dict)


#: Names provided by runwright's own plugins, and the distribution to install for each.
KNOWN_PROVIDERS = {
    ("Result handler", "local"): "runwright-local",
    ("Result handler", "gcs"): "runwright-gcs",
    ("Result handler", "cloud"): "runwright-cloud",
    ("Executor", "dask"): "runwright-dask",
}


def _known_dist_hint(kind: str, name: str) -> str:
    dist = KNOWN_PROVIDERS.get((kind, name))
    if dist is None and kind == "Cache validator":
        dist = "runwright-cache"
    if dist:
        return f"Install it with: pip install {dist}"
    return "Install a plugin that registers it (`runwright plugins` lists what is loaded)"


class RunwrightPluginManager(pluggy.PluginManager):
    """pluggy's manager plus runwright's registries and error attribution."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._registry: _Registry | None = None
        self._registry_lock = threading.Lock()
        self.dist_of: dict[str, tuple[str, str]] = {}
        self._default_handlers: dict[str, ResultHandler | None] = {}
        self._dispatch: dict[str, Any] = {}
        self._monitoring = 0

    # -- loading ---------------------------------------------------------------------------
    def register_builtins(self, disabled: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for name, module in BUILTIN_PLUGINS.items():
            if name in disabled:
                self.set_blocked(name)
                continue
            self.register(importlib.import_module(module), name=name)

    def load_entry_points(self, disabled: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            if ep.name in disabled or (dist and dist in disabled) or self.is_blocked(ep.name):
                self.set_blocked(ep.name)
                continue
            if self.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the engine down
                logger.error("Could not load runwright plugin %r (%s): %r; disable it with [plugins] disable = [%r]", ep.name, dist, exc, ep.name)
                continue
            self.register(plugin, name=ep.name)
            if ep.dist is not None:
                self.dist_of[ep.name] = (ep.dist.name, ep.dist.version)

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        result = super().register(plugin, name)
        self._registry = None  # names may change
        self._default_handlers = {}
        self._dispatch = {}
        return result

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        result = super().unregister(plugin, name)
        self._registry = None
        self._default_handlers = {}
        self._dispatch = {}
        return result

    # -- listing ---------------------------------------------------------------------------
    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or [])
            dist, version = self.dist_of.get(name, (None, None))
            builtin = name in BUILTIN_PLUGINS
            if builtin:
                dist, version = "runwright", _version("runwright")
            infos.append(PluginInfo(name=name, version=version, hooks=hooks, dist=dist, builtin=builtin))
        return sorted(infos, key=lambda i: (not i.builtin, i.name))

    # -- error attribution -----------------------------------------------------------------
    def plugin_name_for_error(self, hook_name: str, tb: TracebackType | None) -> str:
        """The name of the plugin whose implementation of ``hook_name`` appears in ``tb``."""
        codes = set()
        while tb is not None:
            codes.add(tb.tb_frame.f_code)
            tb = tb.tb_next
        caller = getattr(self.hook, hook_name)
        for impl in caller.get_hookimpls():
            if getattr(impl.function, "__code__", None) in codes:
                return impl.plugin_name
        return "<unknown plugin>"

    def call_attributed(
        self,
        hook_name: str,
        passthrough: tuple[type[BaseException], ...] = (),
        on_plugin_error: Callable[[PluginError], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call a hook; an exception (other than ``passthrough``) becomes :class:`PluginError`
        naming the plugin, except from runwright's own built-in plugins.

        With ``on_plugin_error``, a failing implementation's error (as PluginError naming the
        plugin) is passed to the callback and the remaining implementations still run.

        Runners call hooks through here several times per task, so plain implementations are
        called directly (no per-call argument checks or result objects); hooks with wrapper
        implementations, and any hook while call monitoring is on, go through pluggy.
        """
        entry = self._dispatch.get(hook_name)
        if entry is None:
            entry = self._dispatch_entry(hook_name)
        if entry is False:
            try:
                return getattr(self.hook, hook_name)(**kwargs)
            except passthrough:
                raise
            except Exception as exc:
                plugin = self.plugin_name_for_error(hook_name, exc.__traceback__)
                if on_plugin_error is not None:
                    on_plugin_error(PluginError(plugin, hook_name, exc))
                    return None  # (pluggy's path: the remaining implementations are skipped)
                if plugin in BUILTIN_PLUGINS:
                    raise  # runwright's own defaults raise errors that already say what is wrong
                raise PluginError(plugin, hook_name, exc) from exc
        firstresult, impls = entry
        results = []
        for function, arguments, plugin in impls:
            try:
                result = function(*arguments(kwargs))
            except passthrough:
                raise
            except Exception as exc:
                if on_plugin_error is not None:
                    on_plugin_error(PluginError(plugin, hook_name, exc))
                    continue
                if plugin in BUILTIN_PLUGINS:
                    raise
                raise PluginError(plugin, hook_name, exc) from exc
            if result is not None:
                if firstresult:
                    return result
                results.append(result)
        return None if firstresult else results

    def _dispatch_entry(self, hook_name: str) -> Any:
        caller = getattr(self.hook, hook_name)
        impls = caller.get_hookimpls()
        if self._monitoring or any(impl.hookwrapper or impl.wrapper for impl in impls):
            entry: Any = False
        else:
            firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
            # pluggy calls the last registered (and tryfirst) implementations first
            entry = (firstresult, tuple((i.function, _arguments_getter(i.argnames), i.plugin_name) for i in reversed(impls)))
        self._dispatch[hook_name] = entry
        return entry

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        self._monitoring += 1
        self._dispatch = {}
        undo = super().add_hookcall_monitoring(before, after)

        def undo_monitoring() -> None:
            undo()
            self._monitoring -= 1
            self._dispatch = {}

        return undo_monitoring

    # -- registries ------------------------------------------------------------------------
    @property
    def registry(self) -> _Registry:
        registry = self._registry
        if registry is None:
            with self._registry_lock:
                registry = self._registry
                if registry is None:
                    registry = self._build_registry()
                    self._registry = registry
        return registry

    def _build_registry(self) -> _Registry:
        registry = _Registry()

        def register_handler(cls: type[ResultHandler], name: str | None = None) -> None:
            name = name or cls.handler_name or cls.__name__
            existing = registry.result_handlers.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"Result handler name {name!r} is registered twice: {existing!r} and {cls!r}")
            if not cls.handler_name:
                cls.handler_name = name
            registry.result_handlers[name] = cls

        def register_validator(name: str, validator: Callable[..., Any]) -> None:
            registry.cache_validators[name] = validator

        def register_executor(name: str, cls: type) -> None:
            registry.executors[name] = cls

        def register_backend(backend: Backend) -> None:
            from runwright.backends import Backend

            if not isinstance(backend, Backend) or not backend.name:
                raise TypeError(f"register() takes a named runwright.backends.Backend instance, not {backend!r}")
            existing = registry.backends.get(backend.name)
            if existing is not None and existing is not backend:
                raise ValueError(f"Backend name {backend.name!r} is registered twice: {existing!r} and {backend!r}")
            registry.backends[backend.name] = backend

        self.call_attributed("runwright_register_result_handlers", register=register_handler)
        self.call_attributed("runwright_register_cache_validators", register=register_validator)
        self.call_attributed("runwright_register_executors", register=register_executor)
        self.call_attributed("runwright_register_backends", register=register_backend)
        return registry

    def _lookup(self, kind: str, table: dict[str, Any], name: str) -> Any:
        try:
            return table[name]
        except KeyError:
            installed = ", ".join(sorted(table)) or "(none)"
            raise UnknownNameError(
                f"{kind} {name!r} is not installed (installed: {installed}). "
                f"{_known_dist_hint(kind, name)}"
            ) from None

    def result_handler_class(self, name: str, missing_ok: bool = False) -> type[ResultHandler] | None:
        if missing_ok:
            return self.registry.result_handlers.get(name)
        return self._lookup("Result handler", self.registry.result_handlers, name)  # type: ignore[no-any-return]

    def result_handler_name(self, cls: type[ResultHandler]) -> str | None:
        for name, registered in self.registry.result_handlers.items():
            if registered is cls:
                return name
        return None

    def make_result_handler(self, spec: ResultHandler | str | None) -> ResultHandler | None:
        """A handler instance from an instance, a registered name, or None."""
        if spec is None or isinstance(spec, ResultHandler):
            return spec
        cls = self.result_handler_class(spec)
        assert cls is not None
        return cls()

    def default_result_handler(self) -> ResultHandler | None:
        """An instance of the handler named by ``[engine] result_handler`` (None if unset or
        not installed: storing a result then fails with an error saying what to install)."""
        name = get_config().get_nested("engine.result_handler")
        if not name:
            return None
        cache = self._default_handlers
        if name not in cache:
            cls = self.result_handler_class(name, missing_ok=True)
            cache[name] = cls() if cls is not None else None
        return cache[name]

    def handler_for_uri(self, uri: str) -> ResultHandler:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        for cls in self.registry.result_handlers.values():
            if scheme and scheme in cls.uri_schemes:
                return cls.from_uri(uri)
        known = sorted({s for c in self.registry.result_handlers.values() for s in c.uri_schemes})
        raise UnknownNameError(
            f"No installed result handler reads {uri!r} (scheme {scheme or '(none)'!r}; known schemes: "
            f"{', '.join(known) or '(none)'}). Install the plugin for that storage, e.g. runwright-gcs for gs://"
        )

    def cache_validator(self, name: str) -> Callable[..., Any]:
        return self._lookup("Cache validator", self.registry.cache_validators, name)  # type: ignore[no-any-return]

    def executor_class(self, name: str) -> type:
        return self._lookup("Executor", self.registry.executors, name)  # type: ignore[no-any-return]

    def backend(self, name: str) -> Backend:
        """The backend registered as ``name`` (``--backend``, ``[engine] backend``)."""
        backend = self.registry.backends.get(name)
        if backend is None:
            installed = ", ".join(sorted(self.registry.backends)) or "(none)"
            raise UnknownNameError(f"Unknown backend {name!r} (installed: {installed}). {_known_dist_hint('Backend', name)}")
        return backend

    # -- results ---------------------------------------------------------------------------
    def write_result(self, value: Any, handler: ResultHandler) -> str:
        location = self.call_attributed("runwright_result_write", value=value, handler=handler)
        if location is None:
            raise PluginError("<none>", "runwright_result_write", RuntimeError("no plugin wrote the result"))
        return location  # type: ignore[no-any-return]

    def read_result(self, location: str, handler: ResultHandler | None = None) -> Any:
        result: Result | None = self.call_attributed("runwright_result_read", location=location, handler=handler)
        if result is None:
            raise UnknownNameError(f"No plugin could read the result at {location!r}")
        return result.value


def _arguments_getter(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function picking the values of ``names`` out of a call's keyword arguments, in order
    (``operator.itemgetter``, which returns a bare value for a single name, made uniform)."""
    if not names:
        return lambda kwargs: ()
    if len(names) == 1:
        name = names[0]
        return lambda kwargs: (kwargs[name],)
    return operator.itemgetter(*names)  # type: ignore[return-value]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def build_plugin_manager(autoload: bool | None = None, builtins: bool = True) -> RunwrightPluginManager:
    """A new, fully loaded plugin manager (the factory; tests and workers use it too)."""
    pm = RunwrightPluginManager()
    disabled = {str(name) for name in get_config().get_nested("plugins.disable", []) or []}
    if builtins:
        pm.register_builtins(disabled)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        pm.load_entry_points(disabled)
    pm.check_pending()
    return pm


_pm: RunwrightPluginManager | None = None
_pm_lock = threading.Lock()


def get_plugin_manager() -> RunwrightPluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    pm = _pm
    if pm is None:
        with _pm_lock:
            if _pm is None:
                _pm = build_plugin_manager()
            pm = _pm
    return pm


def set_plugin_manager(pm: RunwrightPluginManager | None) -> None:
    """Replace the process-wide manager (None: rebuild on next use)."""
    global _pm
    _pm = pm


@contextmanager
def use_plugin_manager(pm: RunwrightPluginManager) -> Iterator[RunwrightPluginManager]:
    """Use ``pm`` as the process-wide manager inside a ``with`` block."""
    global _pm
    previous = _pm
    _pm = pm
    try:
        yield pm
    finally:
        _pm = previous
