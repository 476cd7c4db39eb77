"""The ``cloud`` backend: every flow run and task run reported to a runwright server.

The runners call it directly (see :mod:`runwright.backends`) for runs whose backend is
``cloud`` (``--backend cloud``, ``[engine] backend = "cloud"``, the cloud runners); other runs
never reach it, so installing the plugin changes nothing for local runs. What it does:

* ``initialize_flow_run``: create the flow run unless the context names one
  (``flow_run_id``), load its state, version, parameters, context and task runs;
* ``flow_state_change``: write the flow run's state, version-checked; a refusal or an
  unreachable server ends the run (``ENDRUN``) with the state it tried to write;
* ``initialize_task_run`` / ``task_state_change``: the same for task runs (a claim to Running
  is synchronous or queued under the flow run's lease, later states go to the batching
  writer; a refused claim ends the task run as ``ClientFailed``);
* ``check_task_is_cached``: Cached states from the server (it answers cache checks, so
  runwright-cache stays out of cloud runs): one request for the candidates of all the flow
  run's tasks, keys compared instead of inputs read back, small results inline
  (:mod:`runwright_cloud.reporting.cached`);
* ``*_run_end``: flush, stop heartbeats.

The reporting code, and with it the HTTP client (requests), is imported by the first cloud
run of the process: the backend object itself is cheap to create and register.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runwright.backends import Backend, RunSummary
from runwright_cloud import switching
from runwright_cloud.keys import BACKEND_NAME, FINISHED_KEY, SETTINGS_KEY

if TYPE_CHECKING:
    from runwright.engine.flow_runner import FlowRunner, FlowRunSetup
    from runwright.engine.state import Cached, State
    from runwright.engine.task_runner import TaskRunner, TaskRunSetup
    from runwright.flow import Flow
    from runwright.task import Task
    from runwright_cloud.cloud_settings import CloudSettings
    from runwright_cloud.reporting.flow_runs import FlowRunReporter
    from runwright_cloud.reporting.services import Services
    from runwright_cloud.reporting.task_runs import TaskRunReporter


class CloudBackend(Backend):
    """Reports runs to the server of ``[cloud] api``; owns this process's reporting state
    (clients, writers, heartbeat, the reports of the runs in progress)."""

    name = BACKEND_NAME
    records_runs = True
    answers_cache_checks = True
    checkpoints_parameters = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: Services | None = None
        self._flows: FlowRunReporter | None = None
        self._tasks: TaskRunReporter | None = None
        #: set in a process that runs task runs of a flow run another process runs (a Dask worker)
        self._worker_settings: CloudSettings | None = None
        #: the flow runners (ids) reporting now, each holding the lowered switch interval
        self._switching: set[int] = set()

    # -- the reporting, created on first use ------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._tasks is not None:
                return
            from runwright_cloud.reporting.flow_runs import FlowRunReporter
            from runwright_cloud.reporting.services import Services
            from runwright_cloud.reporting.task_runs import TaskRunReporter

            services = self._services or Services()
            self._services = services
            self._flows = FlowRunReporter(services)
            self._tasks = TaskRunReporter(services)

    @property
    def services(self) -> Services:
        """Clients, writers and heartbeat of this process (created on first use)."""
        if self._services is None:
            self._start()
        assert self._services is not None
        return self._services

    @property
    def flows(self) -> FlowRunReporter:
        if self._flows is None:
            self._start()
        assert self._flows is not None
        return self._flows

    @property
    def tasks(self) -> TaskRunReporter:
        if self._tasks is None:
            self._start()
        assert self._tasks is not None
        return self._tasks

    # -- Backend -----------------------------------------------------------------------------
    def default_result_handler(self, context: Mapping[str, Any]) -> str | None:
        settings = context.get(SETTINGS_KEY)
        return settings.result_handler if settings is not None else None

    def initialize_flow_run(self, runner: FlowRunner, flow: Flow, setup: FlowRunSetup) -> None:
        self.flows.initialize(runner, flow, setup)
        self._ship_logs(setup.context.get(SETTINGS_KEY))
        if self.flows.reports(runner) and id(runner) not in self._switching:
            switching.enter()  # the writer's threads get the GIL back sooner (switching.py)
            self._switching.add(id(runner))

    def _ship_logs(self, settings: CloudSettings | None) -> None:
        """From the first cloud run of the process on, its records go to the server."""
        if settings is not None:
            self.services.logs.install(settings.log_queue_size, settings.outage_tolerance)

    def flow_state_change(self, runner: FlowRunner, flow: Flow, old_state: State, new_state: State) -> None:
        flows = self._flows
        if flows is not None and flows.reports(runner):
            flows.report_state(runner, new_state)

    def flow_run_end(self, runner: FlowRunner, flow: Flow, state: State | None) -> None:
        flows = self._flows
        try:
            if flows is not None and flows.reports(runner):
                flow_run_id = flows.end(runner, state)
                if flow_run_id is not None:
                    self.services.cached.forget(flow_run_id)
        finally:
            if id(runner) in self._switching:
                self._switching.discard(id(runner))
                switching.leave()

    def initialize_task_run(self, runner: TaskRunner, task: Task, setup: TaskRunSetup) -> None:
        self.tasks.initialize(runner, task, setup)
        settings = setup.context.get(SETTINGS_KEY)
        self._ship_logs(settings)  # a Dask worker's first task run installs it
        if settings is not None and settings.owner_pid != os.getpid():
            self._worker_settings = settings

    def task_state_change(self, runner: TaskRunner, task: Task, old_state: State, new_state: State) -> None:
        tasks = self._tasks  # set by initialize_task_run, which always comes first
        if tasks is not None:
            tasks.report_state(new_state)

    def task_run_end(self, runner: TaskRunner, task: Task, state: State | None) -> None:
        tasks = self._tasks
        if tasks is not None:
            tasks.end(runner, state)
        settings = self._worker_settings
        if settings is not None:
            # a worker process: its records are on the server before the task's outcome
            # reaches the flow runner (which then writes the flow run's final state)
            shipper = self.services.logs.shipper
            if shipper.pending():
                shipper.flush(timeout=settings.outage_tolerance + 5.0)

    def check_task_is_cached(
        self, runner: TaskRunner, task: Task, state: State, inputs: dict[str, Any], parameters: dict[str, Any]
    ) -> Cached | None:
        return self.tasks.check_cached(task, inputs, parameters)

    def run_summary(self, context: Mapping[str, Any]) -> RunSummary:
        flow_run_id = context.get("flow_run_id")
        if not flow_run_id or not context.get("cloud"):  # the run was never loaded from the server
            return RunSummary()
        finished = context.get(FINISHED_KEY)
        if finished:
            return RunSummary(
                fields={"flow_run_id": flow_run_id, "already_finished": True},
                message=(
                    f"Flow run {flow_run_id} had already finished ({finished}): nothing was run. Its recorded states "
                    f"are below; `runwright runs show {flow_run_id}` shows them all"
                ),
            )
        return RunSummary(
            fields={"flow_run_id": flow_run_id},
            message=f"Flow run {flow_run_id}: see `runwright runs show {flow_run_id}`",
        )

