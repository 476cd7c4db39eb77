"""Read a ``[section] key`` from the core configuration, lazily, with an environment fallback.

The core (``runwright.config``) is imported on first use only, so the client and the server
stay importable without the core installed. When it is missing, the value comes from the
environment variable ``RUNWRIGHT__<SECTION>__<KEY>`` (the core's own override convention).
"""

from __future__ import annotations

import os
from typing import Any


def _core_section(section: str) -> dict[str, Any] | None:
    try:
        from runwright import config as core_config
    except ImportError:
        return None
    getter = getattr(core_config, "get_config", None)
    cfg: Any = getter() if callable(getter) else getattr(core_config, "config", None)
    if cfg is None:
        return None
    value = cfg.get(section, {})
    return value if isinstance(value, dict) else {}


def _env_value(section: str, key: str) -> Any:
    raw = os.environ.get(f"RUNWRIGHT__{section.upper()}__{key.upper()}")
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def config_value(section: str, key: str, default: Any = None) -> Any:
    """``[section] key`` from the core config, else ``RUNWRIGHT__SECTION__KEY``, else ``default``."""
    values = _core_section(section)
    if values is not None and values.get(key) is not None:
        return values[key]
    value = _env_value(section, key)
    return default if value is None else value
