"""Reporting flow runs and task runs to the server: what the cloud plugin's hooks do.

Every function here is called from a hook in :mod:`runwright_cloud.plugin` only for runs
whose backend is ``"cloud"``. The per-run bookkeeping lives in small report objects: the
flow run's on the flow runner, a task run's in the task run's context (key
``cloud_task_run``), so it reaches thread and Dask workers with the context and survives
in-process retries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runwright.context import context as runtime_context
from runwright.engine.signals import ENDRUN
from runwright.engine.state import ClientFailed, Failed, Retrying, Running, State, utcnow
from runwright_cloud.cloud_settings import CloudSettings
from runwright_cloud.connection import shared_client
from runwright_cloud.errors import ClientError, VersionConflict
from runwright_cloud.heartbeat import heartbeat
from runwright_cloud.writer import StateWriter, serialize_for_server, writer_for

if TYPE_CHECKING:
    from runwright.engine.flow_runner import FlowRunner, FlowRunSetup
    from runwright.engine.state import Cached
    from runwright.engine.task_runner import TaskRunner, TaskRunSetup
    from runwright.flow import Flow
    from runwright.task import Task
    from runwright_cloud.client import Client

logger = logging.getLogger("runwright.cloud")

from runwright_cloud.plugin import TASK_REPORT_KEY  # noqa: E402 - one name for the key

SETTINGS_KEY = "cloud_settings"
#: the runner's lease token of the flow run (``task_claims = "lease"``)
LEASE_KEY = "cloud_lease"
#: a mapped parent's children, got or created in one request (see :class:`ChildRuns`)
CHILDREN_KEY = "cloud_children"


class ChildRuns(dict):  # type: ignore[type-arg]
    """The task runs of a mapped parent's children by map index, fetched in one request when
    the parent became Mapped; each child's context is a copy of the parent's, so the child
    finds its own run here. On Dask it travels with the children's plan (about 90 bytes a
    child, pickled once per chunk of children), so a child on a worker starts without a
    request of its own too."""

    def __init__(self, slug: str, runs: dict[int, Any]) -> None:
        super().__init__(runs)
        self.slug = slug

    def __reduce__(self) -> Any:
        return (ChildRuns, (self.slug, dict(self)))

#: The report of each flow runner's current run. Not an attribute of the runner: Dask
#: pickles the runner (its ``run_task``), and the report holds the writer and its lock.
flow_reports: weakref.WeakKeyDictionary[FlowRunner, FlowRunReport] = weakref.WeakKeyDictionary()


@dataclass(eq=False)
class FlowRunReport:
    """A flow run being reported: its id and the version the next write expects."""

    id: str
    version: int
    settings: CloudSettings
    client: Client
    writer: StateWriter
    last_reported: State | None = None
    #: this runner's lease token (``task_claims = "lease"``), sent with every flow-run write
    lease: str | None = None
    #: the server stored ``lease`` with a winning write: this runner holds the flow run
    holds_lease: bool = False


@dataclass(eq=False)
class TaskRunReport:
    """A task run (or mapped child run) being reported."""

    id: str
    version: int
    slug: str
    map_index: int | None
    settings: CloudSettings
    flow_run_id: str = ""
    last_reported: State | None = None
    #: queued writes not sent yet (guarded by the writer's lock)
    pending: int = 0
    #: the server refused (or never got) a queued write: later versions cannot match
    refused: bool = False
    runner_id: int = 0
    context: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the flow run's lease token: claims to Running are queued (``task_claims = "lease"``)
    lease: str | None = None
    #: wait for the queued writes at the end of the run (a lost run, recorded by the client)
    flush_at_end: bool = False
    #: the process's client and writer, looked up once (a copy looks them up again)
    _client: Client | None = field(default=None, repr=False)
    _writer: StateWriter | None = field(default=None, repr=False)

    def describe(self) -> str:
        where = "" if self.map_index is None else f"[{self.map_index}]"
        return f"task run {self.slug}{where} ({self.id})"

    def __reduce__(self) -> Any:
        # A copy (a mapped child's context going to a Dask worker) starts afresh there.
        return (
            _fresh_report,
            (self.id, self.version, self.slug, self.map_index, self.settings, self.flow_run_id, self.lease),
        )

    @property
    def client(self) -> Client:
        client = self._client
        if client is None:
            client = self._client = shared_client(self.settings.api, self.settings.api_token)
        return client

    @property
    def writer(self) -> StateWriter:
        writer = self._writer
        if writer is None:
            writer = self._writer = writer_for(self.client, self.settings.batch_size, self.settings.batch_linger)
        return writer


def _fresh_report(
    id: str, version: int, slug: str, map_index: int | None, settings: CloudSettings, flow_run_id: str, lease: str | None
) -> TaskRunReport:
    return TaskRunReport(id, version, slug, map_index, settings, flow_run_id, lease=lease)


# ---------------------------------------------------------------------------------- flow runs
def _json_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(parameters)
    except (TypeError, ValueError) as exc:
        raise ENDRUN(
            Failed(f"The parameters of a cloud flow run must be JSON values ({exc}); pass plain values", result=exc)
        ) from exc
    return parameters


def initialize_flow_run(runner: FlowRunner, flow: Flow, setup: FlowRunSetup) -> None:
    """Create the flow run if the context names none, then load it: state, version,
    parameters, context and task runs (see :mod:`runwright_cloud.resume`)."""
    from runwright_cloud import embedded
    from runwright_cloud.cloud_settings import load_settings
    from runwright_cloud.resume import restore_flow_state, restore_task_state

    context = setup.context
    settings = context.get(SETTINGS_KEY) or load_settings()
    try:
        settings = embedded.prepare(settings)
        client = shared_client(settings.api, settings.api_token)
        flow_run_id = context.get("flow_run_id")
        if not flow_run_id:
            structure = flow.structure()
            flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
            info = client.create_flow_run_info(flow_id, parameters=_json_parameters(setup.parameters))
        else:
            info = client.get_flow_run_info(flow_run_id)
        db_state = restore_flow_state(info.state)
    except ClientError as exc:
        logger.debug("Could not load the flow run from the runwright server: %s", exc)
        raise ENDRUN(setup.state or Failed(f"Could not retrieve state from the runwright server: {exc}", result=exc)) from exc
    except Exception as exc:  # a state this process cannot deserialize, say
        raise ENDRUN(setup.state or Failed(f"Could not load flow run {flow_run_id}: {exc}", result=exc)) from exc

    context.update(info.context or {})
    context.update(
        flow_run_id=info.id,
        flow_run_version=info.version,
        scheduled_start_time=info.scheduled_start_time,
        cloud=True,
        backend="cloud",
    )
    context[SETTINGS_KEY] = settings
    context.setdefault("default_result_handler", settings.result_handler)
    setup.parameters = {**(info.parameters or {}), **(setup.parameters or {})}
    report = FlowRunReport(
        id=info.id,
        version=info.version,
        settings=settings,
        client=client,
        writer=writer_for(client, settings.batch_size, settings.batch_linger),
        lease=uuid.uuid4().hex if settings.leased else None,
    )
    if report.lease is not None:
        context[LEASE_KEY] = report.lease
        if setup.state is None and db_state.is_running():
            db_state, info = _take_over(report, info)
            context["flow_run_version"] = info.version
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
            restored = restore_task_state(task_run.state, task_run.heartbeat, settings.zombie_timeout)
        except Exception as exc:
            raise ENDRUN(Failed(f"Could not load the state of task run {task_run.task_slug}: {exc}", result=exc)) from exc
        if restored is not None:
            setup.task_states.setdefault(task, restored)
        task_context = setup.task_contexts.get(task)
        if task_context is None:
            task_context = setup.task_contexts[task] = {}
        task_context.update(task_run_id=task_run.id, task_run_version=task_run.version, task_id=task_run.task_slug)

    report.last_reported = setup.state
    flow_reports[runner] = report


def _take_over(report: FlowRunReport, info: Any) -> tuple[State, Any]:
    """Claim a flow run left ``Running`` (``task_claims = "lease"``): refused while another
    runner holds its lease and its heartbeat is fresher than ``zombie_timeout``; otherwise a
    version-checked write of Running with this runner's lease (of two runners taking over at
    once, one wins), then the flow run is read again, so the task runs are the ones the
    previous runner left."""
    from runwright_cloud.resume import is_stale

    if info.leased and not is_stale(info.heartbeat, report.settings.zombie_timeout):
        message = (
            f"Flow run {info.id} is being run by another runner (it holds the flow run's lease and its last "
            f"heartbeat is newer than [cloud] zombie_timeout = {report.settings.zombie_timeout:g} s); nothing was run"
        )
        logger.error("%s", message)
        raise ENDRUN(ClientFailed(message, state=Running()))
    state = Running("Running flow (taken over from a runner that stopped).")
    try:
        report.version = report.client.set_flow_run_state(
            report.id, info.version, state.serialize(), lease=report.lease
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
    heartbeat.add("flow", report.id, report.client, report.settings.heartbeat_interval)
    return state, info


def report_flow_state(runner: FlowRunner, new_state: State) -> None:
    """Write the flow run's new state (version-checked); a refusal ends the run with it."""
    report = flow_reports.get(runner)
    if report is None:
        return
    if new_state.is_finished():
        report.writer.flush()  # task runs are recorded before the flow run's final state
        lost = report.writer.lost(report.id)
        if report.writer.lease_lost(report.id):
            report.holds_lease = False
            heartbeat.remove("flow", report.id)
            message = (
                f"Another runner took flow run {report.id} over (this runner's lease was replaced); its final state "
                f"is not recorded by this runner ({lost} task run state(s) were refused)"
            )
            logger.error("%s", message)
            raise ENDRUN(ClientFailed(message, state=new_state))
        if lost:
            # Recording the final state now would show a finished run whose task runs say
            # otherwise. Leave the flow run Running on the server: resuming it re-runs them.
            heartbeat.remove("flow", report.id)
            message = (
                f"{lost} task run state(s) could not be recorded on the runwright server; flow run {report.id} "
                f"is left Running there: resume it with `runwright run FLOW_FILE --flow-run-id {report.id}`"
            )
            logger.error("%s", message)
            raise ENDRUN(ClientFailed(message, state=new_state))
    _write_flow_state(report, new_state, endrun=True)


