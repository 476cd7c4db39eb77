"""The cluster session: the ``[plugins.dask]`` settings, and connecting to a cluster (or
starting a ``LocalCluster``) for the duration of a flow run.

Importing this module does not import ``distributed``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

#: ``[plugins.dask]`` keys and their defaults ("" / 0 mean "let Dask decide").
CONFIG_DEFAULTS: dict[str, Any] = {
    "address": "",
    "local_processes": False,
    "n_workers": 0,
    "threads_per_worker": 0,
    "map_chunk_size": 0,
}


def plugin_config() -> dict[str, Any]:
    """The ``[plugins.dask]`` table merged over :data:`CONFIG_DEFAULTS`."""
    from runwright.config import get_config

    return get_config().plugin_section("dask", CONFIG_DEFAULTS)


@contextmanager
def cluster_session(address: str | None, local_processes: bool, client_kwargs: dict[str, Any]) -> Iterator[Client]:
    """A ``distributed.Client`` connected to ``address``, or to a ``LocalCluster`` started
    here (``client_kwargs`` go to the cluster then, else to the client); whatever was
    started is closed on exit."""
    from distributed import Client, LocalCluster

    if address is not None:
        client = Client(address, set_as_default=False, **client_kwargs)
        cluster = None
    else:
        from runwright.config import get_config

        options: dict[str, Any] = {
            "processes": local_processes,
            "dashboard_address": None,
            "silence_logs": logging.WARNING if get_config().get("debug") else logging.CRITICAL,
        }
        if local_processes:
            options["host"] = "127.0.0.1"  # not with threads: inproc:// then breaks
        options.update(client_kwargs)
        with warnings.catch_warnings():
            # dashboard_address=None still serves /health on 8787, or any free port
            warnings.filterwarnings("ignore", message="Port 8787 is already in use")
            cluster = LocalCluster(**options)
        try:
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
    try:
        yield client
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def connection_is_usable(client: Client | None) -> tuple[bool, str]:
    """Whether ``client`` still talks to its scheduler, and its status."""
    status = str(getattr(client, "status", "closed"))
    return client is not None and status in ("running", "newly-created", "connecting"), status


def inside_dask_task() -> bool:
    """True in a thread that runs a Dask task (a worker of any cluster)."""
    from distributed.worker import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True
