"""TaskRunner: runs one task (or one mapped child) through the pipeline of steps.

The steps, in order (see docs/hooks.md for where hooks fire):

1. ``check_task_is_ready``         6. ``get_task_inputs`` (not a step: no transition)
2. ``check_task_reached_start_time`` 7. ``check_task_is_cached``
3. ``check_upstream_finished``     8. ``check_task_trigger``
4. ``check_upstream_skipped``      9. ``set_task_to_running``
5. mapped parent only: ``run_mapped_task`` then ``submit_mapped_children``, and stop
10. ``get_task_run_state``  11. ``cache_result``  12. ``check_for_retry``

A Retrying state due within ``[engine] inprocess_retry_limit`` seconds is waited for and run
again in the same call, so short retries need no new flow run (:func:`in_process_retry_delay`).
A run whose work an executor lost is recorded by ``run(..., lost=...)``: initialize,
``fail_lost_run`` (or ``retry_lost_bystander``), ``check_for_retry``, end; a finished state
that initialize found (the work had finished) is kept instead.
"""

from __future__ import annotations

import collections.abc
import datetime
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from runwright.backends import DEFAULT_BACKEND
from runwright.context import context as runtime_context
from runwright.engine import signals
from runwright.engine.result import NoResult, Result, ResultInterface, SafeResult
from runwright.engine.result_handlers import ResultHandler
from runwright.engine.run_hooks import INITIALIZE, RUN_END, STATE_CHANGE, TaskRunHooks
from runwright.engine.runner import Runner, call_state_handlers, raise_on_exception, step_raised
from runwright.engine.signals import ENDRUN
from runwright.engine.state import (
    Cached,
    Failed,
    Finished,
    Mapped,
    Pending,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
    _MetaState,
    copy_state,
    utcnow,
)
from runwright.parameter import Parameter
from runwright.plugins import PluginError, UnknownNameError, get_plugin_manager
from runwright.plugins import process as _plugin_process
from runwright.run_logging import stdout_logged
from runwright.task import Task, _task_logger
from runwright.triggers import all_successful

if TYPE_CHECKING:
    from runwright.backends import Backend
    from runwright.edge import Edge
    from runwright.engine.executors import Executor, LostRun
    from runwright.plugins.dispatch import DispatchEntry
    from runwright.plugins.results import ResultStore


#: per TaskRunner class whose next ``__init__`` after TaskRunner's is Runner's: its logger
#: (TaskRunner.__init__ then does what Runner.__init__ does itself)
_RUNNER_LOGGERS: dict[type, Any] = {}


def _next_init(cls: type) -> Any:
    """The ``__init__`` that ``super().__init__`` in TaskRunner.__init__ calls for ``cls``."""
    mro = cls.__mro__
    return getattr(super(mro[mro.index(TaskRunner)], cls), "__init__", None) if TaskRunner in mro else None


#: the property behind ``Task.state_handlers`` and ``Task.logger`` (a task class that keeps
#: them is read without the property call)
_HANDLERS_PROPERTY = Task.state_handlers
_LOGGER_PROPERTY = Task.logger


def _handlers_of(task: Task) -> list[Callable[..., Any]] | None:
    """The task's state handlers, None while it has none (reading ``task.state_handlers``
    would make it an empty list: a task of a wide flow keeps none)."""
    if type(task).state_handlers is _HANDLERS_PROPERTY:
        return task._state_handlers
    return task.state_handlers


class TaskRunnerInitializeResult(NamedTuple):
    state: State
    context: dict[str, Any]


#: ``TaskRunnerInitializeResult(state, context)`` without the namedtuple's Python-level __new__
_initialized = functools.partial(tuple.__new__, TaskRunnerInitializeResult)


@dataclass
class TaskRunSetup:
    """What ``runwright_task_run_initialize`` implementations may change.

    ``lost`` is set (read-only) when this run only records that an executor lost the run's
    work (its worker process died): what a backend holds for the run may then be newer
    than ``state``, which is the last state this process knew. A backend that holds a
    finished state for the run (the work finished, only its outcome was lost on the way)
    puts it in ``state``: the run then ends with it, and nothing is recorded over it.
    """

    state: State | None
    context: dict[str, Any]
    lost: LostRun | None = None


_MISSING = object()
#: classes known to be ResultHandler subclasses (an ABC's isinstance costs a Python call)
_HANDLER_CLASSES: set[type] = set()


def _is_handler(spec: object) -> bool:
    if isinstance(spec, ResultHandler):
        _HANDLER_CLASSES.add(spec.__class__)
        return True
    return False

#: how a mapped child gets an upstream: the whole state, the upstream parent's child i, item i
_WHOLE, _CHILD, _ITEM = 0, 1, 2

#: The run context key under which :meth:`TaskRunner.run` hands ``lost`` to ``initialize_run``.
_LOST_KEY = "_runwright_lost_run"


