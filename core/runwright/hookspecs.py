"""Hook specifications: every point where a plugin can change what runwright does.

Implement a hook by decorating a function named exactly like the spec with
``runwright.hookimpl`` in a module that your distribution lists under the ``runwright``
entry-point group::

    # setup.py:  entry_points={"runwright": ["myplugin = my_package.plugin"]}
    from runwright import hookimpl

    @hookimpl
    def runwright_task_state_change(runner, task, old_state, new_state):
        print(f"{task.name}: {type(old_state).__name__} -> {type(new_state).__name__}")

An implementation may accept any subset of a spec's arguments, by name.

**Where hooks run.** Run hooks run where the runner runs: the main process for the
``local`` and ``threads`` executors, an executor worker (another thread, or another process
on Dask) for task hooks. Each process builds its own plugin manager from the configuration,
so a plugin installed and enabled on the workers fires there too.

**Cost.** Hooks are called at run and state boundaries only (a few calls per task run),
never inside loops over tasks. A task-run hook with no implementation in scope for a task
(see :func:`for_tasks`) and no call monitor is not called at all for its runs.

**Errors.** A plugin that raises:

* in an initialization or state-change hook: the run ends ``Failed`` with a message that
  names the plugin and the hook (``ENDRUN`` and ``PAUSE`` raised on purpose pass through);
* in ``runwright_check_task_is_cached``: the error is logged with the plugin's name and the
  check counts as a cache miss, so the task runs;
* in ``runwright_result_write``: the task ends ``Failed`` naming the plugin;
* in ``runwright_result_read``: the read fails with an error naming the plugin and location;
* in ``runwright_flow_run_end`` / ``runwright_task_run_end``: the error is logged with the
  plugin's name; the run's state is kept.

**Scoping task-run hooks.** An implementation of ``runwright_task_run_initialize``,
``runwright_task_state_change`` or ``runwright_task_run_end`` that only cares about some
tasks says which with :func:`for_tasks`; it is then not called at all for the runs of other
tasks (runwright-cache watches only tasks with ``cache_for``)::

    @hookimpl
    @for_tasks(lambda task: task.cache_for is not None)
    def runwright_task_state_change(runner, task, old_state, new_state): ...

See ``docs/hooks.md`` for the full call order of a flow run and a task run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    import click

    from runwright.backends import Backend
    from runwright.engine.flow_runner import FlowRunner, FlowRunSetup
    from runwright.engine.result import Result
    from runwright.engine.result_handlers import ResultHandler
    from runwright.engine.state import Cached, State
    from runwright.engine.task_runner import TaskRunner, TaskRunSetup
    from runwright.flow import Flow
    from runwright.storage import Storage
    from runwright.task import Task

PROJECT_NAME = "runwright"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

F = TypeVar("F", bound=Callable[..., Any])

#: The hooks a task run fires, the ones :func:`for_tasks` can scope.
TASK_RUN_HOOKS = ("runwright_task_run_initialize", "runwright_task_state_change", "runwright_task_run_end")
#: The attribute :func:`for_tasks` sets on an implementation (read by the dispatcher).
TASK_SCOPE_ATTRIBUTE = "runwright_task_scope"


def for_tasks(predicate: Callable[[Task], bool]) -> Callable[[F], F]:
    """Scope a task-run hook implementation to the tasks for which ``predicate(task)`` is true.

    For ``runwright_task_run_initialize``, ``runwright_task_state_change`` and
    ``runwright_task_run_end`` implementations (put it under ``@hookimpl``, or above: the
    order does not matter). The contract:

    * ``predicate(task)`` is called once per task and plugin set, where the task runs, before
      the task's first hook (a mapped task's children share its answer); it must depend only
      on the task (its options, its class), never on a state or the time;
    * when it is false the implementation is not called for any hook of that task's runs:
      the plugin does not see those runs. When it is true, the implementation sees every
      hook of every run of the task, exactly as without a scope;
    * a predicate that raises is logged as an error naming the plugin, and the
      implementation is called for that task as if it had no scope;
    * call monitors (``pm.add_hookcall_monitoring``, the ``hook_recorder`` fixture) still
      see every call a task run makes, with the implementations in scope as ``hook_impls``.

    A task run whose hooks have no implementation in scope (and no monitor) costs no hook
    call at all.
    """
    if not callable(predicate):
        raise TypeError(f"for_tasks() takes a function of the task (task -> bool), not {predicate!r}")

    def mark(implementation: F) -> F:
        name = getattr(implementation, "__name__", "")
        if name not in TASK_RUN_HOOKS:
            raise TypeError(
                f"for_tasks() scopes task-run hook implementations ({', '.join(TASK_RUN_HOOKS)}), "
                f"not {name or implementation!r}: remove it, or put it on one of those"
            )
        setattr(implementation, TASK_SCOPE_ATTRIBUTE, predicate)
        return implementation

    return mark


# -- registration --------------------------------------------------------------------------
@hookspec
def runwright_register_result_handlers(register: Callable[..., None]) -> None:
    """Register result handler classes so configuration and serialized states can name them.

    :param register: call ``register(handler_class, name=None)``; the name defaults to the
        class's ``handler_name``. Registering a name twice is an error naming both classes.

    Called once per plugin manager, the first time a registered name is looked up (all
    registration hooks together), and again only after a plugin implementing one of them is
    registered or unregistered.
    """


@hookspec
def runwright_register_cache_validators(register: Callable[..., None]) -> None:
    """Register cache validators (or validator factories) by name.

    :param register: call ``register(name, validator)``; a validator has the signature
        ``(state: Cached, inputs: dict, parameters: dict) -> bool`` and compares raw values.

    Lets ``@task(cache_validator="all_inputs")`` and configuration name a validator.
    """


@hookspec
def runwright_register_executors(register: Callable[..., None]) -> None:
    """Register executor classes by name (``flow.run(executor="dask")``, ``--executor``).

    :param register: call ``register(name, executor_class)``.
    """


@hookspec
def runwright_register_config(register: Callable[..., None]) -> None:
    """Register the configuration tables a plugin reads, with their keys and defaults.

    :param register: call ``register(table, defaults, free_form=False)``: ``table`` is the
        dotted table name (``"plugins.local"``, ``"cloud"``; ``""`` is the top level),
        ``defaults`` maps every key the table accepts to its default. Registering a table
        another plugin registered too adds keys to it.

    A key that no registered table knows, in a file or a ``RUNWRIGHT__...`` variable, is an
    error naming the key and the known ones; a whole table that no installed plugin
    registers is a warning (a worker may lack a plugin). ``runwright config`` shows every
    registered default. Called with the other registration hooks; the configuration is
    checked when a flow run starts (once per configuration object, in the process that runs
    the flow) and by ``runwright run`` and ``runwright config``.
    """


@hookspec
def runwright_register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``runwright`` command line.

    :param cli: the root ``click.Group``; call ``cli.add_command(...)``.

    Called once when the CLI starts, before arguments are parsed. A plugin that raises here
    loses its commands, with a one-line warning naming it; the CLI keeps working.
    """


