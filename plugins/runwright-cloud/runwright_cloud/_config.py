"""Read a ``[section] key`` from runwright's configuration (files and environment).

The core's loader already applies ``RUNWRIGHT__<SECTION>__<KEY>`` environment overrides
with typed values, so the client, the runners and the server read everything through it.
"""

from __future__ import annotations

from typing import Any


def config_value(section: str, key: str, default: Any = None) -> Any:
    """``[section] key`` from the configuration, else ``default``."""
    from runwright.config import get_config

    value = get_config().get_nested(f"{section}.{key}")
    return default if value is None else value
