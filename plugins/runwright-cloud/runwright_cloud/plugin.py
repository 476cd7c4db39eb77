"""The cloud plugin object (entry point ``cloud = runwright_cloud.plugin:plugin``).

:data:`plugin`, a :class:`CloudPlugin`, registers:

* the ``cloud`` backend (:class:`runwright_cloud.backend.CloudBackend`), which reports the
  runs that choose it and owns this process's reporting state;
* the ``cloud`` result handler (:class:`runwright_cloud.result_handler.CloudResultHandler`);
* the ``server`` storage (:class:`runwright_cloud.server_storage.ServerStorage`): deployed
  flow code kept by the runwright server;
* the ``runwright runs ...`` commands (and ``runwright server ...`` with the server),
  ``runwright deploy`` and ``runwright deployments ...``;
* ``runwright run --flow-run-id ID``: run (or resume) that flow run, on the cloud backend.

Loading the plugin imports neither the reporting code nor the HTTP client (requests): the
first cloud run does, except in a process configured for cloud runs, which loads them with
the plugin (see :func:`preload_for_configured_cloud_runs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runwright import hookimpl
from runwright_cloud.backend import CloudBackend
from runwright_cloud.keys import BACKEND_NAME, TAKE_OVER_KEY

if TYPE_CHECKING:
    import click

    from runwright.cli.options import RunRequest


class CloudPlugin:
    """runwright-cloud's hook implementations, and the backend they register."""

    def __init__(self) -> None:
        self.backend = CloudBackend()

    @hookimpl
    def runwright_register_backends(self, register: Callable[..., None]) -> None:
        register(self.backend)

    @hookimpl
    def runwright_register_result_handlers(self, register: Callable[..., None]) -> None:
        from runwright_cloud.result_handler import CloudResultHandler

        register(CloudResultHandler, "cloud")

    @hookimpl
    def runwright_register_storages(self, register: Callable[..., None]) -> None:
        from runwright_cloud.server_storage import ServerStorage

        register(ServerStorage())

    @hookimpl
    def runwright_register_config(self, register: Callable[..., None]) -> None:
        """``[cloud]``, and the ``[server] port`` the embedded server's address is made of."""
        from runwright_cloud.cloud_settings import DEFAULT_SERVER_PORT, DEFAULTS

        register("cloud", DEFAULTS)
        register("server", {"port": DEFAULT_SERVER_PORT})

    @hookimpl
    def runwright_register_commands(self, cli: click.Group) -> None:
        from runwright_cloud.commands import register_commands
        from runwright_cloud.deploy_commands import register_deploy_commands

        register_commands(cli)
        register_deploy_commands(cli)

    @hookimpl
    def runwright_add_options(self, command_name: str, add_option: Callable[..., None]) -> None:
        if command_name == "run":
            add_option(
                "--flow-run-id",
                default=None,
                help="Run (or resume) this existing flow run on the runwright server (implies --backend cloud).",
                apply=use_flow_run,
            )
            add_option(
                "--take-over",
                is_flag=True,
                default=False,
                help="With --flow-run-id: take the flow run over even if another runner seems to hold it "
                "(use when that runner is gone; a runner on this host whose process is gone is taken over anyway).",
                apply=take_over,
            )


def use_flow_run(request: RunRequest, flow_run_id: Any) -> None:
    """``runwright run --flow-run-id ID``: the run is that flow run, on the cloud backend."""
    request.backend = BACKEND_NAME
    request.context["flow_run_id"] = str(flow_run_id)


def take_over(request: RunRequest, value: Any) -> None:
    """``--take-over``: the flow run's lease is taken even while its holder's heartbeat is fresh."""
    if value:
        request.context[TAKE_OVER_KEY] = True


def preload_for_configured_cloud_runs() -> None:
    """A process whose configuration makes its runs cloud runs (``[engine] backend = "cloud"``
    or ``RUNWRIGHT__ENGINE__BACKEND=cloud``) loads the reporting code and the HTTP client
    (requests) with the plugin, as other engines load their client when imported, so its
    first flow run does not pay ~50-80 ms of imports. Any other process loads them with its
    first cloud run: local runs still import no requests."""
    try:
        from runwright.config import get_config

        if get_config().get_nested("engine.backend", "local") == BACKEND_NAME:
            import runwright_cloud.reporting.flow_runs
            import runwright_cloud.reporting.task_runs  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken config or install shows at the run instead
        pass


#: The plugin object the entry point names.
plugin = CloudPlugin()
preload_for_configured_cloud_runs()
