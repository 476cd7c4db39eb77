"""Executors run task runs: in-process (``local``), on a thread pool (``threads``), or on
plugins' backends (``dask`` from runwright-dask). Choose one by instance or registered name."""

from runwright.engine.executors.base import Executor, LostRun, run_with_timeout
from runwright.engine.executors.local import LocalExecutor
from runwright.engine.executors.threads import ThreadExecutor
from runwright.plugins import get_plugin_manager

__all__ = ["Executor", "LostRun", "LocalExecutor", "ThreadExecutor", "run_with_timeout", "resolve_executor"]


def resolve_executor(executor: "Executor | str | None") -> Executor:
    """An executor instance from an instance, a registered name, or None (config default)."""
    if isinstance(executor, Executor):
        return executor
    from runwright.config import get_config

    name = executor or get_config().get_nested("engine.executor", "local")
    if not isinstance(name, str):
        raise TypeError(f"executor must be an Executor instance or a registered name, got {type(executor).__name__}")
    return get_plugin_manager().executor_class(name)()  # type: ignore[no-any-return]