def _write_flow_state(report: FlowRunReport, state: State, endrun: bool) -> None:
    try:
        report.version = report.client.set_flow_run_state(
            report.id,
            report.version,
            serialize_for_server(state, False, "the flow run"),
            lease=report.lease,
            retry_for=report.settings.outage_tolerance if not state.is_running() else 0.0,
        )
    except ClientError as exc:
        heartbeat.remove("flow", report.id)
        logger.error("The runwright server did not record flow run %s as %s: %s", report.id, type(state).__name__, exc)
        if endrun:
            raise ENDRUN(state) from exc
        return
    report.last_reported = state
    report.holds_lease = report.lease is not None
    if runtime_context.get("flow_run_id") == report.id:
        runtime_context["flow_run_version"] = report.version
    if state.is_running():
        heartbeat.add("flow", report.id, report.client, report.settings.heartbeat_interval)
    else:
        heartbeat.remove("flow", report.id)


def end_flow_run(runner: FlowRunner, state: State | None) -> str | None:
    """Flush queued writes, record a final state no hook saw (a state handler's error), stop
    the flow run's heartbeat. Returns the flow run id."""
    report = flow_reports.pop(runner, None)
    if report is None:
        return None
    try:
        report.writer.flush()
        if state is not None and state is not report.last_reported and state.is_finished():
            _write_flow_state(report, state, endrun=False)
        finished = report.last_reported is not None and report.last_reported.is_finished()
        if report.holds_lease and report.lease is not None and not finished:
            # ended without a final state: let the next runner resume it at once
            try:
                report.client.release_flow_run_lease(report.id, report.lease)
            except ClientError as exc:
                logger.debug("Could not release the lease of flow run %s: %s", report.id, exc)
    finally:
        heartbeat.remove("flow", report.id)
    return report.id


