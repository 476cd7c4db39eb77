"""Configuration tables: which keys each table accepts, registered by the core and plugins.

The core registers its own tables (those of the packaged ``config.toml``, ``[context]``
free-form); each plugin registers the tables it reads with their defaults
(``runwright_register_config``). :func:`check_config` holds a configuration against them:

* a key no registered table knows is a :class:`~runwright.config.ConfigError` naming the
  key, the table and the known keys, so a typo never silently falls back to a default;
* a whole table that no installed plugin registers (``[cloud]`` on a worker without
  runwright-cloud, ``[plugins.gcs]`` with runwright-gcs missing) is only a warning: one
  configuration file may serve machines with different plugins; a table name close to a
  registered one (``[plugins.locl]``) is an error, as a typo.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runwright.config import Config, ConfigError

#: tables whose unknown sub-tables may belong to plugins that are not installed
_PLUGIN_TABLE_PARENTS = ("", "plugins")


@dataclass
class ConfigTable:
    """One registered table: its dotted name, its keys with their defaults, whether any key
    goes (``[context]``)."""

    name: str
    defaults: dict[str, Any] = field(default_factory=dict)
    free_form: bool = False


def add_config_table(table: dict[str, Any]) -> Callable[..., None]:
    """``register(name, defaults=None, *, free_form=False)``: the table ``name`` (dotted,
    ``""`` for the top level) accepts the keys of ``defaults``. Registering a table again
    (two plugins reading ``[server] port``) adds its keys; the first default of a key stays."""

    def register(name: str, defaults: Mapping[str, Any] | None = None, *, free_form: bool = False) -> None:
        entry = table.setdefault(name, ConfigTable(name))
        for key, value in (defaults or {}).items():
            entry.defaults.setdefault(key, copy.deepcopy(value))
        entry.free_form = entry.free_form or free_form

    return register


def _label(name: str) -> str:
    return f"[{name}]" if name else "the top level"


def _child_tables(tables: Mapping[str, ConfigTable], parent: str) -> list[str]:
    prefix = f"{parent}." if parent else ""
    return sorted(
        name[len(prefix):] for name in tables if name and name.startswith(prefix) and "." not in name[len(prefix):]
    )


def check_config(config: Mapping[str, Any], tables: Mapping[str, ConfigTable]) -> list[str]:
    """Check every key of ``config``; return warnings for tables of plugins not installed.

    Raises ConfigError for the first unknown key. Nothing is checked when the top level is
    not registered (the core's registration plugin disabled)."""
    if "" not in tables:
        return []
    warnings: list[str] = []
    _check_table(config, "", tables, warnings)
    return warnings


def _check_table(node: Mapping[str, Any], path: str, tables: Mapping[str, ConfigTable], warnings: list[str]) -> None:
    table = tables[path]
    if table.free_form:
        return
    children = _child_tables(tables, path)
    for key, value in node.items():
        child = f"{path}.{key}" if path else key
        if child in tables:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{child} must be a table ([{child}]), not {value!r}")
            _check_table(value, child, tables, warnings)
            continue
        if key in table.defaults:
            continue
        if isinstance(value, Mapping):
            close = difflib.get_close_matches(key, children, n=1, cutoff=0.75)
            if path in _PLUGIN_TABLE_PARENTS and not close:
                warnings.append(
                    f"Configuration table [{child}] is read by no installed plugin, so it is ignored "
                    f"(tables of the installed ones: {', '.join(f'[{c}]' for c in _all_tables(tables)) or '(none)'}); "
                    "install the plugin it configures, or remove the table"
                )
                continue
            hint = f"; did you mean [{path + '.' if path else ''}{close[0]}]?" if close else ""
            raise ConfigError(
                f"Unknown table [{child}] in {_label(path)}{hint} Known tables there: "
                f"{', '.join(children) or '(none)'}; known keys: {', '.join(sorted(table.defaults)) or '(none)'}"
            )
        known = sorted(table.defaults)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"Unknown key {key!r} in {_label(path)}{hint}; known keys: {', '.join(known) or '(none)'}"
            + (f"; tables: {', '.join(children)}" if children else "")
        )


def _all_tables(tables: Mapping[str, ConfigTable]) -> list[str]:
    return sorted(name for name in tables if name)


def with_defaults(config: Mapping[str, Any], tables: Mapping[str, ConfigTable]) -> Config:
    """``config`` over every registered table's defaults (what ``runwright config`` shows):
    a plugin's keys appear with their defaults even when no file sets them. The tables of
    ``config`` come first, in their order; tables only a plugin registered follow."""
    merged = Config(copy.deepcopy(dict(config)))
    for name in sorted(tables, key=lambda n: n.count(".")):
        if not name:
            continue
        node: Any = merged
        for part in name.split("."):
            if not isinstance(node, dict):
                break
            node = node.setdefault(part, {})
        if isinstance(node, dict):
            for key, value in tables[name].defaults.items():
                node.setdefault(key, copy.deepcopy(value))
    return merged
