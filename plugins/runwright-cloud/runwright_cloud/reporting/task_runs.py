"""Reporting task runs: attach a report to each task run, write its states, end it, and
look up Cached states on the server.

:class:`TaskRunReporter` belongs to the process's cloud backend. The reports of the task
runs a thread is running are on a per-thread stack (a task run's own report is also in its
context, which is how the state-change path finds it without a lookup).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from runwright.context import context as runtime_context
from runwright.engine.result import NoResult, SafeResult
from runwright.engine.signals import ENDRUN
from runwright.engine.state import Cached, ClientFailed, Failed, Retrying, State, utcnow
from runwright_cloud.errors import ClientError
from runwright_cloud.ids import new_id
from runwright_cloud.keys import CHILDREN_KEY, LEASE_KEY, SETTINGS_KEY, TASK_REPORT_KEY
from runwright_cloud.reporting.cached import current_key, hit_source, pick
from runwright_cloud.reporting.reports import CHILD_PAGE, ChildRuns, TaskRunReport
from runwright_cloud.resume import restore_task_state

if TYPE_CHECKING:
    from runwright.engine.task_runner import TaskRunner, TaskRunSetup
    from runwright.task import Task
    from runwright_cloud.cloud_settings import CloudSettings
    from runwright_cloud.reporting.services import Services

logger = logging.getLogger("runwright.cloud")


class TaskRunReporter:
    """The task runs of one process being reported (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._stacks = threading.local()

    def _stack(self) -> list[TaskRunReport]:
        stack: list[TaskRunReport] | None = getattr(self._stacks, "reports", None)
        if stack is None:
            stack = self._stacks.reports = []
        return stack

    def initialize(self, runner: TaskRunner, task: Task, setup: TaskRunSetup) -> None:
        """Attach the task run's report to its context; a mapped child gets or creates its run."""
        context = setup.context
        map_index = context.get("map_index")
        report: TaskRunReport | None = context.get(TASK_REPORT_KEY)
        if report is not None and report.map_index == map_index and report.runner_id == id(runner):
            report.last_reported = setup.state  # another attempt of the same run (in-process retry)
            report.context = context
            return
        settings: CloudSettings | None = context.get(SETTINGS_KEY) or runtime_context.get(SETTINGS_KEY)
        flow_run_id = context.get("flow_run_id") or runtime_context.get("flow_run_id")
        context.pop(TASK_REPORT_KEY, None)  # a mapped child's context starts as a copy of its parent's
        if settings is None or not flow_run_id:
            return  # a task run outside a cloud flow run: nothing to report to
        slug = str(task.slug)
        children = context.pop(CHILDREN_KEY, None)
        task_run_id: str | None
        version: int | None
        client = self.services.clients.get(settings.api, settings.api_token)
        # A run recorded after its worker was lost, or run again from Retrying in another
        # process (an executor resubmitting it), may be newer on the server than in the context.
        refresh = setup.lost is not None or isinstance(setup.state, Retrying)
        creates = False
        if not refresh and map_index is not None and isinstance(children, ChildRuns) and children.fresh and children.slug == slug:
            # a fresh map's child: no run on the server yet, its first write creates it
            task_run_id, version, creates = new_id(), 0, True
        elif map_index is not None or refresh:
            try:
                info = (
                    children.take(map_index, client)
                    if not refresh and map_index is not None and isinstance(children, ChildRuns) and children.slug == slug
                    else None
                )
                if info is None:
                    info = client.get_task_run_info(flow_run_id, slug, map_index)
                # a child the server just created is Pending: it starts afresh (restored None)
                restored = None if info.is_new() else restore_task_state(info.state, info.heartbeat, settings.zombie_timeout)
            except Exception as exc:
                logger.error("Could not load task run %s[%s] from the runwright server: %s", task.slug, map_index, exc)
                raise ENDRUN(setup.state or Failed(f"Could not retrieve state from the runwright server: {exc}", result=exc)) from exc
            if refresh and restored is not None and restored.is_finished():
                # a lost run, or one run again, whose work finished on the server: keep that
                # outcome (the task runner then records nothing over it), value included
                setup.state = _with_value(runner, restored, task)
            elif setup.state is None:
                setup.state = restored
            task_run_id, version = info.id, info.version
        else:
            task_run_id, version = context.get("task_run_id"), context.get("task_run_version")
            if task_run_id is None or version is None:
                return
        report = TaskRunReport(
            id=task_run_id,
            version=version,
            slug=slug,
            map_index=map_index,
            settings=settings,
            flow_run_id=str(flow_run_id),
            last_reported=setup.state,
            runner_id=id(runner),
            context=context,
            lease=(context.get(LEASE_KEY) or runtime_context.get(LEASE_KEY)) if settings.leased else None,
            flush_at_end=setup.lost is not None,
            creates=creates,
            _client=client,
            _writer=self.services.writers.get(client, settings.batch_size, settings.batch_linger),
        )
        context.update(task_run_id=task_run_id, task_run_version=version, task_id=slug, cloud=True)
        context[TASK_REPORT_KEY] = report
        self._stack().append(report)

    def report_state(self, new_state: State) -> None:
        """Record Mapped at once (and get or create the first page of its children's runs); claim
        Running at once (``task_claims = "sync"``) or queue the claim (``"lease"``); queue every
        other state."""
        report: TaskRunReport | None = runtime_context.get(TASK_REPORT_KEY)
        if report is None:
            return
        if new_state.is_running() and report.lease is not None:
            if report.refused or report.writer.lease_lost(report.flow_run_id):
                self.services.heartbeat.remove("task", report.id)
                reason = "an earlier state of this task run was refused" if report.refused else "another runner took the flow run over"
                logger.error("The runwright server will not record %s as Running: %s", report.describe(), reason)
                raise ENDRUN(ClientFailed(f"Could not record the Running state: {reason}", state=new_state))
            report.writer.enqueue(report, new_state, report.settings.checkpointing)
            self.services.heartbeat.add("task", report.id, report.client, report.settings.heartbeat_interval)
        elif new_state.is_running() or new_state.is_mapped():
            writer = report.writer
            writer.wait_for(report)  # this run's earlier states land first
            try:
                if report.refused:
                    raise ClientError("an earlier state of this task run was refused")
                report.version = report.client.set_task_run_state(
                    report.id,
                    report.version,
                    new_state.serialize(),
                    lease=report.lease,
                    retry_for=report.settings.outage_tolerance,
                )
            except ClientError as exc:
                self.services.heartbeat.remove("task", report.id)
                logger.error("The runwright server did not record %s as %s: %s", report.describe(), type(new_state).__name__, exc)
                raise ENDRUN(ClientFailed(f"Could not record the {type(new_state).__name__} state: {exc}", state=new_state)) from exc
            if new_state.is_running():
                self.services.heartbeat.add("task", report.id, report.client, report.settings.heartbeat_interval)
            else:
                self._fetch_children(report, new_state)
        else:
            if report.last_reported is not None and report.last_reported.is_running():
                self.services.heartbeat.remove("task", report.id)
            report.writer.enqueue(report, new_state, report.settings.checkpointing)
        report.last_reported = new_state
        runtime_context["task_run_version"] = report.version

    def _fetch_children(self, report: TaskRunReport, state: State) -> None:
        """Get or create the first page of the child runs of a Mapped parent (one request);
        the children's contexts (copies of the parent's) carry them, and a child beyond the
        page fetches the next one (see :class:`ChildRuns`). On failure each child asks for its
        own."""
        count = len(getattr(state, "map_states", ()) or ())
        if not count:
            return
        page = range(min(count, CHILD_PAGE))
        try:
            if report.lease is None:
                runs: list[Any] | None = report.client.get_task_runs(report.flow_run_id, report.slug, page)
            else:  # the children's writes name the lease: they may create their runs
                runs = report.client.get_task_runs_unless_fresh(report.flow_run_id, report.slug, page)
        except ClientError as exc:
            logger.warning("Could not get the child task runs of %s in one request: %s", report.describe(), exc)
            return
        if runs is None:
            report.context[CHILDREN_KEY] = ChildRuns(report.slug, {}, report.flow_run_id, count, fresh=True)
            return
        report.context[CHILDREN_KEY] = ChildRuns(
            report.slug, {run.map_index: run for run in runs}, report.flow_run_id, count, prefetch=True
        )

    def end(self, runner: TaskRunner, state: State | None) -> None:
        """Record a final state no hook saw (a state handler's error); a task run on another
        process than the flow run's waits for its queued writes."""
        stack = self._stack()
        report = None
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].runner_id == id(runner):
                report = stack.pop(index)
                break
        if report is None:
            return
        self.services.heartbeat.remove("task", report.id)
        if state is not None and state is not report.last_reported and state.is_finished() and not report.refused:
            report.writer.enqueue(report, state, report.settings.checkpointing)
            report.last_reported = state
        if report.flush_at_end or report.settings.owner_pid != os.getpid():
            report.writer.wait_for(report)  # a lost run's states land before it is submitted again
        # the context holds the report: without the way back, a finished child's context and
        # report are freed at once (not by the cycle collector, a million of them in a map)
        report.context = {}

    def check_cached(self, task: Task, inputs: dict[str, Any], parameters: dict[str, Any]) -> Cached | None:
        """The newest valid Cached state of this task (same flow name, slug and map index) on
        the server, newer than ``now - cache_for``: the flow run's candidates come in one
        request, keys are compared instead of reading inputs back, small results come inline
        (see :mod:`runwright_cloud.reporting.cached`)."""
        report: TaskRunReport | None = runtime_context.get(TASK_REPORT_KEY)
        if report is None or task.cache_for is None:
            return None
        key = report.cache_key = current_key(task, inputs, parameters)
        flow_name = str(runtime_context.get("flow_name"))
        map_index = -1 if report.map_index is None else report.map_index
        rows = self.services.cached.for_run(report.client, report.flow_run_id, flow_name).rows_for(report.slug, map_index)
        if rows is None:  # the flow run's answer was cut: ask for this task's own
            states = report.client.get_latest_cached_states(flow_name, report.slug, utcnow() - task.cache_for, map_index=map_index)
            rows = [{"state": state} for state in states]
        found = pick(task, rows, key, inputs, parameters)
        if found is not None:
            report.cached_hit = (found[0], found[1]["state"])
            report.cached_from = hit_source(found[1], key)
            return found[0]
        return None


def _with_value(runner: TaskRunner, state: State, task: Task) -> State:
    """``state`` with its stored result read back, as the run that finished returned it (a
    result that cannot be read stays a location: downstream runs read it themselves)."""
    result = state._result
    if isinstance(result, SafeResult) and result is not NoResult and result.result_handler is not None:
        try:
            state._result = result.to_result(runner.results)
        except Exception as exc:  # noqa: BLE001
            logger.warning("Could not read back the stored result of task %s: %s", task.slug, exc)
    return state