# ---------------------------------------------------------------------------------- task runs
_stacks = threading.local()


def _stack() -> list[TaskRunReport]:
    stack: list[TaskRunReport] | None = getattr(_stacks, "reports", None)
    if stack is None:
        stack = _stacks.reports = []
    return stack


def initialize_task_run(runner: TaskRunner, task: Task, setup: TaskRunSetup) -> None:
    """Attach the task run's report to its context; a mapped child gets or creates its run."""
    from runwright_cloud.resume import restore_task_state

    context = setup.context
    map_index = context.get("map_index")
    report: TaskRunReport | None = context.get(TASK_REPORT_KEY)
    if report is not None and report.map_index == map_index and report.runner_id == id(runner):
        report.last_reported = setup.state  # another attempt of the same run (in-process retry)
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
    # A run recorded after its worker was lost, or run again from Retrying in another
    # process (an executor resubmitting it), may be newer on the server than in the context.
    refresh = setup.lost is not None or isinstance(setup.state, Retrying)
    if map_index is not None or refresh:
        try:
            info = children.get(map_index) if not refresh and isinstance(children, ChildRuns) and children.slug == slug else None
            if info is None:
                info = shared_client(settings.api, settings.api_token).get_task_run_info(flow_run_id, slug, map_index)
            restored = restore_task_state(info.state, info.heartbeat, settings.zombie_timeout)
        except Exception as exc:
            logger.error("Could not load task run %s[%s] from the runwright server: %s", task.slug, map_index, exc)
            raise ENDRUN(setup.state or Failed(f"Could not retrieve state from the runwright server: {exc}", result=exc)) from exc
        if setup.state is None:
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
    )
    context.update(task_run_id=task_run_id, task_run_version=version, task_id=slug, cloud=True)
    context[TASK_REPORT_KEY] = report
    _stack().append(report)


