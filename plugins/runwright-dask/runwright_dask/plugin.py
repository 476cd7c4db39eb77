"""Registers the ``dask`` executor. Importing this module does not import ``distributed``."""

from __future__ import annotations

from collections.abc import Callable

from runwright import hookimpl
from runwright_dask.executor import DaskExecutor


@hookimpl
def runwright_register_executors(register: Callable[..., None]) -> None:
    register("dask", DaskExecutor)
