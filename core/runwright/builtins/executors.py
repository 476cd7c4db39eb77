"""Registers the in-process executors: ``local`` and ``threads``."""

from __future__ import annotations

from collections.abc import Callable

from runwright.engine.executors import LocalExecutor, ThreadExecutor
from runwright.hookspecs import hookimpl


@hookimpl
def runwright_register_executors(register: Callable[..., None]) -> None:
    register("local", LocalExecutor)
    register("threads", ThreadExecutor)
