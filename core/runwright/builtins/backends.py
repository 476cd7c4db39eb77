"""Registers the ``local`` backend: runs are recorded nowhere but in the returned states."""

from __future__ import annotations

from collections.abc import Callable

from runwright.backends import Backend
from runwright.hookspecs import hookimpl


class LocalBackend(Backend):
    """No backend: nothing is reported, the cache plugins answer cache checks."""

    name = "local"


@hookimpl
def runwright_register_backends(register: Callable[..., None]) -> None:
    register(LocalBackend())
