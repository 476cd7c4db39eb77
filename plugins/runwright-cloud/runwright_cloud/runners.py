"""The seed's cloud runners, as thin classes: the behaviour is in the ``cloud`` backend
(:mod:`runwright_cloud.backend`), which the core runners call for every cloud run.

``CloudFlowRunner`` and ``CloudTaskRunner`` only choose the ``cloud`` backend, so
``FlowRunner`` with ``[engine] backend = "cloud"`` reports exactly the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runwright.engine.flow_runner import FlowRunner
from runwright.engine.task_runner import TaskRunner, TaskRunnerInitializeResult
from runwright_cloud.keys import BACKEND_NAME

if TYPE_CHECKING:
    from runwright.engine.state import State
    from runwright.flow import Flow


class CloudTaskRunner(TaskRunner):
    """``CloudTaskRunner(task, state_handlers=None, result_handler=None)``: a task run
    reported to the runwright server.

    ``initialize_run(state, context)`` gets or creates a mapped child's task run;
    ``call_runner_target_handlers(old, new)`` runs the task's handlers (the write to the
    server follows, by the cloud backend); ``check_task_is_cached(state, inputs)``
    looks for Cached states on the server.
    """

    backend = BACKEND_NAME

    def initialize_run(self, state: State | None, context: dict[str, Any]) -> TaskRunnerInitializeResult:  # type: ignore[override]
        context["backend"] = self.backend
        return super().initialize_run(state, context)


class CloudFlowRunner(FlowRunner):
    """``CloudFlowRunner(flow, state_handlers=None)``: a flow run reported to the runwright
    server (its task runs use :class:`CloudTaskRunner`).

    ``initialize_run(state, task_states, context, task_contexts, parameters)`` creates the
    flow run unless ``context["flow_run_id"]`` names one, and loads it from the server.
    """

    backend = BACKEND_NAME

    def __init__(
        self,
        flow: Flow,
        state_handlers: list[Callable[..., Any]] | None = None,
        task_runner_cls: type[TaskRunner] | None = None,
    ) -> None:
        super().__init__(flow, task_runner_cls=task_runner_cls or CloudTaskRunner, state_handlers=state_handlers)
