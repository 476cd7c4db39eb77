"""Registries: names that configuration can use, filled by plugins' registration hooks.

Each registry is one :class:`RegistrySpec`: the hook that fills it, what its entries are
called in messages, and how the ``register(...)`` callback handed to plugins stores an entry.
Adding a registry is a spec in :data:`REGISTRIES` plus a lookup method on the manager, as
the backends registry shows::

    RegistrySpec("backends", "runwright_register_backends", "Backend", add_backend)
    def backend(self, name): return self.lookup("backends", name)

All registries are built together, by calling every registration hook once, the first time
a name is looked up; they are built again only when a plugin that implements a registration
hook is registered or unregistered (registering any other plugin keeps them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runwright.engine.result_handlers import ResultHandler
from runwright.plugins.config_tables import ConfigTable, add_config_table
from runwright.plugins.errors import UnknownNameError

if TYPE_CHECKING:
    from runwright.plugins.dispatch import HookDispatcher

#: ``adapter(table)`` returns the ``register`` callback plugins call to add to ``table``
Adapter = Callable[[dict[str, Any]], Callable[..., None]]


@dataclass(frozen=True)
class RegistrySpec:
    """One registry: its attribute name, its registration hook, its kind (for messages)."""

    name: str
    hook: str
    kind: str
    adapter: Adapter


def add_named(table: dict[str, Any]) -> Callable[..., None]:
    """``register(name, value)``; a later call for a name replaces the entry."""

    def register(name: str, value: Any) -> None:
        table[name] = value

    return register


def add_result_handler(table: dict[str, Any]) -> Callable[..., None]:
    """``register(handler_class, name=None)``: the name defaults to the class's
    ``handler_name`` (set to the name when empty); a name registered twice is an error."""

    def register(cls: type[ResultHandler], name: str | None = None) -> None:
        name = name or cls.handler_name or cls.__name__
        existing = table.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"Result handler name {name!r} is registered twice: {existing!r} and {cls!r}")
        if not cls.handler_name:
            cls.handler_name = name
        table[name] = cls

    return register


def add_named_instance(kind: str, base: Callable[[], type]) -> Adapter:
    """The adapter of a registry of named objects: ``register(obj)`` takes an instance of
    ``base()`` (a callable, so that this module need not import the engine) with a non-empty
    ``name``; a name registered twice (by another object) is an error naming both."""

    def adapter(table: dict[str, Any]) -> Callable[..., None]:
        def register(obj: Any) -> None:
            cls = base()
            name = getattr(obj, "name", None)
            if not isinstance(obj, cls) or not name:
                raise TypeError(f"register() takes a named {cls.__module__}.{cls.__qualname__} instance, not {obj!r}")
            existing = table.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{kind} name {name!r} is registered twice: {existing!r} and {obj!r}")
            table[name] = obj

        return register

    return adapter


def _backend_class() -> type:
    # (runwright.backends imports the engine, which imports this module)
    from runwright.backends import Backend

    return Backend


def _storage_class() -> type:
    from runwright.storage import Storage

    return Storage


#: ``register(backend)``: a named :class:`runwright.backends.Backend` instance
add_backend = add_named_instance("Backend", _backend_class)
#: ``register(storage)``: a named :class:`runwright.storage.Storage` instance
add_storage = add_named_instance("Storage", _storage_class)


REGISTRIES: tuple[RegistrySpec, ...] = (
    RegistrySpec("result_handlers", "runwright_register_result_handlers", "Result handler", add_result_handler),
    RegistrySpec("cache_validators", "runwright_register_cache_validators", "Cache validator", add_named),
    RegistrySpec("executors", "runwright_register_executors", "Executor", add_named),
    RegistrySpec("backends", "runwright_register_backends", "Backend", add_backend),
    RegistrySpec("storages", "runwright_register_storages", "Storage", add_storage),
    RegistrySpec("config_tables", "runwright_register_config", "Configuration table", add_config_table),
)

#: The registration hooks that fill registries (a plugin implementing one changes them).
REGISTRATION_HOOKS = frozenset(spec.hook for spec in REGISTRIES)


class Registries:
    """Every registry's table, built together from one plugin set. Never changed after the
    build (a rebuild makes a new object), so readers need no lock."""

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables
        #: ``[engine] result_handler`` instances by name, made on first use
        self.default_handlers: dict[str, ResultHandler | None] = {}

    @property
    def result_handlers(self) -> dict[str, type[ResultHandler]]:
        return self.tables["result_handlers"]

    @property
    def cache_validators(self) -> dict[str, Callable[..., Any]]:
        return self.tables["cache_validators"]

    @property
    def executors(self) -> dict[str, type]:
        return self.tables["executors"]

    @property
    def backends(self) -> dict[str, Any]:
        return self.tables["backends"]

    @property
    def storages(self) -> dict[str, Any]:
        return self.tables["storages"]

    @property
    def config_tables(self) -> dict[str, ConfigTable]:
        return self.tables["config_tables"]

    def lookup(self, registry: str, name: str, disabled: bool = False) -> Any:
        """The entry ``name`` of ``registry``; UnknownNameError listing the installed names
        (``disabled``: a plugin of that name is installed but disabled)."""
        table = self.tables[registry]
        try:
            return table[name]
        except KeyError:
            kind = next(spec.kind for spec in REGISTRIES if spec.name == registry)
            raise UnknownNameError(not_installed_message(kind, name, table, disabled)) from None


def build_registries(pm: HookDispatcher) -> Registries:
    """Call every registration hook once and collect what the plugins register."""
    tables: dict[str, dict[str, Any]] = {}
    for spec in REGISTRIES:
        table: dict[str, Any] = {}
        pm.call_attributed(spec.hook, register=spec.adapter(table))
        tables[spec.name] = table
    return Registries(tables)


def not_installed_message(kind: str, name: str, installed: dict[str, Any], disabled: bool = False) -> str:
    """"Result handler 'gcs' is not installed (installed: json, local). Install ...": the
    installed names, and how to get the missing one. The core names no plugin: the hint
    relies on the convention that runwright's plugins are published as ``runwright-<name>``
    for what they provide by name, and on a disabled plugin having that name."""
    names = ", ".join(sorted(installed)) or "(none)"
    if disabled:
        return (
            f"{kind} {name!r} is not available (installed: {names}): the plugin {name!r} is disabled "
            "by [plugins] disable; remove it from that list to use it"
        )
    if kind == "Cache validator":  # validators are named after what they compare, not their plugin
        hint = "Install the plugin that registers it"
    else:
        hint = f"Install the plugin that provides it (by convention: pip install runwright-{name})"
    return f"{kind} {name!r} is not installed (installed: {names}). {hint}; `runwright plugins` lists the loaded plugins"
