"""Registers the core's configuration tables: those of the packaged ``config.toml`` with
their keys, and ``[context]``, whose keys are free (they seed the run context)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

from runwright.config import DEFAULTS_PATH
from runwright.hookspecs import hookimpl


def packaged_tables() -> dict[str, dict[str, Any]]:
    """Every table of the packaged ``config.toml`` (``""``: the top level) and its scalar keys."""
    with DEFAULTS_PATH.open("rb") as fh:
        data = tomllib.load(fh)
    tables: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any], path: str) -> None:
        tables[path] = {k: v for k, v in node.items() if not isinstance(v, dict)}
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{path}.{key}" if path else key)

    walk(data, "")
    return tables


@hookimpl
def runwright_register_config(register: Callable[..., None]) -> None:
    for name, defaults in packaged_tables().items():
        register(name, defaults)
    register("context", free_form=True)
