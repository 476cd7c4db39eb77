"""Reporting flow runs: create or load the flow run, write its states, end it.

:class:`FlowRunReporter` belongs to the process's cloud backend; it keeps the report of each
flow runner's current run. Not an attribute of the runner: Dask pickles the runner (its
``run_task``), and the report holds the writer and its lock.
"""

from __future__ import annotations

import json
import logging
import uuid
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from runwright.context import context as runtime_context
from runwright.engine.signals import ENDRUN
from runwright.engine.state import ClientFailed, Failed, Running, State
from runwright_cloud import embedded, journal
from runwright_cloud.cloud_settings import load_settings
from runwright_cloud.errors import ClientError, VersionConflict
from runwright_cloud.keys import BACKEND_NAME, FINISHED_KEY, LEASE_KEY, SETTINGS_KEY, TAKE_OVER_KEY
from runwright_cloud.reporting.reports import FlowRunReport
from runwright_cloud.resume import holder_is_gone, is_stale, restore_flow_state, restore_task_state, this_runner
from runwright_cloud.writer import serialize_for_server

if TYPE_CHECKING:
    from runwright.engine.flow_runner import FlowRunner, FlowRunSetup
    from runwright.flow import Flow
    from runwright_cloud.reporting.services import Services

logger = logging.getLogger("runwright.cloud")


def _json_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(parameters)
    except (TypeError, ValueError) as exc:
        raise ENDRUN(
            Failed(f"The parameters of a cloud flow run must be JSON values ({exc}); pass plain values", result=exc)
        ) from exc
    return parameters


