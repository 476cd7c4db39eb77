"""FlowRunner: runs every task of a flow on an executor and decides the flow's final state.

Steps: ``initialize_run`` (plugins may load the run from a backend), then
``check_flow_is_pending_or_running``, ``check_flow_reached_start_time``,
``set_flow_to_running`` and ``get_flow_run_state``, which submits each task, in topological
order, to the executor and waits for the terminal, reference and requested tasks.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from runwright.backends import DEFAULT_BACKEND
from runwright.context import context as runtime_context
from runwright.engine import signals
from runwright.engine.executors import Executor, LocalExecutor, LostRun, resolve_executor
from runwright.engine.result import NoResult, Result, SafeResult
from runwright.engine.run_hooks import TaskRunHooks
from runwright.engine.runner import Runner, call_state_handlers, raise_on_exception
from runwright.engine.signals import ENDRUN
from runwright.engine.state import Failed, Mapped, Pending, Running, Scheduled, State, Success, utcnow
from runwright.engine.task_runner import TaskRunner
from runwright.gc_quiet import spaced_collections
from runwright.plugins import PluginError, get_plugin_manager
from runwright.run_logging import configure_logging

if TYPE_CHECKING:
    from runwright.backends import Backend
    from runwright.edge import Edge
    from runwright.flow import Flow
    from runwright.task import Task


def children_values(map_states: list[State | None]) -> list[Any]:
    """The values of a Mapped state's children, in order (None for a child without a state).
    A child's result that is only a stored location (a child restored from a backend, e.g.
    finished before a resumed run) is read back through the result store."""
    values: list[Any] = []
    append = values.append
    load = None
    for child in map_states:
        if child is None:
            append(None)
            continue
        result = child._result
        if result.__class__ is not Result and isinstance(result, SafeResult) and result is not NoResult:
            if load is None:
                load = get_plugin_manager().results.load
            result = load(result)
        append(result.value)
    return values


class FlowRunnerInitializeResult(NamedTuple):
    state: State
    task_states: dict[Task, State]
    context: dict[str, Any]
    task_contexts: dict[Task, dict[str, Any]]


@dataclass
class FlowRunSetup:
    """What ``runwright_flow_run_initialize`` implementations may change."""

    state: State | None
    task_states: dict[Task, State]
    context: dict[str, Any]
    task_contexts: dict[Task, dict[str, Any]]
    parameters: dict[str, Any]


#: what run_task receives for a task without literal arguments (None would mean "look them up")
_NO_CONSTANTS: Mapping[str, Any] = MappingProxyType({})


def _flatten(states: Iterable[State]) -> list[State]:
    out: list[State] = []
    for state in states:
        if isinstance(state, Mapped):
            out.extend(state.map_states)
        else:
            out.append(state)
    return out


class FlowRunner(Runner):
    """Runs a flow: ``FlowRunner(flow, task_runner_cls=None, state_handlers=None).run(...)``."""

    def __init__(
        self,
        flow: Flow,
        task_runner_cls: type[TaskRunner] | None = None,
        state_handlers: list[Callable[..., Any]] | None = None,
    ) -> None:
        self.flow = flow
        if task_runner_cls is None:
            from runwright.engine import get_default_task_runner_class

            task_runner_cls = get_default_task_runner_class()
        self.task_runner_cls = task_runner_cls
        self._default_result_handler: Any = None
        self._task_hooks: TaskRunHooks | None = None
        self._task_backend: tuple[str, Backend] | None = None
        #: the run context of the last ``run`` (after plugins initialized it)
        self.context: dict[str, Any] = {}
        super().__init__(state_handlers=state_handlers)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.flow.name if self.flow else None}>"

    def describe_target(self) -> str:
        return f"Flow {self.flow.name!r}"

    # -- handlers and hooks ----------------------------------------------------------------
    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        self.logger.debug("Flow '%s': handling state change from %s to %s", self.flow.name, type(old_state).__name__, type(new_state).__name__)
        flow = self.flow
        for handler in flow.state_handlers:
            new_state = handler(flow, old_state, new_state) or new_state
        return new_state

    def notify_plugins(self, old_state: State, new_state: State) -> None:
        backend = self._recording
        if backend is not None:
            self.call_backend(
                backend, "flow_state_change", self, self.flow, old_state, new_state, passthrough=(ENDRUN, signals.PAUSE)
            )
        get_plugin_manager().call_attributed(
            "runwright_flow_state_change",
            passthrough=(ENDRUN, signals.PAUSE),
            runner=self,
            flow=self.flow,
            old_state=old_state,
            new_state=new_state,
        )

    def initialize_run(  # type: ignore[override]
        self,
        state: State | None,
        task_states: dict[Task, State],
        context: dict[str, Any],
        task_contexts: dict[Task, dict[str, Any]],
        parameters: dict[str, Any],
    ) -> FlowRunnerInitializeResult:
        from runwright.config import get_config
        config = get_config()
        pm = get_plugin_manager()
        pm.check_config(config)  # an unknown key fails the run before anything runs (once per config)
        name = context.setdefault("backend", self.backend or config.get_nested("engine.backend") or DEFAULT_BACKEND)
        backend = self._use_backend(pm.backend(str(name)))
        context.setdefault("checkpointing", bool(config.get_nested("engine.checkpointing", False)))
        setup = FlowRunSetup(state, task_states, context, task_contexts, parameters)
        if self._recording is not None:
            self.call_backend(backend, "initialize_flow_run", self, self.flow, setup)
        pm.call_attributed(
            "runwright_flow_run_initialize", passthrough=(ENDRUN,), runner=self, flow=self.flow, setup=setup
        )
        state, task_states, context, task_contexts = (
            setup.state, setup.task_states, setup.context, setup.task_contexts
        )
        # a new dict: the caller's nested context["parameters"] is never mutated
        context["parameters"] = {**(context.get("parameters") or {}), **(setup.parameters or {})}
        context["flow_name"] = self.flow.name
        context.setdefault("scheduled_start_time", utcnow())
        now = utcnow()
        today, yesterday, tomorrow = now, now - datetime.timedelta(days=1), now + datetime.timedelta(days=1)
        context.setdefault("date", now)
        for key, day in (("today", today), ("yesterday", yesterday), ("tomorrow", tomorrow)):
            context.setdefault(key, day.strftime("%Y-%m-%d"))
            context.setdefault(f"{key}_nodash", day.strftime("%Y%m%d"))
        # each task's own context (task_name, task_slug, and what the caller or a plugin put
        # in task_contexts) is made when the task is submitted, and dropped after its run
        state, context = super().initialize_run(state, context)
        return FlowRunnerInitializeResult(state, task_states, context, task_contexts)

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        state: State | None = None,
        task_states: dict[Task, State] | None = None,
        return_tasks: Iterable[Task] | None = None,
        parameters: dict[str, Any] | None = None,
        task_runner_state_handlers: list[Callable[..., Any]] | None = None,
        executor: Executor | str | None = None,
        context: dict[str, Any] | None = None,
        task_contexts: dict[Task, dict[str, Any]] | None = None,
    ) -> State:
        """Run the flow; return its state, whose result maps each returned task to its state."""
        configure_logging()
        self.logger.info("Beginning Flow run for '%s'", self.flow.name)
        # Nothing the caller passed is mutated: the dicts are copied, and so are the task
        # states and a Running flow state (the runners set results and inputs on the states
        # they continue from); any other flow state is returned as it is when the run ends.
        task_states = {task: copy.copy(task_state) for task, task_state in task_states.items()} if task_states else {}
        if state is not None and state.is_running():
            state = copy.copy(state)
        context = dict(context or {})
        task_contexts = dict(task_contexts or {})
        parameters = dict(parameters or {})
        quiet = spaced_collections()  # fewer cyclic-garbage collections during the run (gc_quiet)
        quiet.__enter__()
        try:
            executor = resolve_executor(executor)
            state, task_states, context, task_contexts = self.initialize_run(
                state, task_states, context, task_contexts, parameters
            )
            self.context = context
            with runtime_context(context):
                state = self.check_flow_is_pending_or_running(state)
                state = self.check_flow_reached_start_time(state)
                state = self.set_flow_to_running(state)
                state = self.get_flow_run_state(
                    state, task_states, task_contexts, return_tasks, task_runner_state_handlers, executor
                )
        except ENDRUN as exc:
            state = exc.state
        except Exception as exc:
            message = f"Unexpected error while running flow: {exc!r}"
            self.logger.error(message)
            if raise_on_exception():
                raise
            try:
                state = self.handle_state_change(state or Pending(), Failed(message, result=exc))
            except ENDRUN as endrun:
                state = endrun.state
        finally:
            try:
                self._end(state)
            finally:
                quiet.__exit__(None, None, None)
        return state

    def _end(self, state: State | None) -> None:
        backend = self._recording
        if backend is not None:
            try:
                self.call_backend(backend, "flow_run_end", self, self.flow, state, passthrough=())
            except PluginError as exc:  # the run's state is kept
                self.logger.error("%s", exc)
        try:
            get_plugin_manager().call_attributed("runwright_flow_run_end", runner=self, flow=self.flow, state=state)
        except PluginError as exc:
            self.logger.error("%s", exc)

    def rerun_context(self) -> dict[str, Any]:
        """Context keys a new run of this flow needs to continue the last run on its backend
        (``flow.run()`` runs the flow again after a long retry)."""
        backend = self.active_backend
        return backend.rerun_context(self.context) if backend is not None else {}

    # -- steps -----------------------------------------------------------------------------
    @call_state_handlers
    def check_flow_is_pending_or_running(self, state: State) -> State:
        if state.is_finished():
            self.logger.info("Flow run has already finished.")
            raise ENDRUN(state)
        if not (state.is_pending() or state.is_running()):
            self.logger.info("Flow is not ready to run.")
            raise ENDRUN(state)
        return state

    @call_state_handlers
    def check_flow_reached_start_time(self, state: State) -> State:
        if isinstance(state, Scheduled) and state.start_time > utcnow():
            self.logger.debug("Flow '%s': start_time has not been reached; ending run.", self.flow.name)
            raise ENDRUN(state)
        return state

    @call_state_handlers
    def set_flow_to_running(self, state: State) -> State:
        if state.is_pending():
            return Running("Running flow.")
        if state.is_running():
            return state
        raise ENDRUN(state)

    @call_state_handlers
    def get_flow_run_state(
        self,
        state: State,
        task_states: dict[Task, Any],
        task_contexts: dict[Task, dict[str, Any]],
        return_tasks: Iterable[Task] | None,
        task_runner_state_handlers: list[Callable[..., Any]] | None,
        executor: Executor,
    ) -> State:
        if not state.is_running():
            raise ENDRUN(state)
        flow = self.flow
        # flow.run() passes the flow's own set of tasks: not copied (it is only read here)
        return_tasks = return_tasks if isinstance(return_tasks, (set, frozenset)) else set(return_tasks or ())
        if not return_tasks <= flow.tasks:
            raise ValueError("Some tasks in return_tasks were not found in the flow.")
        edges_to = flow._edges_to  # per task: its one edge in, or a list of them
        # once per run: the context, else the run's backend, may name the run's default
        pm = get_plugin_manager()
        default_name = runtime_context.get("default_result_handler")
        if not default_name and self.active_backend is not None:
            default_name = self.active_backend.default_result_handler(self.context)
        self._default_result_handler = (
            pm.make_result_handler(default_name) if default_name else pm.default_result_handler()
        )
        # Thread and Dask workers do not share this thread's context: give them all of it.
        flow_context = runtime_context.to_dict() if executor.returns_futures else None
        # once per run: which task-run hooks have callers (shared by every task runner)
        self._task_hooks = TaskRunHooks(pm)
        backend = self.active_backend
        self._task_backend = (str(self.context.get("backend")), backend) if backend is not None else None
        run_task = self.run_task
        constants_of = flow.constants
        # the local executor's submit calls run_task at once: call it so, without the
        # keyword arguments made twice per task (a subclass that changes submit is used)
        direct = type(executor).submit is LocalExecutor.submit
        # and, while run_task is FlowRunner's own, its body is inlined below
        inline = direct and type(self).run_task is FlowRunner.run_task
        runner_cls = self.task_runner_cls
        task_hooks, task_backend = self._task_hooks, self._task_backend
        flow_handler, default_handler = flow.result_handler, self._default_result_handler
        with executor.start():
            for task in flow.sorted_tasks():
                task_state = task_states.get(task)
                if (
                    task_state is not None
                    and task_state.is_finished()
                    and not task_state.is_cached()
                    and not task_state.is_mapped()
                ):
                    continue
                into: Any = edges_to.get(task)
                if into is None:
                    upstream_states = {}
                elif into.__class__ is list:
                    upstream_states = {
                        edge: task_states.get(edge.upstream_task) or Pending("Task state not available.")
                        for edge in into
                    }
                else:  # the one edge in (most tasks of a wide flow)
                    upstream_states = {into: task_states.get(into.upstream_task) or Pending("Task state not available.")}
                given = task_contexts.get(task)
                if given is None:
                    task_context = {"task_name": task.name, "task_slug": task.slug}
                else:  # a new dict: the caller's is never mutated
                    task_context = {**given, "task_name": task.name, "task_slug": task.slug}
                if flow_context is not None:
                    task_context = {**flow_context, **task_context}
                if inline:  # run_task's body (lost is None), without the call and its arguments
                    for edge, upstream in upstream_states.items():
                        if not edge.mapped and isinstance(upstream, Mapped):
                            upstream.result = children_values(upstream.map_states)
                    handler = task.result_handler or flow_handler
                    if handler is None:
                        handler = default_handler
                    task_runner = runner_cls(task=task, state_handlers=task_runner_state_handlers, result_handler=handler)
                    task_runner._hooks = task_hooks
                    task_runner._run_backend = task_backend
                    constants = constants_of.get(task)
                    if constants is not None:
                        task_runner.constants = constants
                    task_states[task] = task_runner.run(
                        state=task_state, upstream_states=upstream_states, context=task_context, executor=executor
                    )
                    continue
                if direct:
                    task_states[task] = run_task(
                        task=task,
                        state=task_state,
                        upstream_states=upstream_states,
                        context=task_context,
                        task_runner_state_handlers=task_runner_state_handlers,
                        executor=executor,
                        constants=constants_of.get(task, _NO_CONSTANTS),
                    )
                    continue
                # upstream_states is the submission's one argument that holds futures
                task_states[task] = executor.submit(
                    run_task,
                    task=task,
                    state=task_state,
                    upstream_states=upstream_states,
                    context=task_context,
                    task_runner_state_handlers=task_runner_state_handlers,
                    executor=executor,
                    # with the submission: a worker process's copy of the flow holds other
                    # task objects as the keys of its constants
                    constants=constants_of.get(task),
                )
            # each computed once per run (a walk over every task each)
            terminal_tasks = flow.terminal_tasks()
            reference_tasks = flow.reference_tasks()
            # returning every task (flow.run()): the terminal and reference tasks are among them,
            # and the states waited for are the ones returned (no second task -> state map)
            returns_all = len(return_tasks) == len(flow.tasks)
            final_tasks = return_tasks if returns_all else terminal_tasks | reference_tasks | return_tasks
            final_states = executor.wait(
                {t: task_states[t] if t in task_states else Pending("Task not evaluated by FlowRunner.") for t in final_tasks}
            )
            for final_state in final_states.values():
                if isinstance(final_state, Mapped):  # its children are final states (the contract)
                    final_state.result = children_values(final_state.map_states)
        key_states = set(_flatten(final_states[t] for t in reference_tasks))
        terminal_states = set(_flatten(final_states[t] for t in terminal_tasks))
        return_states = final_states if returns_all else {t: final_states[t] for t in return_tasks}
        return self.determine_final_state(state, key_states, return_states, terminal_states)

    def determine_final_state(
        self,
        state: State,
        key_states: set[State],
        return_states: dict[Task, State],
        terminal_states: set[State],
    ) -> State:
        """Running while a terminal task is unfinished, else Failed if a reference task
        failed, else Success. A still-running flow keeps its Running state object (no new
        transition, no extra backend write: the seed's state churn is gone)."""
        if any(s is None or not s.is_finished() for s in terminal_states):
            self.logger.info("Flow run RUNNING: terminal tasks are incomplete.")
            state.result = return_states
            return state
        if any(s.is_failed() for s in key_states):
            self.logger.info("Flow run FAILED: some reference tasks failed.")
            return Failed("Some reference tasks failed.", result=return_states)
        if all(s.is_successful() for s in key_states):
            self.logger.info("Flow run SUCCESS: all reference tasks succeeded")
            return Success("All reference tasks succeeded.", result=return_states)
        self.logger.info("Flow run SUCCESS: no reference tasks failed")
        return Success("No reference tasks failed.", result=return_states)

    def run_task(
        self,
        task: Task,
        state: State | None,
        upstream_states: dict[Edge, State],
        context: dict[str, Any],
        task_runner_state_handlers: list[Callable[..., Any]] | None,
        executor: Executor,
        lost: LostRun | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> State:
        """Run one task (on the executor). A non-mapped edge from a Mapped upstream receives
        the list of its children's results; ``constants`` are the task's literal arguments
        (default: the flow's for this task). With ``lost``, record instead that the executor
        lost this run's work (see :meth:`TaskRunner.run`)."""
        if lost is None:
            for edge, upstream in upstream_states.items():
                if not edge.mapped and isinstance(upstream, Mapped):
                    upstream.result = children_values(upstream.map_states)
        handler = task.result_handler or self.flow.result_handler
        if handler is None:
            handler = self._default_result_handler
        task_runner = self.task_runner_cls(task=task, state_handlers=task_runner_state_handlers, result_handler=handler)
        task_runner._hooks = self._task_hooks
        task_runner._run_backend = self._task_backend
        if constants is None:
            constants = self.flow.constants.get(task)
        if constants is not None and constants is not _NO_CONSTANTS:  # (an entry's len() is a call)
            task_runner.constants = constants
        return task_runner.run(state=state, upstream_states=upstream_states, context=context, executor=executor, lost=lost)
