"""The ``runwright`` pytest plugin: fixtures for testing flows and plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def plugin_manager() -> Iterator[Any]:
    """A freshly built plugin manager, used as the process-wide one during the test."""
    from runwright.plugins import build_plugin_manager, use_plugin_manager

    pm = build_plugin_manager()
    with use_plugin_manager(pm):
        yield pm


@pytest.fixture
def hook_recorder(plugin_manager: Any) -> Iterator[Any]:
    """Records the hook calls made during the test."""
    from runwright.testing.recorder import HookRecorder

    recorder = HookRecorder(plugin_manager)
    yield recorder
    recorder.close()


@pytest.fixture
def run_flow(plugin_manager: Any) -> Callable[..., Any]:
    """``run_flow(flow, **kwargs)``: run a flow with the test's plugin manager."""

    def run(flow: Any, **kwargs: Any) -> Any:
        return flow.run(**kwargs)

    return run