def report_task_state(new_state: State) -> None:
    """Record Mapped at once (and get or create the children's runs in one request); claim
    Running at once (``task_claims = "sync"``) or queue the claim (``"lease"``); queue every
    other state."""
    report: TaskRunReport | None = runtime_context.get(TASK_REPORT_KEY)
    if report is None:
        return
    if new_state.is_running() and report.lease is not None:
        if report.refused or report.writer.lease_lost(report.flow_run_id):
            heartbeat.remove("task", report.id)
            reason = "an earlier state of this task run was refused" if report.refused else "another runner took the flow run over"
            logger.error("The runwright server will not record %s as Running: %s", report.describe(), reason)
            raise ENDRUN(ClientFailed(f"Could not record the Running state: {reason}", state=new_state))
        report.writer.enqueue(report, new_state, report.settings.checkpointing)
        heartbeat.add("task", report.id, report.client, report.settings.heartbeat_interval)
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
            heartbeat.remove("task", report.id)
            logger.error("The runwright server did not record %s as %s: %s", report.describe(), type(new_state).__name__, exc)
            raise ENDRUN(ClientFailed(f"Could not record the {type(new_state).__name__} state: {exc}", state=new_state)) from exc
        if new_state.is_running():
            heartbeat.add("task", report.id, report.client, report.settings.heartbeat_interval)
        else:
            _fetch_children(report, new_state)
    else:
        if report.last_reported is not None and report.last_reported.is_running():
            heartbeat.remove("task", report.id)
        report.writer.enqueue(report, new_state, report.settings.checkpointing)
    report.last_reported = new_state
    runtime_context["task_run_version"] = report.version


def _fetch_children(report: TaskRunReport, state: State) -> None:
    """Get or create every child run of a Mapped parent in one request; the children's
    contexts (copies of the parent's) carry them. On failure each child asks for its own."""
    count = len(getattr(state, "map_states", ()) or ())
    if not count:
        return
    try:
        runs = report.client.get_task_runs(report.flow_run_id, report.slug, range(count))
    except ClientError as exc:
        logger.warning("Could not get the child task runs of %s in one request: %s", report.describe(), exc)
        return
    report.context[CHILDREN_KEY] = ChildRuns(report.slug, {run.map_index: run for run in runs})


def end_task_run(runner: TaskRunner, state: State | None) -> None:
    """Record a final state no hook saw (a state handler's error); a task run on another
    process than the flow run's waits for its queued writes."""
    stack = _stack()
    report = None
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].runner_id == id(runner):
            report = stack.pop(index)
            break
    if report is None:
        return
    heartbeat.remove("task", report.id)
    if state is not None and state is not report.last_reported and state.is_finished() and not report.refused:
        report.writer.enqueue(report, state, report.settings.checkpointing)
        report.last_reported = state
    if report.flush_at_end or report.settings.owner_pid != os.getpid():
        report.writer.wait_for(report)  # a lost run's states land before it is submitted again


def check_cached(task: Task, inputs: dict[str, Any], parameters: dict[str, Any]) -> Cached | None:
    """The newest Cached state of this task (same flow name, slug and map index) on the
    server, newer than ``now - cache_for``, that the task's cache validator accepts."""
    from runwright.engine.state import Cached

    report: TaskRunReport | None = runtime_context.get(TASK_REPORT_KEY)
    if report is None or task.cache_for is None:
        return None
    flow_name = str(runtime_context.get("flow_name"))
    rows = report.client.get_latest_cached_states(
        flow_name, report.slug, utcnow() - task.cache_for, map_index=-1 if report.map_index is None else report.map_index
    )
    for data in rows:
        try:
            candidate = State.deserialize(data)
        except Exception as exc:  # noqa: BLE001 - a candidate we cannot read is no candidate
            logger.debug("Skipping a cached state of %s: %s", task.slug, exc)
            continue
        if isinstance(candidate, Cached) and task.cache_validator(candidate, inputs, parameters):
            return candidate
    return None
