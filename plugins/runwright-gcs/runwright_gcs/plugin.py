"""runwright-gcs's hook implementations: registers ``GCSResultHandler`` as ``gcs``.

Importing this module (which every runwright process does when it loads plugins) does not
import the Google libraries; they load on the first read or write.
"""

from __future__ import annotations

from collections.abc import Callable

from runwright import hookimpl
from runwright_gcs.handler import CONFIG_DEFAULTS, GCSResultHandler


@hookimpl
def runwright_register_result_handlers(register: Callable[..., None]) -> None:
    """Make ``result_handler = "gcs"``, ``{"type": "gcs"}`` and ``gs://`` URIs resolve here."""
    register(GCSResultHandler, name="gcs")


@hookimpl
def runwright_register_config(register: Callable[..., None]) -> None:
    """``[plugins.gcs]``: ``bucket``, ``prefix``, ``project``, ``credentials``, ``timeout``."""
    register("plugins.gcs", CONFIG_DEFAULTS)
