"""Configuration: packaged defaults, a user TOML file, then environment overrides.

Load order (later wins):

1. ``config.toml`` shipped inside the package;
2. the user file: ``$RUNWRIGHT_CONFIG`` if set, else ``~/.runwright/config.toml``;
3. environment variables ``RUNWRIGHT__SECTION__KEY=value`` (any depth, lower-cased), whose
   values are typed: ``true``/``false`` become bools, integers and floats become numbers,
   anything else stays a string. A value that parses as TOML (a list, say ``["a", "b"]``)
   takes that type.
"""

from __future__ import annotations

import copy
import os
import threading
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENV_PREFIX = "RUNWRIGHT__"
DEFAULTS_PATH = Path(__file__).with_name("config.toml")


class ConfigError(ValueError):
    """The configuration is invalid; the message says which file or key and how to fix it."""


class Config(dict):  # type: ignore[type-arg]
    """A nested dict with dotted lookups: ``config.get_nested("engine.executor")``."""

    def get_nested(self, dotted: str, default: Any = None) -> Any:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def set_nested(self, dotted: str, value: Any) -> None:
        parts = dotted.split(".")
        node = self
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def section(self, dotted: str) -> dict[str, Any]:
        """The table at ``dotted`` (an empty dict when missing)."""
        value = self.get_nested(dotted, {})
        return value if isinstance(value, dict) else {}

    def plugin_section(self, name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The ``[plugins.<name>]`` table merged over ``defaults``.

        A key that the plugin does not know is a :class:`ConfigError` naming the key and the
        keys it accepts, so a typo never silently falls back to a default.
        """
        given = self.section(f"plugins.{name}")
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {', '.join(unknown)} in [plugins.{name}]; "
                f"accepted keys: {', '.join(sorted(defaults)) or '(none)'}"
            )
        merged = dict(defaults)
        merged.update(given)
        return merged


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def parse_env_value(raw: str) -> Any:
    """Type an environment value: bool, int, float, a TOML literal, or the string itself."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    if raw.strip()[:1] in ("[", "{"):
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    return raw


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user config file: ``$RUNWRIGHT_CONFIG`` or ``~/.runwright/config.toml``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("RUNWRIGHT_CONFIG") or Path.home() / ".runwright" / "config.toml")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Invalid TOML in config file {path}: {exc}. Fix the file or set RUNWRIGHT_CONFIG to another one.") from exc


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = _read_toml(DEFAULTS_PATH)
    path = user_config_path(environ)
    if environ.get("RUNWRIGHT_CONFIG") and not path.exists():
        raise ConfigError(f"RUNWRIGHT_CONFIG names {path}, which does not exist. Create it or unset RUNWRIGHT_CONFIG.")
    if path.exists():
        _deep_merge(data, _read_toml(path))
    config = Config(data)
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX):].lower().replace("__", ".")
            config.set_nested(dotted, parse_env_value(raw))
    _expand_home(config)
    return config


def _expand_home(node: dict[str, Any]) -> None:
    for key, value in node.items():
        if isinstance(value, dict):
            _expand_home(value)
        elif isinstance(value, str) and value.startswith("~"):
            node[key] = os.path.expanduser(value)


_lock = threading.Lock()
_config: Config | None = None


def get_config() -> Config:
    """The process-wide configuration, loaded on first use."""
    global _config
    if _config is None:
        with _lock:
            if _config is None:
                _config = load_config()
    return _config


def reload_config() -> Config:
    """Read the files and environment again (tests, and workers after a config change)."""
    global _config
    with _lock:
        _config = load_config()
    return _config


@contextmanager
def temporary_config(settings: Mapping[str, Any]) -> Iterator[Config]:
    """Set dotted keys for the duration of a ``with`` block, then restore the previous config."""
    global _config
    previous = get_config()
    changed = Config(copy.deepcopy(dict(previous)))
    for dotted, value in settings.items():
        changed.set_nested(dotted, value)
    _config = changed
    try:
        yield changed
    finally:
        _config = previous
