"""Backends: where a run is recorded, selected by name for each flow run.

A backend is an object registered by a plugin (``runwright_register_backends``) under its
``name``. A flow run uses exactly one: ``runner.backend`` (the cloud runners set it), else the
run context's ``backend``, else ``[engine] backend`` (``"local"``). The name, a plain string,
is kept in the run context, so it travels with task contexts to thread and Dask workers,
where the worker's own plugin manager resolves it to that process's backend object.

The runners call the active backend directly, *before* the hooks of the same moment:

* ``initialize_flow_run`` / ``initialize_task_run`` before ``runwright_*_run_initialize``;
* ``flow_state_change`` / ``task_state_change`` before ``runwright_*_state_change`` (a backend
  that refuses a state raises ``ENDRUN`` and the hooks never see that transition);
* ``check_task_is_cached`` (only when ``answers_cache_checks``) before
  ``runwright_check_task_is_cached``, which is asked only when the backend found nothing;
* ``flow_run_end`` / ``task_run_end`` before ``runwright_*_run_end``.

A backend whose ``records_runs`` is False (``local``) is not called at all for these, so a
local run pays nothing for the seam. Other plugins ask :func:`active_backend` what the run's
backend does (runwright-cache, for example, leaves caching to a backend that
``answers_cache_checks``) instead of comparing names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from runwright.context import context as runtime_context
from runwright.plugins import PluginError, get_plugin_manager

if TYPE_CHECKING:
    from runwright.engine.flow_runner import FlowRunner, FlowRunSetup
    from runwright.engine.state import Cached, State
    from runwright.engine.task_runner import TaskRunner, TaskRunSetup
    from runwright.flow import Flow
    from runwright.task import Task

#: The backend of a run that names none (``[engine] backend`` unset).
DEFAULT_BACKEND = "local"


@dataclass
class RunSummary:
    """What ``runwright run`` tells its user about a finished run, from the run's backend.

    :param fields: extra keys of the printed summary (and of ``--json``), e.g. the backend's
        id of the run.
    :param message: one line printed on stderr after the run (not with ``--json``), e.g.
        where to look at the run.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


class BackendError(PluginError):
    """A backend raised (other than ``ENDRUN``/``PAUSE``); the message names the backend."""

    def __init__(self, backend: Backend, method: str, error: BaseException) -> None:
        Exception.__init__(self, f"Backend {backend.name!r} raised in {method}: {error!r}")
        self.plugin = f"{backend.name} backend"
        self.hook = method
        self.error = error


class Backend:
    """Base class of backends: every method is a no-op, every flag off (a local run).

    Subclass it, set :attr:`name`, override what your backend does and register an instance
    with ``runwright_register_backends``. The instance lives as long as the plugin manager of
    its process: it may own that process's clients, queues and threads.
    """

    #: The registered name (``--backend NAME``, ``[engine] backend = "NAME"``).
    name: ClassVar[str] = ""
    #: The runners call the run methods below (False: they are skipped, at no cost).
    records_runs: ClassVar[bool] = False
    #: :meth:`check_task_is_cached` answers cache checks for this backend's runs; cache
    #: plugins (runwright-cache) then neither look up nor store cached states themselves.
    answers_cache_checks: ClassVar[bool] = False
    #: Parameter values are checkpointed (stored with the result handler), so a resumed run
    #: can read them back.
    checkpoints_parameters: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- configuration of a run ------------------------------------------------------------
    def default_result_handler(self, context: Mapping[str, Any]) -> str | None:
        """The registered name of the run's default result handler; None: ``[engine]
        result_handler``. Asked once per flow run, inside the run context."""
        return None

    # -- flow runs (called only when ``records_runs``) -------------------------------------
    def initialize_flow_run(self, runner: FlowRunner, flow: Flow, setup: FlowRunSetup) -> None:
        """Load or create the run (``setup`` as in ``runwright_flow_run_initialize``)."""

    def flow_state_change(self, runner: FlowRunner, flow: Flow, old_state: State, new_state: State) -> None:
        """Record the flow run's new state; raise ``ENDRUN(state)`` to refuse it."""

    def flow_run_end(self, runner: FlowRunner, flow: Flow, state: State | None) -> None:
        """The flow run ended: flush, stop heartbeats."""

    # -- task runs (called only when ``records_runs``) -------------------------------------
    def initialize_task_run(self, runner: TaskRunner, task: Task, setup: TaskRunSetup) -> None:
        """Prepare a task run (``setup`` as in ``runwright_task_run_initialize``)."""

    def task_state_change(self, runner: TaskRunner, task: Task, old_state: State, new_state: State) -> None:
        """Record the task run's new state; raise ``ENDRUN(state)`` to refuse it."""

    def task_run_end(self, runner: TaskRunner, task: Task, state: State | None) -> None:
        """The task run (or mapped child run) ended."""

    def check_task_is_cached(
        self, runner: TaskRunner, task: Task, state: State, inputs: dict[str, Any], parameters: dict[str, Any]
    ) -> Cached | None:
        """A valid Cached state for the task, or None (called when ``answers_cache_checks``)."""
        return None

    # -- after a run -----------------------------------------------------------------------
    def rerun_context(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Context keys a new flow run must get to continue this run (``flow.run()`` runs the
        flow again after a long retry). By default ``flow_run_id``, the context key under
        which a backend (or a plugin) keeps its id of the flow run, when it is set."""
        flow_run_id = context.get("flow_run_id")
        return {"flow_run_id": flow_run_id} if flow_run_id else {}

    def run_summary(self, context: Mapping[str, Any]) -> RunSummary:
        """What ``runwright run`` prints about the run whose final context is ``context``."""
        return RunSummary()


def backend_name(context: Mapping[str, Any] | None = None) -> str:
    """The backend name of ``context`` (default: the current run context)."""
    source = runtime_context if context is None else context
    return str(source.get("backend") or DEFAULT_BACKEND)


def active_backend() -> Backend:
    """The backend of the run this thread is in (the ``local`` backend outside a run).

    Resolved by the calling process's plugin manager: on a Dask worker, the worker's own
    backend object.
    """
    return get_plugin_manager().backend(runtime_context.get("backend") or DEFAULT_BACKEND)
