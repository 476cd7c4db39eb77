"""The plugin manager: built-in defaults plus plugins found through entry points.

``build_plugin_manager()`` makes a loaded manager: it registers the built-in plugins by
name, then loads every entry point of the ``runwright`` group, except when
``RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD`` is set or the entry point (or its distribution) is
listed in ``[plugins] disable``. The manager is never pickled: an executor worker in
another process builds its own from its configuration. Hook calls go through the
dispatcher (:mod:`runwright.plugins.dispatch`), names through the registries
(:mod:`runwright.plugins.registries`), results through ``pm.results``
(:mod:`runwright.plugins.results`).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from runwright import hookspecs
from runwright.config import Config, get_config
from runwright.engine.result_handlers import ResultHandler
from runwright.plugins.config_tables import check_config, with_defaults
from runwright.plugins.dispatch import HookDispatcher
from runwright.plugins.errors import UnknownNameError
from runwright.plugins.registries import REGISTRATION_HOOKS, Registries, build_registries
from runwright.plugins.results import ResultStore

if TYPE_CHECKING:
    from runwright.backends import Backend
    from runwright.storage import Storage

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
    "runwright.config_tables": "runwright.builtins.config_tables",
}


#: Builds of the registries a lookup tries while registrations overtake them.
_MAX_REGISTRY_BUILDS = 10


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    dist: str | None = None
    builtin: bool = False


class RunwrightPluginManager(HookDispatcher):
    """pluggy's manager plus runwright's loading, registries and result store."""

    unattributed_plugins = frozenset(BUILTIN_PLUGINS)

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.dist_of: dict[str, tuple[str, str]] = {}
        self._registries: Registries | None = None
        #: bumped when a plugin implementing a registration hook comes or goes
        self.registries_version = 0
        self._registries_build_lock = threading.Lock()
        #: writes and reads results through this manager's result hooks
        self.results = ResultStore(self)
        #: the configuration object last found valid, and the warnings already logged
        self._checked_config: Config | None = None
        self._config_warnings: set[str] = set()

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
        with self._lock:
            result = super().register(plugin, name)
            if result is not None and self._implements_registration_hook(plugin):
                self._registries_changed()
            return result

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        with self._lock:
            known = plugin if plugin is not None else self.get_plugin(name) if name is not None else None
            changes_registries = known is not None and self._implements_registration_hook(known)
            result = super().unregister(plugin, name)
            if changes_registries:
                self._registries_changed()
            return result

    def _implements_registration_hook(self, plugin: Any) -> bool:
        return any(caller.name in REGISTRATION_HOOKS for caller in self.get_hookcallers(plugin) or ())

    def _registries_changed(self) -> None:
        self.registries_version += 1
        self._registries = None

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

    # -- registries ------------------------------------------------------------------------
    @property
    def registry(self) -> Registries:
        """Every registry, built on first use by calling the registration hooks once.

        If a plugin implementing a registration hook is registered or unregistered while the
        registries are being built, the build starts again: what this returns always
        matches the plugins registered when it returns."""
        registries = self._registries
        if registries is not None:
            return registries
        with self._registries_build_lock:
            for _ in range(_MAX_REGISTRY_BUILDS):
                registries = self._registries
                if registries is not None:
                    return registries
                version = self.registries_version
                built = build_registries(self)
                with self._lock:
                    if self.registries_version == version:
                        self._registries = built
                        return built
            return built  # plugins keep registering plugins: use this build, keep none

    def lookup(self, registry: str, name: str) -> Any:
        """The entry ``name`` of the registry ``registry``; UnknownNameError listing the
        installed names (and saying so when a plugin of that name is disabled here)."""
        return self.registry.lookup(registry, name, disabled=self.is_blocked(name))

    def check_config(self, config: Config | None = None) -> None:
        """Hold ``config`` (default: the process's) against the registered tables: an
        unknown key is a ConfigError naming it and the known ones; a table of a plugin that
        is not installed is logged once as a warning. Checks a configuration object once
        (a flow run start costs an identity test); a failing one is checked again."""
        config = get_config() if config is None else config
        if config is self._checked_config:
            return
        for warning in check_config(config, self.registry.config_tables):
            if warning not in self._config_warnings:
                self._config_warnings.add(warning)
                logger.warning("%s", warning)
        self._checked_config = config

    def config_with_defaults(self, config: Config | None = None) -> Config:
        """``config`` over the defaults of every registered table (``runwright config``)."""
        return with_defaults(get_config() if config is None else config, self.registry.config_tables)

    def result_handler_class(self, name: str, missing_ok: bool = False) -> type[ResultHandler] | None:
        if missing_ok:
            return self.registry.result_handlers.get(name)
        return self.lookup("result_handlers", name)  # type: ignore[no-any-return]

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
        registries = self.registry
        cache = registries.default_handlers
        if name not in cache:
            cls = registries.result_handlers.get(name)
            cache[name] = cls() if cls is not None else None
        return cache[name]

    def handler_for_uri(self, uri: str) -> ResultHandler:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        handlers = self.registry.result_handlers
        for cls in handlers.values():
            if scheme and scheme in cls.uri_schemes:
                return cls.from_uri(uri)
        known = sorted({s for c in handlers.values() for s in c.uri_schemes})
        raise UnknownNameError(
            f"No installed result handler reads {uri!r} (scheme {scheme or '(none)'!r}; known schemes: "
            f"{', '.join(known) or '(none)'}). Install the plugin for that storage, e.g. runwright-gcs for gs://"
        )

    def cache_validator(self, name: str) -> Callable[..., Any]:
        return self.lookup("cache_validators", name)  # type: ignore[no-any-return]

    def executor_class(self, name: str) -> type:
        return self.lookup("executors", name)  # type: ignore[no-any-return]

    def backend(self, name: str) -> Backend:
        """The backend registered as ``name`` (``--backend``, ``[engine] backend``)."""
        return self.lookup("backends", name)  # type: ignore[no-any-return]

    def storage(self, name: str) -> Storage:
        """The storage registered as ``name`` (``runwright deploy --storage NAME``)."""
        return self.lookup("storages", name)  # type: ignore[no-any-return]

    # -- results (kept for code written against the manager; prefer ``pm.results``) -------
    def write_result(self, value: Any, handler: ResultHandler) -> str:
        return self.results.write(value, handler)

    def read_result(self, location: str, handler: ResultHandler | None = None) -> Any:
        return self.results.read(location, handler)


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
