"""Read a ``[section] key`` from runwright's configuration (files and environment).

The environment variable ``RUNWRIGHT__<SECTION>__<KEY>`` is read at call time (typed by the
core's rules), so a value exported after the configuration was first loaded still counts;
otherwise the value comes from the loaded configuration files.
"""

from __future__ import annotations

import os
from typing import Any


def config_value(section: str, key: str, default: Any = None) -> Any:
    """``[section] key`` from the environment or the configuration, else ``default``."""
    from runwright.config import get_config, parse_env_value

    raw = os.environ.get(f"RUNWRIGHT__{section.upper()}__{key.upper()}")
    if raw is not None:
        return parse_env_value(raw)
    value = get_config().get_nested(f"{section}.{key}")
    return default if value is None else value