@hookspec
def runwright_register_backends(register: Callable[[Backend], None]) -> None:
    """Register backends: where runs are recorded (``--backend NAME``, ``[engine] backend``).

    :param register: call ``register(backend)`` with an instance of a
        :class:`runwright.backends.Backend` subclass; its ``name`` is the registered name.
        Registering a name twice is an error naming both backends.

    Called once per process and plugin manager, the first time a backend is looked up. The
    core registers ``local``; a backend plugin registers its own. The runners call the
    active backend's methods directly (see :mod:`runwright.backends` for the order).
    """


@hookspec
def runwright_register_storages(register: Callable[[Storage], None]) -> None:
    """Register storages: where deployed flow code is kept (``runwright deploy --storage NAME``).

    :param register: call ``register(storage)`` with an instance of a
        :class:`runwright.storage.Storage` subclass; its ``name`` is the registered name.
        Registering a name twice is an error naming both storages.

    Called once per process and plugin manager, the first time a storage is looked up (by
    ``runwright deploy`` and by an agent fetching a deployment's code). The core registers
    none; runwright-cloud registers ``server``.
    """


@hookspec
def runwright_add_options(command_name: str, add_option: Callable[..., None]) -> None:
    """Add options to an existing command of the ``runwright`` command line.

    :param command_name: the command being built (today ``"run"``).
    :param add_option: call ``add_option(*param_decls, apply=fn, **click_option_kwargs)``,
        the arguments of ``click.option`` plus ``apply``; when the user gives the option,
        ``apply(request, value)`` is called before the command runs, with the command's
        request object (for ``run``: a :class:`runwright.cli.options.RunRequest` whose
        ``backend``, ``context`` and ``settings`` it may change). An option name the command
        already has is an error.

    Called once per command when the CLI starts, after ``runwright_register_commands``. A
    plugin that raises here loses its options, with a one-line warning naming it; the CLI
    keeps working.
    """


