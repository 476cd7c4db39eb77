"""Flows: a graph of tasks and the edges between them."""

from __future__ import annotations

import collections
import functools
import keyword
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from runwright.context import context
from runwright.edge import Edge
from runwright.gc_quiet import spaced_collections
from runwright.task import Task, _failure_handler, unmapped
from runwright.tasks_core import as_task, is_literal

if TYPE_CHECKING:
    from runwright.engine.executors import Executor
    from runwright.engine.result_handlers import ResultHandler
    from runwright.engine.state import State
    from runwright.parameter import Parameter
    from runwright.schedules import BaseSchedule


@functools.cache
def _parameter_class() -> type:
    from runwright.parameter import Parameter

    return Parameter


class FlowValidationError(ValueError):
    """The flow's graph is invalid (a cycle, an unknown task, a duplicate key)."""


class Flow:
    """A named graph of tasks.

    Build it with the functional API (``with Flow("etl") as flow: load(extract())``) or
    explicitly (``add_task``, ``add_edge``, ``set_dependencies``); run it with ``flow.run()``.
    """

    def __init__(
        self,
        name: str,
        schedule: BaseSchedule | None = None,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: list[Callable[..., Any]] | None = None,
        on_failure: Callable[..., Any] | None = None,
        validate: bool | None = None,
        result_handler: ResultHandler | str | None = None,
    ) -> None:
        if not name:
            raise ValueError("A flow needs a name: Flow('my-flow')")
        self.name = name
        if schedule is not None:
            from runwright.schedules import BaseSchedule

            if not isinstance(schedule, BaseSchedule):
                raise TypeError(
                    f"schedule must be a runwright.schedules IntervalSchedule, CronSchedule or Schedule, "
                    f"got {type(schedule).__name__}: {schedule!r}"
                )
        #: when ``flow.run()`` starts the flow: an IntervalSchedule, CronSchedule or Schedule
        self.schedule = schedule
        self.result_handler = result_handler
        self.tasks: set[Task] = set()
        self.edges: set[Edge] = set()
        # per task, the edges into and out of it (lists: most tasks have one or two, and a
        # list is a quarter of an empty set's size; ``edges`` keeps them unique)
        self._edges_to: dict[Task, list[Edge]] = {}
        self._edges_from: dict[Task, list[Edge]] = {}
        #: the keyed edge of each (downstream task, argument)
        self._keys_to: dict[tuple[Task, str], Edge] = {}
        #: literal arguments bound to a task: ``{task: {argument: value}}`` (no task, no edge,
        #: no task run: the task runner passes them with the upstream results)
        self.constants: dict[Task, dict[str, Any]] = {}
        self._slugs: dict[str, Task] = {}
        self._slug_counters: dict[str, int] = collections.defaultdict(int)
        self._sorted: tuple[Task, ...] | None = None
        self._reference_tasks: set[Task] = set()
        if state_handlers is not None and not isinstance(state_handlers, collections.abc.Sequence):
            raise TypeError("state_handlers should be iterable.")
        self.state_handlers: list[Callable[..., Any]] = list(state_handlers or [])
        if on_failure is not None:
            self.state_handlers.append(_failure_handler(on_failure))
        self._context_token: Any = None
        self._gc_token: Any = None
        for task in tasks or ():
            self.add_task(task)
        for edge in edges or ():
            self.add_edge(edge.upstream_task, edge.downstream_task, key=edge.key, mapped=edge.mapped, validate=validate)
        if reference_tasks:
            self.set_reference_tasks(reference_tasks)

    def __repr__(self) -> str:
        return f"<Flow: {self.name}>"

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Flow:
        # building a wide flow: fewer cyclic-garbage collections (gc_quiet)
        self._gc_token = spaced_collections()
        self._gc_token.__enter__()
        self._context_token = context(flow=self)
        self._context_token.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        token, self._context_token = self._context_token, None
        gc_token, self._gc_token = self.__dict__.get("_gc_token"), None
        try:
            token.__exit__(*exc)
        finally:
            if gc_token is not None:
                gc_token.__exit__(None, None, None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_context_token"] = None
        state["_gc_token"] = None
        state["_slug_counters"] = dict(self._slug_counters)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slug_counters = collections.defaultdict(int, self._slug_counters)

    # -- building --------------------------------------------------------------------------
    def add_task(self, task: Task) -> Task:
        """Add ``task``; it gets a slug unique in this flow (``name-1``, ``name-2``, ...)."""
        if not isinstance(task, Task):
            raise TypeError(f"Flows can only contain tasks, got {type(task).__name__}: {task!r}")
        if task in self.tasks:
            return task
        if task.slug is None:
            counter = self._slug_counters[task.name]
            slug = f"{task.name}-{counter + 1}"
            while slug in self._slugs:
                counter += 1
                slug = f"{task.name}-{counter + 1}"
            self._slug_counters[task.name] = counter + 1
            task.slug = slug
        elif task.slug in self._slugs:
            raise ValueError(f'A task with the slug "{task.slug}" already exists in this flow.')
        self._slugs[task.slug] = task
        self.tasks.add(task)
        self._sorted = None
        return task

    def add_edge(
        self,
        upstream_task: Task,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """Add an edge; with ``validate`` check the key and that no cycle appears."""
        if isinstance(downstream_task, _parameter_class()):
            raise ValueError("Parameters must be root tasks: nothing can be upstream of a Parameter")
        edge = Edge(upstream_task, downstream_task, key=key, mapped=mapped)
        tasks = self.tasks
        if upstream_task not in tasks:
            self.add_task(upstream_task)
        if downstream_task not in tasks:
            self.add_task(downstream_task)
        if key is not None:
            keys = self._keys_to
            existing = keys.get((downstream_task, key))
            if existing is not None and existing != edge:
                raise ValueError(f'Argument "{key}" of task {downstream_task.name!r} is already bound to a task')
            constants = self.constants.get(downstream_task)
            if constants and key in constants:
                raise ValueError(f'Argument "{key}" of task {downstream_task.name!r} is already bound to a value')
            keys[(downstream_task, key)] = edge
        edges = self.edges
        if edge in edges:  # the same edge again: nothing changes
            return edge
        edges.add(edge)
        into = self._edges_to.get(downstream_task)
        if into is None:
            self._edges_to[downstream_task] = [edge]
        else:
            into.append(edge)
        out = self._edges_from.get(upstream_task)
        if out is None:
            self._edges_from[upstream_task] = [edge]
        else:
            out.append(edge)
        self._sorted = None
        if validate:
            if key is not None:
                import inspect

                params = inspect.signature(downstream_task.run).parameters
                takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
                if key not in params and not takes_kwargs:
                    self._remove_edge(edge)
                    raise ValueError(f"Task {downstream_task.name!r} has no argument named {key!r}")
            if self._reaches(downstream_task, upstream_task):
                self._remove_edge(edge)
                raise FlowValidationError("Cycle found; flows must be acyclic!")
        return edge

    def bind_constant(self, task: Task, key: str, value: Any, validate: bool | None = None) -> None:
        """Bind the literal ``value`` to argument ``key`` of ``task`` (what calling a task
        with a non-task argument does): it is passed to every run of the task, mapped
        children included, without a task or an edge of its own."""
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise ValueError(f"Argument name {key!r} must be a valid Python identifier that is not a keyword")
        self.add_task(task)
        bound = self.constants.get(task)
        if bound is None:
            bound = self.constants[task] = {}
        if key in bound:
            raise ValueError(f'Argument "{key}" of task {task.name!r} is already bound to a value')
        if (task, key) in self._keys_to:
            raise ValueError(f'Argument "{key}" of task {task.name!r} is already bound to a task')
        if validate:
            import inspect

            params = inspect.signature(task.run).parameters
            takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            if key not in params and not takes_kwargs:
                raise ValueError(f"Task {task.name!r} has no argument named {key!r}")
        bound[key] = value

    def _remove_edge(self, edge: Edge) -> None:
        self.edges.discard(edge)
        for index in (self._edges_to, self._edges_from):
            for task in (edge.downstream_task, edge.upstream_task):
                listed = index.get(task)
                if listed is not None and edge in listed:
                    listed.remove(edge)
        if edge.key is not None and self._keys_to.get((edge.downstream_task, edge.key)) == edge:
            del self._keys_to[(edge.downstream_task, edge.key)]
        self._sorted = None

    def _reaches(self, start: Task, target: Task) -> bool:
        if start is target:
            return True
        seen = {start}
        stack = [start]
        while stack:
            for edge in self._edges_from.get(stack.pop(), ()):
                nxt = edge.downstream_task
                if nxt is target:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Add ``task`` with its upstream, downstream and keyword (argument) dependencies."""
        if task not in self.tasks:
            self.add_task(task)
        for upstream in upstream_tasks or ():
            is_mapped = mapped and not isinstance(upstream, unmapped)
            if isinstance(upstream, unmapped):
                upstream = upstream.task
            self.add_edge(as_task(upstream, flow=self), task, mapped=is_mapped, validate=validate)
        for downstream in downstream_tasks or ():
            self.add_edge(task, as_task(downstream, flow=self), validate=validate)
        for key, value in (keyword_tasks or {}).items():
            is_mapped = mapped and not isinstance(value, unmapped)
            if isinstance(value, unmapped):
                value = value.task
            if not is_mapped and is_literal(value):
                self.bind_constant(task, key, value, validate=validate)
                continue
            self.add_edge(as_task(value, flow=self), task, key=key, mapped=is_mapped, validate=validate)

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """The tasks whose states decide the flow's final state (default: terminal tasks)."""
        tasks = set(tasks)
        unknown = tasks - self.tasks
        if unknown:
            raise ValueError(f"Reference tasks must be part of the flow; not in it: {sorted(t.name for t in unknown)}")
        self._reference_tasks = tasks

    # -- queries ---------------------------------------------------------------------------
    def edges_to(self, task: Task) -> set[Edge]:
        return set(self._edges_to.get(task, ()))

    def edges_from(self, task: Task) -> set[Edge]:
        return set(self._edges_from.get(task, ()))

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream_task for e in self._edges_to.get(task, ())}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream_task for e in self._edges_from.get(task, ())}

    def root_tasks(self) -> set[Task]:
        return {t for t in self.tasks if not self._edges_to.get(t)}

    def terminal_tasks(self) -> set[Task]:
        return {t for t in self.tasks if not self._edges_from.get(t)}

    def reference_tasks(self) -> set[Task]:
        return set(self._reference_tasks) or self.terminal_tasks()

    def parameters(self) -> set[Parameter]:
        from runwright.parameter import Parameter

        return {t for t in self.tasks if isinstance(t, Parameter)}

    def get_task(self, slug: str) -> Task:
        """The task with this slug."""
        try:
            return self._slugs[slug]
        except KeyError:
            raise KeyError(f"Flow {self.name!r} has no task with slug {slug!r}") from None

    def get_tasks(self, name: str | None = None) -> list[Task]:
        return [t for t in self.tasks if name is None or t.name == name]

    def sorted_tasks(self) -> tuple[Task, ...]:
        """Tasks in topological order (computed once, cached until the graph changes)."""
        if self._sorted is None:
            self._sorted = self._topological_sort()
        return self._sorted

    def _topological_sort(self) -> tuple[Task, ...]:
        indegree = {t: len(self._edges_to.get(t, ())) for t in self.tasks}
        # a stable order: by slug among ready tasks, so runs are reproducible
        ready = collections.deque(sorted((t for t, d in indegree.items() if d == 0), key=lambda t: t.slug or ""))
        order: list[Task] = []
        while ready:
            current = ready.popleft()
            order.append(current)
            for edge in self._edges_from.get(current, ()):
                child = edge.downstream_task
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(order) != len(self.tasks):
            stuck = sorted(t.name for t, d in indegree.items() if d > 0)[:5]
            raise FlowValidationError(f"Cycle found; flows must be acyclic! Tasks on or after the cycle include: {stuck}")
        return tuple(order)

    def validate(self) -> None:
        """Check the whole graph: edges between known tasks, reference tasks, no cycle."""
        for edge in self.edges:
            if edge.upstream_task not in self.tasks or edge.downstream_task not in self.tasks:
                raise FlowValidationError(f"{edge!r} refers to a task that is not in the flow")
        if not self._reference_tasks <= self.tasks:
            raise FlowValidationError("Some reference tasks are not part of the flow")
        if not self.constants.keys() <= self.tasks:
            raise FlowValidationError("Some tasks with bound arguments are not part of the flow")
        self.sorted_tasks()

    def __iter__(self) -> Iterator[Task]:
        return iter(self.sorted_tasks())

    def __len__(self) -> int:
        return len(self.tasks)

    def structure(self) -> dict[str, Any]:
        """Plain data describing the graph (what a backend stores when a flow is registered)."""
        return {
            "name": self.name,
            "tasks": [{"slug": t.slug, "name": t.name} for t in self.sorted_tasks()],
            "edges": sorted(
                (
                    {"upstream": e.upstream_task.slug, "downstream": e.downstream_task.slug, "key": e.key, "mapped": e.mapped}
                    for e in self.edges
                ),
                key=lambda e: (e["upstream"], e["downstream"], e["key"] or ""),
            ),
            # the arguments bound to literal values (names only: a value can be anything)
            "constants": sorted(
                ({"task": t.slug, "key": key} for t, bound in self.constants.items() for key in bound),
                key=lambda c: (c["task"], c["key"]),
            ),
        }

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        parameters: dict[str, Any] | None = None,
        run_on_schedule: bool | None = None,
        runner_cls: type | None = None,
        executor: Executor | str | None = None,
        **kwargs: Any,
    ) -> State:
        """Run the flow to completion and return its state (task states in ``state.result``).

        Keyword arguments named like the flow's parameters are parameters; others go to the
        runner's ``run``. Retries scheduled beyond ``[engine] inprocess_retry_limit`` are
        waited for here, re-running the flow with the states so far.

        A flow with a ``schedule`` runs on it (unless ``run_on_schedule=False`` or
        ``[flows] run_on_schedule = false``): it waits for each start, runs, carries its
        Cached task states into the next run, and returns the last run's state once the
        schedule has no more starts. Ctrl-C while waiting stops it and returns the last
        run's state.
        """
        if "return_tasks" in kwargs:
            raise ValueError("Flow.run returns the state of every task; return_tasks is not accepted here")
        parameters = dict(parameters or {})
        names = {p.name for p in self.parameters()}
        for key in list(kwargs):
            if key in names:
                parameters[key] = kwargs.pop(key)
        if runner_cls is None:
            from runwright.engine import get_default_flow_runner_class

            runner_cls = get_default_flow_runner_class()
        schedule = self.schedule
        if schedule is not None and run_on_schedule is None:
            from runwright.config import get_config

            run_on_schedule = bool(get_config().get_nested("flows.run_on_schedule", True))
        if schedule is None or not run_on_schedule:
            self._check_parameters(parameters, names)
            self.validate()
            return self._run_to_end(parameters, runner_cls, executor, kwargs)
        return self._run_on_schedule(schedule, parameters, names, runner_cls, executor, kwargs)

    def _check_parameters(self, parameters: dict[str, Any], names: set[str], where: str = "Flow.run") -> None:
        unexpected = sorted(set(parameters) - names)
        if unexpected:
            raise ValueError(f"{where} received the following unexpected parameters: {', '.join(unexpected)}")
        missing = sorted(p.name for p in self.parameters() if p.required and p.name not in parameters)
        if missing:
            raise ValueError(f"{where} did not receive the following required parameters: {', '.join(missing)}")

    def _run_to_end(
        self, parameters: dict[str, Any], runner_cls: type, executor: Executor | str | None, kwargs: dict[str, Any]
    ) -> State:
        """One flow run, re-run in-process while tasks wait for a retry (see ``run``)."""
        from runwright.engine.executors import resolve_executor
        from runwright.engine.state import Pending, Retrying, utcnow

        executor = resolve_executor(executor)  # an unknown name is the caller's error, raised here
        task_states = dict(kwargs.pop("task_states", None) or {})
        while True:
            runner = runner_cls(flow=self)
            state = runner.run(
                parameters=parameters, return_tasks=self.tasks, executor=executor, task_states=task_states, **kwargs
            )
            result = state._result.value
            if state.is_finished() or not isinstance(result, dict):
                break
            waiting = [s for s in result.values() if isinstance(s, Retrying)]
            if not waiting:
                break
            delay = (min(s.start_time for s in waiting) - utcnow()).total_seconds()
            if delay > 0:
                time.sleep(delay)
            task_states = result
            kwargs.pop("state", None)
            carry = runner.rerun_context() if hasattr(runner, "rerun_context") else {}
            if carry:  # keep recording to the same backend run
                kwargs["context"] = {**(kwargs.get("context") or {}), **carry}
        states = state._result.value
        if isinstance(states, dict):
            for task in self.tasks:
                if task not in states:
                    states[task] = Pending("Task not run.")
        return state

    def _run_on_schedule(
        self,
        schedule: BaseSchedule,
        parameters: dict[str, Any],
        names: set[str],
        runner_cls: type,
        executor: Executor | str | None,
        kwargs: dict[str, Any],
    ) -> State:
        """Run once per start of ``schedule``; see ``run``.

        A start that passes while the previous run is still going is skipped: runs never
        overlap, and a slow run does not make the next ones pile up.
        """
        from runwright.engine.executors import resolve_executor
        from runwright.engine.state import Pending, Scheduled, as_utc, utcnow

        self.validate()
        executor = resolve_executor(executor)
        events = schedule.events(1)
        if not events:
            raise ValueError(
                f"Flow {self.name!r} has no more scheduled runs: its schedule ended. "
                "Run it once with flow.run(run_on_schedule=False), or give it a schedule with future starts."
            )
        task_states = dict(kwargs.pop("task_states", None) or {})
        first_state = kwargs.pop("state", None)
        base_context = dict(kwargs.pop("context", None) or {})
        from runwright.run_logging import configure_logging

        logger = configure_logging().getChild("flow")  # configured before the first wait is logged
        state: State | None = None
        while events:
            event = events[0]
            start_time = as_utc(event.start_time)
            run_parameters = {**event.parameter_defaults, **parameters}
            self._check_parameters(run_parameters, names, where=f"The run of flow {self.name!r} at {start_time.isoformat()}")
            logger.info("Flow %r: next scheduled start at %s", self.name, start_time.isoformat())
            if not _sleep_until(start_time):
                logger.info("Flow %r: interrupted while waiting for its next start; stopping.", self.name)
                if state is None:
                    state = Scheduled("Interrupted before the first scheduled start.", result={}, start_time=start_time)
                    for task in self.tasks:
                        state._result.value.setdefault(task, Pending("Task not run."))
                return state
            run_state = first_state if first_state is not None else Scheduled(start_time=start_time)
            first_state = None
            context = {**base_context, "scheduled_start_time": start_time}
            state = self._run_to_end(
                run_parameters,
                runner_cls,
                executor,
                {**kwargs, "state": run_state, "task_states": task_states, "context": context},
            )
            result = state._result.value
            task_states = _carried_states(result) if isinstance(result, dict) else {}
            events = schedule.events(1, after=max(start_time, utcnow()))
        assert state is not None
        return state


def _sleep_until(when: Any) -> bool:
    """Sleep until the UTC datetime ``when``; False when Ctrl-C interrupted the wait."""
    from runwright.engine.state import utcnow

    try:
        while True:
            delay = (when - utcnow()).total_seconds()
            if delay <= 0:
                return True
            time.sleep(delay)
    except KeyboardInterrupt:
        return False


def _carried_states(task_states: dict[Task, State]) -> dict[Task, State]:
    """What the next scheduled run starts from: Cached task states, and Mapped parents with
    their Cached children (the others run again)."""
    from runwright.engine.state import Cached, Mapped

    carried: dict[Task, State] = {}
    for task, task_state in task_states.items():
        if isinstance(task_state, Cached):
            carried[task] = task_state
        elif isinstance(task_state, Mapped) and any(isinstance(child, Cached) for child in task_state.map_states):
            carried[task] = Mapped(
                "Cached children carried from the previous scheduled run.",
                map_states=[child if isinstance(child, Cached) else None for child in task_state.map_states],
            )
    return carried