class FlowRunReporter:
    """The flow runs of one process being reported (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._reports: weakref.WeakKeyDictionary[FlowRunner, FlowRunReport] = weakref.WeakKeyDictionary()

    def reports(self, runner: FlowRunner) -> bool:
        """True while ``runner``'s current run is reported."""
        return bool(self._reports) and runner in self._reports

    def initialize(self, runner: FlowRunner, flow: Flow, setup: FlowRunSetup) -> None:
        """Create the flow run if the context names none, then load it: state, version,
        parameters, context and task runs (see :mod:`runwright_cloud.resume`)."""
        context = setup.context
        settings = context.get(SETTINGS_KEY) or load_settings()
        try:
            settings = embedded.prepare(settings)
            client = self.services.clients.get(settings.api, settings.api_token)
            # the cache candidates of every task come while the flow run is being loaded
            longest = _longest_cache_for(flow)
            candidates = (
                self.services.cached.prefetch(client, flow.name, longest, [str(task.slug) for task in flow.sorted_tasks()])
                if longest is not None
                else None
            )
            flow_run_id = context.get("flow_run_id")
            if not flow_run_id:
                structure = flow.structure()
                parameters = _json_parameters(setup.parameters)
                # a run of a flow registered before (a re-run) is created naming the flow by
                # its structure's hash, in one request: the structure is sent only the first time
                info = client.create_flow_run_of_structure(structure["name"], structure["tasks"], structure["edges"], parameters)
                if info is None:
                    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
                    info = client.create_flow_run_info(flow_id, parameters=parameters)
            else:
                journal.replay(client, str(flow_run_id))  # what an outage kept on this machine lands first
                info = client.get_flow_run_info(flow_run_id)
            db_state = restore_flow_state(info.state)
        except ClientError as exc:
            logger.debug("Could not load the flow run from the runwright server: %s", exc)
            raise ENDRUN(setup.state or Failed(f"Could not retrieve state from the runwright server: {exc}", result=exc)) from exc
        except Exception as exc:  # a state this process cannot deserialize, say
            raise ENDRUN(setup.state or Failed(f"Could not load flow run {flow_run_id}: {exc}", result=exc)) from exc

        if candidates is not None:
            self.services.cached.add(client, info.id, candidates)
        context.update(info.context or {})
        context.update(
            flow_run_id=info.id,
            flow_run_version=info.version,
            scheduled_start_time=info.scheduled_start_time,
            cloud=True,
            backend=BACKEND_NAME,
        )
        context[SETTINGS_KEY] = settings
        setup.parameters = {**(info.parameters or {}), **(setup.parameters or {})}
        report = FlowRunReport(
            id=info.id,
            version=info.version,
            settings=settings,
            client=client,
            writer=self.services.writers.get(client, settings.batch_size, settings.batch_linger),
            lease=uuid.uuid4().hex if settings.leased else None,
            holder=this_runner() if settings.leased else None,
        )
        # a task run left Running counts as a live runner's for zombie_timeout, unless this
        # runner took the flow run over from a runner that is gone (or with --take-over): the
        # flow run's task runs were that runner's
        zombie_timeout = settings.zombie_timeout
        if report.lease is not None:
            context[LEASE_KEY] = report.lease
            if setup.state is None and db_state.is_running():
                db_state, info, holder_gone = self._take_over(report, info, bool(context.get(TAKE_OVER_KEY)))
                context["flow_run_version"] = info.version
                if holder_gone:
                    zombie_timeout = 0.0
        else:
            context.pop(LEASE_KEY, None)
        if setup.state is None:
            setup.state = db_state

        tasks_by_slug = {task.slug: task for task in flow.tasks}
        for task_run in info.task_runs:
            task = tasks_by_slug.get(task_run.task_slug)
            if task is None:
                raise ENDRUN(
                    Failed(
                        f"Flow run {info.id} has a task run for {task_run.task_slug!r}, which flow {flow.name!r} does not "
                        "have: the flow changed since the run was created. Create a new flow run."
                    )
                )
            try:
                # a task run the server just created (Pending, nothing cached: all of a new
                # flow run's) starts afresh without rebuilding its state
                restored = None if task_run.is_new() else restore_task_state(task_run.state, task_run.heartbeat, zombie_timeout)
            except Exception as exc:
                raise ENDRUN(Failed(f"Could not load the state of task run {task_run.task_slug}: {exc}", result=exc)) from exc
            if restored is not None:
                setup.task_states.setdefault(task, restored)
            task_context = setup.task_contexts.get(task)
            if task_context is None:
                task_context = setup.task_contexts[task] = {}
            task_context.update(task_run_id=task_run.id, task_run_version=task_run.version, task_id=task_run.task_slug)

        if setup.state is db_state and db_state.is_finished():
            # nothing will run: the run ends with the recorded states, shown as its results
            from runwright.engine.result import Result

            db_state._result = Result({task: state for task, state in setup.task_states.items() if task in tasks_by_slug.values()})
            context[FINISHED_KEY] = type(db_state).__name__
        report.last_reported = setup.state
        self._reports[runner] = report

    def _take_over(self, report: FlowRunReport, info: Any, forced: bool = False) -> tuple[State, Any, bool]:
        """Claim a flow run left ``Running`` (``task_claims = "lease"``): refused while another
        runner holds its lease and its heartbeat is fresher than ``zombie_timeout``, unless that
        runner is provably gone (it ran on this host and its process no longer exists) or
        ``forced`` (``--take-over``; both also mean that the task runs it left Running are
        gone: the third value); otherwise a
        version-checked write of Running with this runner's lease (of two runners taking over at
        once, one wins), then the flow run is read again, so the task runs are the ones the
        previous runner left."""
        holder_gone = forced
        if info.leased and not is_stale(info.heartbeat, report.settings.zombie_timeout) and not forced:
            holder_gone = holder_is_gone(info.lease_holder)
            if holder_gone:
                logger.info("Flow run %s: its runner (%s) no longer exists; taking the run over", info.id, info.lease_holder)
            else:
                holder = f" ({info.lease_holder})" if info.lease_holder else ""
                message = (
                    f"Flow run {info.id} is being run by another runner{holder} (it holds the flow run's lease and its "
                    f"last heartbeat is newer than [cloud] zombie_timeout = {report.settings.zombie_timeout:g} s); nothing "
                    "was run. If that runner is gone, run again with --take-over"
                )
                logger.error("%s", message)
                raise ENDRUN(ClientFailed(message, state=Running()))
        state = Running("Running flow (taken over from a runner that stopped).")
        try:
            report.version = report.client.set_flow_run_state(
                report.id, info.version, state.serialize(), lease=report.lease, lease_holder=report.holder
            )
            info = report.client.get_flow_run_info(report.id)
        except VersionConflict as exc:
            message = f"Another runner claimed flow run {info.id} first; nothing was run"
            logger.error("%s: %s", message, exc)
            raise ENDRUN(ClientFailed(message, state=state)) from exc
        except ClientError as exc:
            raise ENDRUN(Failed(f"Could not claim flow run {info.id} on the runwright server: {exc}", result=exc)) from exc
        report.version = info.version
        report.holds_lease = True
        self.services.heartbeat.add("flow", report.id, report.client, report.settings.heartbeat_interval)
        return state, info, holder_gone

    def report_state(self, runner: FlowRunner, new_state: State) -> None:
        """Write the flow run's new state (version-checked); a refusal ends the run with it."""
        report = self._reports.get(runner)
        if report is None:
            return
        if new_state.is_finished():
            self.services.logs.shipper.hurry()  # the run's last records travel meanwhile
            report.writer.flush()  # task runs are recorded before the flow run's final state
            lost = report.writer.lost(report.id)
            if report.writer.lease_lost(report.id):
                report.holds_lease = False
                self.services.heartbeat.remove("flow", report.id)
                message = (
                    f"Another runner took flow run {report.id} over (this runner's lease was replaced); its final state "
                    f"is not recorded by this runner ({lost} task run state(s) were refused)"
                )
                logger.error("%s", message)
                raise ENDRUN(ClientFailed(message, state=new_state))
            if lost:
                # Recording the final state now would show a finished run whose task runs say
                # otherwise. Leave the flow run Running on the server: resuming it re-runs them.
                self.services.heartbeat.remove("flow", report.id)
                kept = (
                    " (the states it did not get are kept on this machine and recorded first)"
                    if journal.pending(report.id)
                    else ""
                )
                message = (
                    f"{lost} task run state(s) could not be recorded on the runwright server; flow run {report.id} "
                    f"is left Running there: resume it with `runwright run FLOW_FILE --flow-run-id {report.id}`{kept}"
                )
                logger.error("%s", message)
                raise ENDRUN(ClientFailed(message, state=new_state))
            self.flush_logs(report)  # a run's logs are on the server before its final state
        self._write_flow_state(report, new_state, endrun=True)

    def flush_logs(self, report: FlowRunReport) -> None:
        """Wait until the log records queued so far are shipped (at most the outage tolerance)."""
        # once a flush timed out (the server is gone), later ones of the run wait briefly
        timeout = 1.0 if report.logs_behind else report.settings.outage_tolerance + 5.0
        if not self.services.logs.shipper.flush(timeout=timeout):
            report.logs_behind = True
            logger.warning("Flow run %s: some log records are not on the runwright server yet", report.id)

    def _write_flow_state(self, report: FlowRunReport, state: State, endrun: bool) -> None:
        try:
            report.version = report.client.set_flow_run_state(
                report.id,
                report.version,
                serialize_for_server(state, False, "the flow run"),
                lease=report.lease,
                retry_for=report.settings.outage_tolerance if not state.is_running() else 0.0,
                lease_holder=report.holder,
            )
        except ClientError as exc:
            self.services.heartbeat.remove("flow", report.id)
            logger.error("The runwright server did not record flow run %s as %s: %s", report.id, type(state).__name__, exc)
            if endrun:
                raise ENDRUN(state) from exc
            return
        report.last_reported = state
        report.holds_lease = report.lease is not None
        if runtime_context.get("flow_run_id") == report.id:
            runtime_context["flow_run_version"] = report.version
        if state.is_running():
            self.services.heartbeat.add("flow", report.id, report.client, report.settings.heartbeat_interval)
        else:
            self.services.heartbeat.remove("flow", report.id)

    def end(self, runner: FlowRunner, state: State | None) -> str | None:
        """Flush queued writes, record a final state no hook saw (a state handler's error), stop
        the flow run's heartbeat. Returns the flow run id."""
        report = self._reports.pop(runner, None)
        if report is None:
            return None
        try:
            report.writer.flush()
            if state is not None and state is not report.last_reported and state.is_finished():
                self.flush_logs(report)
                self._write_flow_state(report, state, endrun=False)
            self.flush_logs(report)  # and what was logged after the final state
            finished = report.last_reported is not None and report.last_reported.is_finished()
            if report.holds_lease and report.lease is not None and not finished:
                # ended without a final state: let the next runner resume it at once
                try:
                    report.client.release_flow_run_lease(report.id, report.lease)
                except ClientError as exc:
                    logger.debug("Could not release the lease of flow run %s: %s", report.id, exc)
        finally:
            self.services.heartbeat.remove("flow", report.id)
        return report.id


def _longest_cache_for(flow: Flow) -> timedelta | None:
    """The longest ``cache_for`` of the flow's tasks; None when none caches its results."""
    durations = [task.cache_for for task in flow.tasks if task.cache_for is not None]
    return max(durations) if durations else None