# -- flow runs -----------------------------------------------------------------------------
@hookspec
def runwright_flow_run_initialize(runner: FlowRunner, flow: Flow, setup: FlowRunSetup) -> None:
    """Prepare a flow run before any step runs; every implementation is called.

    :param runner: the flow runner.
    :param flow: the flow being run.
    :param setup: a mutable :class:`~runwright.engine.flow_runner.FlowRunSetup` with
        ``state``, ``task_states``, ``context``, ``task_contexts`` and ``parameters``. Assign
        or update its fields to change the run; raise ``ENDRUN(state)`` to end it at once.

    Called at the start of ``FlowRunner.run`` (main process), after the caller's arguments
    were copied, after the run's backend initialized the run (a recording backend loads the
    flow run's state, parameters, context and task runs here), and before the date and
    parameter keys are filled in.
    """


@hookspec
def runwright_flow_state_change(runner: FlowRunner, flow: Flow, old_state: State, new_state: State) -> None:
    """A flow run's state changed; every implementation is called.

    :param old_state: the state before the change.
    :param new_state: the state after the flow's and the runner's own state handlers ran.

    Called for every transition, after ``flow.state_handlers`` and the runner's handlers.
    Raise ``ENDRUN(state)`` to stop the run with ``state``. The run's backend recorded the
    state first: a state it refused is never seen here.
    """


@hookspec
def runwright_flow_run_end(runner: FlowRunner, flow: Flow, state: State) -> None:
    """A flow run ended (whatever the outcome) with ``state``; every implementation is called.

    Called once at the end of ``FlowRunner.run``, in a ``finally`` block, so it also runs
    after errors. Use it to stop heartbeats and flush buffered writes.
    """


# -- task runs -----------------------------------------------------------------------------
@hookspec
def runwright_task_run_initialize(runner: TaskRunner, task: Task, setup: TaskRunSetup) -> None:
    """Prepare a task run (or a mapped child run); every implementation is called.

    :param setup: a mutable :class:`~runwright.engine.task_runner.TaskRunSetup` with
        ``state`` and ``context``. Raise ``ENDRUN(state)`` to end the run at once.

    Called at the start of ``TaskRunner.run``, where the task runs (an executor worker on
    Dask), before the meta states are unwrapped and ``task_run_count`` is set. For a run
    whose work an executor lost (a dead worker), it is called in the submitting process with
    ``setup.lost`` set (a :class:`~runwright.engine.executors.LostRun`): the run is only
    recorded, and a backend's record of it may be newer than ``setup.state``.
    """


@hookspec
def runwright_task_state_change(runner: TaskRunner, task: Task, old_state: State, new_state: State) -> None:
    """A task run's state changed; every implementation is called.

    Called for every transition of a task run (mapped children included), after the task's
    and the runner's own state handlers, in the thread or process that runs the task. Raise
    ``ENDRUN(state)`` to stop the task run with ``state``. An implementation scoped with
    :func:`for_tasks` is called for every transition of the tasks in its scope only.
    """


@hookspec(firstresult=True)
def runwright_check_task_is_cached(
    runner: TaskRunner, task: Task, state: State, inputs: dict[str, Any], parameters: dict[str, Any]
) -> Cached | None:
    """Find a valid cached state for a task that is about to run.

    :param state: the task's current (pending) state.
    :param inputs: the task's inputs as raw values, by argument name.
    :param parameters: the flow run's parameters.
    :return: a ``Cached`` state whose result can be read, or None for a miss.

    Called only for tasks with ``cache_for`` set, once per task run, before the trigger is
    checked, and only when the run's backend found nothing (a backend that
    ``answers_cache_checks`` is asked first). Stops at the first non-None result. A returned
    state's result is read back before the task is considered cached.
    """


@hookspec(firstresult=True)
def runwright_result_write(value: Any, handler: ResultHandler) -> str | None:
    """Store a task's result; return the location (usually a URI) it was written to.

    Called when a result is checkpointed, cached or sent to a backend. Stops at the first
    non-None result; the built-in implementation (``trylast``) calls ``handler.write(value)``.
    """


@hookspec(firstresult=True)
def runwright_result_read(location: str, handler: ResultHandler | None) -> Result | None:
    """Read a stored result back.

    :param location: what ``write`` returned (a URI such as ``file:///...`` or ``gs://b/k``).
    :param handler: the handler that wrote it, or None when only the location is known.
    :return: a :class:`~runwright.engine.result.Result` wrapping the value (so a stored
        ``None`` is distinguishable from "not mine"), or None to let the next plugin try.

    Stops at the first non-None result. The built-in implementation (``trylast``) uses
    ``handler``, or else the registered handler whose ``uri_schemes`` match the location.
    """


@hookspec
def runwright_task_run_end(runner: TaskRunner, task: Task, state: State) -> None:
    """A task run (or mapped child run) ended with ``state``; every implementation is called."""
