"""runwright-cloud: report runs to a runwright server, and (with the ``[server]`` extra) the server.

Importing this package never imports the engine core or the server stack; the client is
:class:`runwright_cloud.client.Client`. ``CloudFlowRunner``, ``CloudTaskRunner`` and
``CloudResultHandler`` are imported on first access (``from runwright_cloud import
CloudFlowRunner``).
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "CloudFlowRunner": "runwright_cloud.runners",
    "CloudTaskRunner": "runwright_cloud.runners",
    "CloudResultHandler": "runwright_cloud.result_handler",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runwright_cloud' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
