"""Registers the ``dask`` executor. Importing this module does not import ``distributed``."""

from __future__ import annotations

from collections.abc import Callable

from runwright import hookimpl
from runwright_dask.executor import DaskExecutor


@hookimpl
def runwright_register_executors(register: Callable[..., None]) -> None:
    register("dask", DaskExecutor)


@hookimpl
def runwright_register_config(register: Callable[..., None]) -> None:
    """``[plugins.dask]``: the executor's defaults when it is named, not built."""
    from runwright_dask.session import CONFIG_DEFAULTS

    register("plugins.dask", CONFIG_DEFAULTS)
