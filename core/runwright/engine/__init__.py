"""The engine: states, results, signals, runners and executors."""

from __future__ import annotations

import importlib
from typing import Any


def _load_class(dotted: str | None, default: Any) -> Any:
    if not dotted:
        return default
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"Cannot load class {dotted!r} named in the configuration: {exc}") from exc


def get_default_flow_runner_class() -> Any:
    """``[engine] flow_runner`` (a dotted class path) or FlowRunner."""
    from runwright.config import get_config
    from runwright.engine.flow_runner import FlowRunner

    return _load_class(get_config().get_nested("engine.flow_runner"), FlowRunner)


def get_default_task_runner_class() -> Any:
    """``[engine] task_runner`` (a dotted class path) or TaskRunner."""
    from runwright.config import get_config
    from runwright.engine.task_runner import TaskRunner

    return _load_class(get_config().get_nested("engine.task_runner"), TaskRunner)