def in_process_retry_delay(state: State, limit: float | None = None) -> float | None:
    """Seconds to wait before running a Retrying ``state`` again in this flow run (0 when it
    is due), or None when it is due later than ``[engine] inprocess_retry_limit``: the flow
    run then ends with the task Retrying, for a later run to pick up.

    The one rule for "retry now or later", used by the task runner's loop and by executors
    that submit a lost task run again.
    """
    if limit is None:
        from runwright.config import get_config

        limit = float(get_config().get_nested("engine.inprocess_retry_limit", 60.0))
    delay = (state.start_time - utcnow()).total_seconds() if isinstance(state, Scheduled) and state.start_time else 0.0
    return None if delay > limit else max(delay, 0.0)


def _flatten(upstream: State) -> list[State]:
    return list(upstream.map_states) if isinstance(upstream, Mapped) else [upstream]


class TaskRunner(Runner):
    """Runs a task: ``TaskRunner(task, state_handlers=None, result_handler=None).run(...)``.

    The result handler is the task's, else the ``result_handler`` argument (the flow's),
    else the one named by ``[engine] result_handler``.
    """

    #: the literal arguments bound to the task in its flow (``Flow.constants``), passed with
    #: the upstream results to every run (mapped children included); the flow runner sets it
    constants: Mapping[str, Any] = MappingProxyType({})

    def __init__(
        self,
        task: Task,
        state_handlers: list[Callable[..., Any]] | None = None,
        result_handler: ResultHandler | str | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        self.task = task
        if constants:
            self.constants = constants
        spec = self._result_handler_spec = task.result_handler or result_handler
        # a handler object is used as it is (the flow runner passes the run's default)
        self._result_handler: ResultHandler | None = (
            spec  # type: ignore[assignment]
            if spec is not None and (spec.__class__ in _HANDLER_CLASSES or _is_handler(spec))
            else None
        )
        #: which task-run hooks have callers (set per run; the flow runner shares its own)
        self._hooks: TaskRunHooks | None = None
        #: (name, backend) the flow runner resolved for its run: task runs naming the same
        #: backend use it without a registry lookup
        self._run_backend: tuple[str, Backend] | None = None
        cls = type(self)
        logger = _RUNNER_LOGGERS.get(cls)
        if logger is None:  # Runner.__init__ is not next in cls's MRO: called as usual
            super().__init__(state_handlers=state_handlers)
            if _next_init(cls) is Runner.__init__:
                _RUNNER_LOGGERS[cls] = self.logger
            return
        # Runner.__init__, inlined (a runner is made per task run)
        if state_handlers is None:
            self.state_handlers = []
        elif isinstance(state_handlers, collections.abc.Sequence):
            self.state_handlers = list(state_handlers)
        else:
            raise TypeError("state_handlers should be iterable.")
        self.logger = logger
        self.active_backend = None
        self._recording = None

    @property
    def result_handler(self) -> ResultHandler | None:
        if self._result_handler is None:
            pm = get_plugin_manager()
            spec = self._result_handler_spec
            self._result_handler = pm.make_result_handler(spec) if spec is not None else pm.default_result_handler()
        return self._result_handler

    @property
    def results(self) -> ResultStore:
        """The store this run reads its inputs and writes its results through (the plugin
        manager's); plugins given the runner use it too."""
        return get_plugin_manager().results

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.task.name}>"

    def describe_target(self) -> str:
        return f"Task {runtime_context.get('task_full_name') or self.task.name!r}"

    # -- handlers and hooks ----------------------------------------------------------------
    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        task = self.task
        # a task's list of handlers is made when first read: not for a task that has none
        for handler in _handlers_of(task) or ():
            new_state = handler(task, old_state, new_state) or new_state
        return new_state

    def _task_hooks(self, pm: Any) -> TaskRunHooks:
        """The task-run hooks this task's runs call (see :mod:`runwright.engine.run_hooks`),
        made again when ``pm``'s plugin set changed since they were made."""
        hooks = self._hooks
        if hooks is None or hooks.table is not pm.dispatch_table:
            hooks = TaskRunHooks(pm)
        if hooks.scoped:
            hooks = hooks.for_task(self.task)
        self._hooks = hooks
        return hooks

    def _hook_entry(self, slot: str) -> tuple[Any, DispatchEntry | None]:
        """(plugin manager, the entry of a task-run hook to call now, or None: no call)."""
        hooks = self._hooks
        if hooks is None:  # a step called outside run()
            pm = get_plugin_manager()
            return pm, getattr(self._task_hooks(pm), slot)
        entry = getattr(hooks, slot)
        if entry is None:  # nothing to call for this task in this run
            return None, None
        # the plugin set of the run's start serves the whole run (run_hooks.py): a plugin
        # registered or unregistered during it counts from the next task run on
        return get_plugin_manager(), entry

    def notify_plugins(self, old_state: State, new_state: State) -> None:
        backend = self._recording
        if backend is not None:
            self.call_backend(
                backend, "task_state_change", self, self.task, old_state, new_state, passthrough=(ENDRUN, signals.PAUSE)
            )
        hooks = self._hooks
        if hooks is not None and hooks.state_change is None:  # nothing to call for this task
            return
        pm, entry = self._hook_entry("state_change")
        if entry is not None:
            pm.call_entry(
                STATE_CHANGE,
                entry,
                {"runner": self, "task": self.task, "old_state": old_state, "new_state": new_state},
                (ENDRUN, signals.PAUSE),
            )

    def initialize_run(self, state: State | None, context: dict[str, Any]) -> TaskRunnerInitializeResult:  # type: ignore[override]
        lost = context.pop(_LOST_KEY, None)
        backend = self._recording
        hooks = self._hooks
        pm: Any = None
        entry: DispatchEntry | None = None
        if hooks is None or hooks.initialize is not None:
            pm, entry = self._hook_entry("initialize")
        if backend is not None or entry is not None:
            setup = TaskRunSetup(state=state, context=context, lost=lost)
            if backend is not None:
                self.call_backend(backend, "initialize_task_run", self, self.task, setup)
            if entry is not None:
                pm.call_entry(INITIALIZE, entry, {"runner": self, "task": self.task, "setup": setup}, (ENDRUN,))
            state, context = setup.state, setup.context
        # the meta states (Submitted, Queued, ClientFailed) unwrapped; None becomes Pending
        while isinstance(state, _MetaState):
            state = state.state
        if state is None:
            state = Pending()
        context["task_run_count"] = state.run_count + 1 if isinstance(state, Retrying) else 1
        if isinstance(state, Resume):
            context["resume"] = True
        context["task_name"] = self.task.name
        return _initialized((state, context))

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        state: State | None = None,
        upstream_states: dict[Edge, State] | None = None,
        context: dict[str, Any] | None = None,
        executor: Executor | None = None,
        lost: LostRun | None = None,
    ) -> State:
        """Run the task; return its final state. Never raises for task errors.

        With ``lost`` (an executor lost this run's work, e.g. its worker process died), the
        task does not run: the run is initialized (``runwright_task_run_initialize``, with
        ``setup.lost`` set), becomes Failed with the reason (handlers and
        ``runwright_task_state_change``), goes through ``check_for_retry`` and ends
        (``runwright_task_run_end``), in the calling process. A run the executor does not
        blame (``lost.blamed`` False) becomes Retrying at once instead, counting no attempt.
        The caller submits a Retrying result again as :func:`in_process_retry_delay` allows.
        """
        # a lost run works on a copy of the submitted context: the executor may submit it again
        context = dict(context or {}) if lost is not None else (context if context is not None else {})
        if self.backend is not None:
            context["backend"] = self.backend
        map_index = context.setdefault("map_index", None)
        task = self.task
        context["task_full_name"] = task.name if map_index is None else f"{task.name}[{map_index}]"
        name = context.get("backend") or runtime_context._data.get("backend") or DEFAULT_BACKEND
        pm = _plugin_process._pm or get_plugin_manager()  # get_plugin_manager's answer, without its call
        shared = self._run_backend
        if shared is not None and shared[0] == name:
            backend = shared[1]
        else:
            try:
                backend = pm.backend(name)
            except UnknownNameError as exc:  # a worker without the backend's plugin, say
                self.logger.error("Task '%s': %s", context["task_full_name"], exc)
                return Failed(f"Task '{context['task_full_name']}': {exc}", result=exc)
        if backend is not self.active_backend:  # _use_backend, inlined
            self.active_backend = backend
            self._recording = backend if backend.records_runs else None
        hooks = self._hooks
        if hooks is None or hooks.table is not pm.dispatch_table:
            self._task_hooks(pm)
        elif hooks.scoped:  # the flow run's hooks: narrowed to this task once
            self._hooks = hooks.for_task(task)
        if lost is not None:
            return self._record_lost(state, context, lost)
        upstream_states = upstream_states or {}
        if executor is None:
            from runwright.engine.executors import LocalExecutor

            executor = LocalExecutor()
        mapped = False
        if map_index is None:
            for edge in upstream_states:
                if edge.mapped:
                    mapped = True
                    break
        try:
            while True:
                state = self._run_once(state, upstream_states, context, executor, mapped)
                if mapped or not isinstance(state, Retrying):
                    return state
                delay = in_process_retry_delay(state)
                if delay is None:
                    return state
                if delay > 0:
                    time.sleep(delay)
        finally:
            hooks = self._hooks
            if self._recording is not None or hooks is None or hooks.run_end is not None:
                self._end(state)

    def _record_lost(self, state: State | None, context: dict[str, Any], lost: LostRun) -> State:
        """The ``lost`` pipeline of :meth:`run` (``context`` is the run's own copy)."""
        task = self.task
        context[_LOST_KEY] = lost
        try:
            state, context = self.initialize_run(state, context)
            if state.is_finished():
                # the run's work finished before it was lost (a backend holds its final
                # state, see TaskRunSetup): that outcome stands, nothing is recorded over it
                self.logger.info("Task '%s': finished before its work was lost: %s", context["task_full_name"], type(state).__name__)
                return state
            with runtime_context(context):
                if lost.blamed:
                    state = self.fail_lost_run(state, lost)
                    state = self.check_for_retry(state, {})
                else:
                    state = self.retry_lost_bystander(state, lost)
        except ENDRUN as exc:
            state = exc.state
        except Exception as exc:
            message = f"Task '{context.get('task_full_name', task.name)}': unexpected error while recording a lost run: {exc!r}"
            self.logger.error(message)
            if raise_on_exception():
                raise
            state = Failed(message, result=exc)
        finally:
            self._end(state)
        return state  # type: ignore[return-value]

    def _end(self, state: State | None) -> None:
        backend = self._recording
        if backend is not None:
            try:
                self.call_backend(backend, "task_run_end", self, self.task, state, passthrough=())
            except PluginError as exc:  # the run's state is kept
                self.logger.error("%s", exc)
        try:
            pm, entry = self._hook_entry("run_end")
            if entry is not None:
                pm.call_entry(RUN_END, entry, {"runner": self, "task": self.task, "state": state})
        except PluginError as exc:
            self.logger.error("%s", exc)

    def _run_once(
        self,
        state: State | None,
        upstream_states: dict[Edge, State],
        context: dict[str, Any],
        executor: Executor,
        mapped: bool,
    ) -> State:
        task_inputs: dict[str, ResultInterface] = {}
        try:
            state, context = self.initialize_run(state, context)
            task = self.task
            # ``with runtime_context(context):`` as two calls (it runs for every task run)
            saved = runtime_context._push(context)
            try:
                if not mapped:
                    plain = self._run_plain(state, upstream_states, executor)
                    if plain is not None:
                        return plain
                # Steps that cannot change this state are skipped: they would return the same
                # object (no transition, no handler), so the outcome is identical, and cheaper.
                state = self.check_task_is_ready(state)
                if isinstance(state, Scheduled):
                    state = self.check_task_reached_start_time(state)
                if upstream_states:
                    state = self.check_upstream_finished(state, upstream_states)
                    state = self.check_upstream_skipped(state, upstream_states)
                if mapped:
                    state = self.check_mapped_task_trigger(state, upstream_states)
                    state = self.run_mapped_task(state, upstream_states)
                    if not isinstance(state, Mapped):
                        raise ENDRUN(state)
                    state = self.submit_mapped_children(state, upstream_states, context, executor)
                    raise ENDRUN(state)
                task_inputs = self.get_task_inputs(state, upstream_states)
                if task.cache_for is not None or isinstance(state, Cached):
                    state = self.check_task_is_cached(state, task_inputs)
                state = self.check_task_trigger(state, upstream_states)
                if not state.is_pending():  # a cache hit: what set_task_to_running ends the run with
                    return state
                state = self.set_task_to_running(state)
                state = self.get_task_run_state(state, task_inputs, executor.timeout_handler)
                if task.cache_for is not None:
                    state = self.cache_result(state, task_inputs)
                if isinstance(state, Failed):
                    state = self.check_for_retry(state, task_inputs)
            finally:
                runtime_context._restore(saved)
        except (ENDRUN, signals.RunwrightSignal) as exc:
            end_state = exc.state
            if end_state.is_pending() and not end_state.cached_inputs:  # type: ignore[attr-defined]
                end_state.cached_inputs = task_inputs or {}  # type: ignore[attr-defined]
            state = end_state
            if isinstance(exc, signals.RunwrightSignal) and raise_on_exception():
                raise
        except Exception as exc:
            message = f"Task '{context.get('task_full_name', self.task.name)}': unexpected error while running task: {exc!r}"
            self.logger.error(message)
            if raise_on_exception():
                raise
            state = Failed(message, result=exc)
        return state  # type: ignore[return-value]

    def _run_plain(self, state: State, upstream_states: dict[Edge, State], executor: Executor) -> State | None:
        """The lean path of a plain run, or None when the run is not plain.

        Plain: a fresh Pending state, no cache (``cache_for``), the default trigger, every
        upstream a plain Success (not Cached, Mapped or Skipped), and a runner class that
        keeps the engine's own versions of the methods inlined here (:func:`_is_lean`). The
        steps before Running would then all return ``state`` unchanged, so the run goes
        straight to its inputs (``get_task_inputs``), Running, the task body
        (``get_task_run_state``) and the retry rule, with the same states, transitions,
        handlers and hooks; ``handle_state_change`` is called only when something watches
        the transition (a handler of the task or the runner, a recording backend, a
        ``runwright_task_state_change`` implementation in scope for this task, a monitor).
        """
        if state.__class__ is not Pending or state.cached_inputs:  # type: ignore[attr-defined]
            return None
        task = self.task
        if task.cache_for is not None or task.trigger is not all_successful:
            return None
        cls = type(self)
        lean = _LEAN.get(cls)
        if not (lean if lean is not None else _is_lean(cls)):
            return None
        # The body needs the values only. The Results (what get_task_inputs gives: upstream
        # results, then the literal arguments with the run's handler) go into ``inputs``
        # below, when a state may keep them (TimedOut, Retrying, what a handler returns),
        # not after a plain Success nobody watches (a wide reducer: no second 100,000-entry
        # dict). Stored upstream results are read back here, once the run is known to be plain.
        inputs: dict[str, ResultInterface] = {}
        raw_inputs: dict[str, Any] = {}
        stored = False
        for edge, upstream in upstream_states.items():
            if upstream.__class__ is not Success:
                return None
            key = edge.key
            if key is not None:
                result = upstream._result
                if isinstance(result, SafeResult) and result is not NoResult:
                    stored = True
                raw_inputs[key] = result.value
        if stored:
            load = self.results.load
            for edge, upstream in upstream_states.items():
                key = edge.key
                if key is not None:
                    result = upstream._result
                    if isinstance(result, SafeResult) and result is not NoResult:
                        result = load(result)
                        raw_inputs[key] = result.value
                    inputs[key] = result
        # no truth test: a Flow.constants entry's len() is a call
        constants = None
        for key, value in self.constants.items():
            raw_inputs[key] = value
            constants = self.constants
        hooks = self._hooks
        quiet = self._recording is None and hooks is not None and hooks.state_change is None
        # the Running state is made only when something sees the transition to it (nothing
        # else reads it: the body's outcome is compared with it, and it is then dropped)
        plain_task = task.__class__.state_handlers is _HANDLERS_PROPERTY  # _handlers_of, inlined
        watched = not quiet or bool(
            (task._state_handlers if plain_task else task.state_handlers) or self.state_handlers
        )
        if watched:
            new_state: State = self.handle_state_change(state, Running("Starting task run."))
            if not isinstance(new_state, Running):  # a handler changed it: what get_task_run_state ends with
                raise ENDRUN(new_state)
            state = new_state
        # the step get_task_run_state, inlined (call_state_handlers' rules: step_raised)
        endrun = False
        try:
            new_state = self._run_task_body(inputs, raw_inputs, executor.timeout_handler)
        except Exception as exc:  # noqa: BLE001 - the step's rules (step_raised) decide
            new_state, endrun = step_raised(self, exc)
        late = not watched and bool(  # the body added a handler
            (task._state_handlers if plain_task else task.state_handlers) or self.state_handlers
        )
        if watched or late or new_state.__class__ is not Success:  # ``inputs`` (see above)
            if not stored:
                for edge, upstream in upstream_states.items():
                    key = edge.key
                    if key is not None:
                        inputs[key] = upstream._result
            if constants is not None:
                handler = self.result_handler
                for key, value in constants.items():
                    inputs[key] = Result(value, handler)
        if watched:
            if new_state is not state:
                new_state = self.handle_state_change(state, new_state)
        elif late:
            new_state = self.handle_state_change(Running("Starting task run."), new_state)
        if endrun:
            raise ENDRUN(new_state)
        if isinstance(new_state, Failed):
            new_state = self.check_for_retry(new_state, inputs)
        return new_state

    # -- steps -----------------------------------------------------------------------------
    @call_state_handlers
    def check_task_is_ready(self, state: State) -> State:
        if state.is_paused():
            self.logger.debug("Task '%s': task is paused.", self.task.name)
            raise ENDRUN(state)
        if state.is_pending() or state.is_mapped() or state.is_cached():
            return state
        if state.is_running():
            self.logger.debug("Task '%s': task is already running.", self.task.name)
        raise ENDRUN(state)

    @call_state_handlers
    def check_task_reached_start_time(self, state: State) -> State:
        if isinstance(state, Scheduled) and state.start_time > utcnow():
            raise ENDRUN(state)
        return state

    @call_state_handlers
    def check_upstream_finished(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """Wait (ENDRUN, still pending) unless every upstream task, and every mapped child of
        an upstream parent, has finished: a reducer never runs before a retrying child."""
        for upstream in upstream_states.values():
            if not isinstance(upstream, Finished):
                raise ENDRUN(state)
            if isinstance(upstream, Mapped):
                for child in upstream.map_states:
                    if not isinstance(child, Finished):  # None too: not run yet
                        raise ENDRUN(state)
        return state

    @call_state_handlers
    def check_upstream_skipped(self, state: State, upstream_states: dict[Edge, State]) -> State:
        if not self.task.skip_on_upstream_skip:
            return state
        for edge, upstream in upstream_states.items():
            states = upstream.map_states if (isinstance(upstream, Mapped) and not edge.mapped) else (upstream,)
            if any(isinstance(s, Skipped) for s in states):
                raise ENDRUN(
                    Skipped(
                        "Upstream task was skipped; if this was not the intended behavior, "
                        "consider changing `skip_on_upstream_skip=False` for this task."
                    )
                )
        return state

    def get_task_inputs(self, state: State, upstream_states: dict[Edge, State]) -> dict[str, ResultInterface]:
        """The task's arguments as Results: upstream results, then cached inputs for gaps."""
        inputs: dict[str, ResultInterface] = {}
        load: Callable[[ResultInterface], ResultInterface] | None = None
        for edge, upstream in upstream_states.items():
            if edge.key is not None:
                result = upstream._result
                if isinstance(result, SafeResult) and result is not NoResult:  # stored: read it back
                    if load is None:
                        load = self.results.load
                    result = load(result)
                inputs[edge.key] = result
        constants = self.constants
        if constants:
            # with the run's handler, as the Constant task's result had: a cache or a backend
            # that keeps the inputs (cached_inputs) can store them
            handler = self.result_handler
            for key, value in constants.items():
                inputs[key] = Result(value, handler)
        cached = getattr(state, "cached_inputs", None) if isinstance(state, Pending) else None
        if cached:
            load = self.results.load
            for key, value in cached.items():
                if inputs.get(key, NoResult) is NoResult:
                    inputs[key] = load(value) if isinstance(value, ResultInterface) else Result(value)
        return inputs

    @call_state_handlers
    def check_task_is_cached(self, state: State, inputs: dict[str, ResultInterface]) -> State:
        """Use a valid cached result instead of running the task.

        A Cached state passed in is validated with the task's cache validator. Otherwise,
        for a task with ``cache_for``, the run's backend is asked for a candidate when it
        ``answers_cache_checks``, then (if it found none) the ``runwright_check_task_is_cached``
        hook (runwright-cache looks in its store); a candidate whose result cannot be read
        back is a miss, with a warning.
        """
        task = self.task
        if isinstance(state, Cached):
            raw = {k: v.value for k, v in inputs.items()}
            if task.cache_validator(state, raw, runtime_context.get("parameters") or {}):
                state._result = self.results.load(state._result)
                return state
            self.logger.warning("Task '%s': cache was invalid; ready to run.", task.name)
            return Pending("Cache was invalid; ready to run.", cached_inputs=inputs)
        if task.cache_for is None:
            return state
        raw = {k: v.value for k, v in inputs.items()}
        parameters = runtime_context.get("parameters") or {}
        backend = self.active_backend
        try:
            candidate = None
            if backend is not None and backend.answers_cache_checks:
                candidate = self.call_backend(backend, "check_task_is_cached", self, task, state, raw, parameters, passthrough=())
            if candidate is None:
                candidate = get_plugin_manager().call_attributed(
                    "runwright_check_task_is_cached", runner=self, task=task, state=state, inputs=raw, parameters=parameters
                )
        except PluginError as exc:
            self.logger.warning("Task '%s': cache check failed, running the task: %s", task.name, exc)
            return state
        if not isinstance(candidate, Cached):
            return state
        try:
            candidate._result = self.results.load(candidate._result)
        except Exception as exc:  # noqa: BLE001 - an unreadable cache is a miss, never a failure
            self.logger.warning("Task '%s': cached result could not be read (%s); running the task.", task.name, exc)
            return state
        return candidate

    @call_state_handlers
    def check_task_trigger(self, state: State, upstream_states: dict[Edge, State]) -> State:
        task = self.task
        if task.trigger.__name__ == "all_successful" and not upstream_states:
            return state
        states: set[State] = set()
        for upstream in upstream_states.values():
            states.update(_flatten(upstream))
        # a literal argument counts as a successful upstream, as the Constant task it once was
        states.update(Success(result=value) for value in self.constants.values())
        try:
            if not task.trigger(states):
                raise signals.TRIGGERFAIL("Trigger failed")
        except signals.RunwrightSignal as signal:
            self.logger.debug("Task '%s': %s signal raised during trigger.", task.name, type(signal).__name__)
            if raise_on_exception():
                raise
            raise ENDRUN(signal.state) from signal
        except Exception as exc:
            if raise_on_exception():
                raise
            raise ENDRUN(
                TriggerFailed(f"Unexpected error while checking task trigger: {exc!r}", result=exc)
            ) from exc
        return state

    @call_state_handlers
    def set_task_to_running(self, state: State) -> State:
        if not state.is_pending():
            raise ENDRUN(state)
        return Running("Starting task run.")

    @call_state_handlers
    def get_task_run_state(
        self, state: State, inputs: dict[str, ResultInterface], timeout_handler: Callable[..., Any]
    ) -> State:
        if not isinstance(state, Running):
            raise ENDRUN(state)
        return self._run_task_body(inputs, {k: v.value for k, v in inputs.items()}, timeout_handler)

    def _run_task_body(
        self, inputs: dict[str, ResultInterface], raw_inputs: dict[str, Any], timeout_handler: Callable[..., Any]
    ) -> State:
        """``get_task_run_state`` once the state is Running: run the task body, return its
        Success (or TimedOut); the body's exceptions propagate to the step's rules."""
        task = self.task
        # context.logger is the task's logger while its body runs (set and restored directly:
        # this runs for every task)
        data = runtime_context._data
        saved = data.get("logger", _MISSING)
        # Task.logger without its property call, unless the class has its own
        logger = _task_logger(task.name) if task.__class__.logger is _LOGGER_PROPERTY else task.logger
        data["logger"] = logger
        try:
            if task.log_stdout:
                with stdout_logged(logger):
                    value = task.run(**raw_inputs) if task.timeout is None else timeout_handler(
                        task.run, timeout=task.timeout, **raw_inputs
                    )
            elif task.timeout is None:
                value = task.run(**raw_inputs)
            else:
                value = timeout_handler(task.run, timeout=task.timeout, **raw_inputs)
        except TimeoutError as exc:
            if raise_on_exception():
                raise
            return TimedOut("Task timed out during execution.", result=exc, cached_inputs=inputs)
        finally:
            if saved is _MISSING:
                data.pop("logger", None)
            else:
                data["logger"] = saved
        handler = self._result_handler
        result = Result(value, handler if handler is not None else self.result_handler)
        if (
            task.checkpoint or data.get("checkpointing") or task.__class__ is Parameter
        ) and self._should_checkpoint():
            self.results.store(result)
        return Success("Task run succeeded.", result)

    def _should_checkpoint(self) -> bool:
        """Checkpoint when the task asks, or ``[engine] checkpointing`` is on. Parameters are
        checkpointed (as JSON) only when the run's backend asks (``checkpoints_parameters``:
        a backend that resumes runs needs them)."""
        task = self.task
        if task.__class__ is Parameter:
            backend = self.active_backend
            return backend is not None and backend.checkpoints_parameters
        return bool(task.checkpoint or runtime_context._data.get("checkpointing"))

    @call_state_handlers
    def cache_result(self, state: State, inputs: dict[str, ResultInterface]) -> State:
        task = self.task
        if isinstance(state, Success) and not isinstance(state, Skipped) and task.cache_for is not None:
            expiration = utcnow() + task.cache_for
            return Cached(
                result=state._result,
                cached_inputs=inputs,
                cached_result_expiration=expiration,
                cached_parameters=runtime_context.get("parameters"),
                message=state.message,
            )
        return state

    @call_state_handlers
    def fail_lost_run(self, state: State, lost: LostRun) -> State:
        """Failed: the executor lost this run's work (``lost.reason`` says how)."""
        name = runtime_context.get("task_full_name") or self.task.name
        return Failed(f"Task '{name}': {lost.reason}", result=lost.error)

    @call_state_handlers
    def retry_lost_bystander(self, state: State, lost: LostRun) -> State:
        """Retrying now, counting no attempt: the executor lost this run's work with a worker
        that something else may have killed, and runs it again."""
        name = runtime_context.get("task_full_name") or self.task.name
        return Retrying(
            f"Task '{name}': {lost.reason}; running it again",
            run_count=max(int(runtime_context.get("task_run_count", 1)) - 1, 0),
        )

    @call_state_handlers
    def check_for_retry(self, state: State, inputs: dict[str, ResultInterface]) -> State:
        if isinstance(state, Failed) and not isinstance(state, Retrying):
            run_count = runtime_context.get("task_run_count", 1)
            task = self.task
            if run_count <= task.max_retries:
                delay = task.retry_delay or datetime.timedelta(0)
                return Retrying(
                    start_time=utcnow() + delay,
                    cached_inputs=inputs,
                    message=f"Retrying Task (after attempt {run_count} of {task.max_retries + 1})",
                    run_count=run_count,
                )
        return state

    # -- mapping ---------------------------------------------------------------------------
    def check_mapped_task_trigger(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """A mapped parent's trigger, before it maps: over the upstream states that are not
        Mapped (a Mapped upstream's children are judged per child, by each mapped child's
        own trigger), so a failed upstream ends the parent TriggerFailed like any task.
        (A trigger that lets it run over a failed upstream it maps over: see run_mapped_task.)
        """
        direct = {edge: upstream for edge, upstream in upstream_states.items() if not isinstance(upstream, Mapped)}
        if not direct:
            return state
        return self.check_task_trigger(state, direct)

    @call_state_handlers
    def run_mapped_task(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """Become Mapped with one (not yet run) child state per mapped item (Failed, saying
        so, when an upstream it maps over failed and the trigger let it run anyway).

        The parent reaches Mapped *before* any child runs, so a backend always knows the
        parent before it hears of a child.
        """
        count: int | None = None
        for edge, upstream in upstream_states.items():
            if not edge.mapped:
                continue
            if isinstance(upstream, Mapped):
                length = len(upstream.map_states)
            elif upstream.is_failed():
                # the trigger (all_finished, always_run, ...) let the parent run, but a failed
                # task's result is its exception: there is nothing to map over
                raise ENDRUN(
                    Failed(
                        f"Task {self.task.name!r} cannot map over {edge.key or 'an upstream result'} from "
                        f"{edge.upstream_task.name!r}: that task ended {type(upstream).__name__}, so there are "
                        f"no items to map over (the trigger {getattr(self.task.trigger, '__name__', self.task.trigger)!r} let {self.task.name!r} "
                        "run, but a mapped task needs the result it maps over); map over a task that succeeded, "
                        "or pass the argument unmapped(...)"
                    )
                )
            else:
                stored = upstream._result
                if isinstance(stored, SafeResult) and stored is not NoResult:
                    # only its location (restored from a backend: a resumed run): map over
                    # its value, read back once for the parent and its children
                    upstream._result = self.results.load(stored)
                value = upstream.result
                try:
                    length = len(value)
                except TypeError:
                    raise TypeError(
                        f"Task {self.task.name!r} maps over {edge.key or 'an upstream result'} from "
                        f"{edge.upstream_task.name!r}, a {type(value).__name__}, which has no length; "
                        "map over a list, or wrap the argument in unmapped(...)"
                    ) from None
            count = length if count is None else min(count, length)
        count = count or 0
        existing = list(state.map_states) if isinstance(state, Mapped) else []
        children = (existing + [None] * count)[:count]
        return Mapped(f"Preparing to submit {count} mapped tasks.", map_states=children)

    def submit_mapped_children(
        self,
        state: Mapped,
        upstream_states: dict[Edge, State],
        context: dict[str, Any],
        executor: Executor,
    ) -> Mapped:
        """Run (or submit) every child on the executor; the same Mapped state holds them."""
        count = len(state.map_states)
        # (edge, how the child gets its upstream, what from), worked out once for all children
        plan: list[tuple[Edge, int, Any, Any]] = []
        for edge, upstream in upstream_states.items():
            if not edge.mapped:
                plan.append((edge, _WHOLE, upstream, None))
            elif isinstance(upstream, Mapped):
                plan.append((edge, _CHILD, upstream.map_states, None))
            else:
                plan.append((edge, _ITEM, upstream, upstream.result))

        def child_upstreams() -> Iterator[dict[Edge, Any]]:
            """Each child's upstream states, made as the executor takes them (one at a time
            on the local executor: a million-child map never holds a million of them)."""
            for i in range(count):
                child: dict[Edge, Any] = {}
                for edge, kind, source, values in plan:
                    if kind == _WHOLE:
                        child[edge] = source
                    elif kind == _CHILD:
                        child[edge] = source[i]
                    else:
                        item = copy_state(source)
                        item._result = Result(values[i], source._result.result_handler)  # keep the handler (seed bug #1096)
                        child[edge] = item
                yield child

        def run_child(
            child_state: State | None, index: int, child_upstream: dict[Edge, Any], lost: LostRun | None = None
        ) -> State:
            return self.run(
                state=child_state,
                upstream_states=child_upstream,
                context=dict(context, map_index=index),
                executor=executor,
                lost=lost,
            )

        state.map_states = executor.map(run_child, state.map_states, range(count), child_upstreams())
        if not executor.returns_futures:
            state.map_states = executor.wait(state.map_states)
        state.message = "Mapped tasks submitted for execution."
        return state


#: the methods :meth:`TaskRunner._run_plain` inlines or skips: a class that overrides one
#: of them runs every task through its steps (the same outcome, its own methods called)
_INLINED = (
    "get_task_inputs",
    "get_task_run_state",
    "handle_state_change",
    "call_runner_target_handlers",
    "notify_plugins",
    "_run_task_body",
)
_LEAN: dict[type, bool] = {}


def _is_lean(cls: type) -> bool:
    """True when ``cls`` keeps TaskRunner's own versions of the methods in ``_INLINED``."""
    lean = _LEAN.get(cls)
    if lean is None:
        lean = _LEAN[cls] = all(getattr(cls, name) is getattr(TaskRunner, name) for name in _INLINED)
    return lean
