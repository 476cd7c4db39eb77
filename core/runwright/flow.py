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


#: a task with more edges in than this has its keyed edges indexed (``Flow._keys_to``)
_SCAN_MAX = 8
#: the methods set_dependencies bypasses unless a subclass overrides one
_BUILDING_METHODS = ("add_edge", "add_task", "bind_constant", "_insert_edge")

_NO_EDGES: tuple[Edge, ...] = ()

#: an Edge, a _Literals without their __init__ (``Flow._add_called`` checks the key once)
_new_edge = _new_literals = object.__new__
#: values that are literals whatever they hold (``is_literal`` without the call)
_SCALARS = frozenset({int, float, str, bool, bytes, type(None)})
#: argument names known to be valid edge keys (identifiers, not keywords); bounded
_CHECKED_KEYS: set[str] = set()
_CHECKED_MAX = 4096


def _check_key(key: Any, value: Any, mapped: bool) -> None:
    """Raise as ``bind_constant`` (a literal ``value``) or ``Edge`` (a task) does for an
    invalid argument name; remember a valid one."""
    if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
        if isinstance(value, unmapped):
            value, mapped = value.task, False
        if isinstance(value, Task) or mapped or not is_literal(value):
            raise ValueError(f"Edge key {key!r} must be a valid Python identifier that is not a keyword")
        raise ValueError(f"Argument name {key!r} must be a valid Python identifier that is not a keyword")
    if len(_CHECKED_KEYS) >= _CHECKED_MAX:
        _CHECKED_KEYS.clear()
    _CHECKED_KEYS.add(key)


def _listed(edges: Edge | list[Edge] | None) -> tuple[Edge, ...] | list[Edge]:
    """A task's entry of ``Flow._edges_to`` or ``_edges_from`` as a sequence of edges."""
    if edges is None:
        return _NO_EDGES
    if isinstance(edges, list):
        return edges
    return (edges,)


def _slug_or_empty(task: Task) -> str:
    return task.slug or ""


_EMPTY: Any = object()


class _Literals(collections.abc.MutableMapping):  # type: ignore[type-arg]
    """The literal arguments bound to one task (an entry of ``Flow.constants``): a mapping
    that compares, prints and changes like a dict. While it holds one argument (the
    common case) it is 56 bytes where a dict is 184; it keeps a dict once it has more."""

    __slots__ = ("_key", "_more", "_value")

    def __init__(self, key: str, value: Any) -> None:
        self._key = key
        self._value = value
        self._more: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:
        more = self._more
        if more is not None:
            return more[key]
        if key == self._key and self._key is not _EMPTY:
            return self._value
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        more = self._more
        if more is not None:
            more[key] = value
        elif self._key is _EMPTY or key == self._key:
            self._key, self._value = key, value
        else:
            self._more = {self._key: self._value, key: value}
            self._key = self._value = _EMPTY

    def __delitem__(self, key: str) -> None:
        more = self._more
        if more is not None:
            del more[key]
        elif self._key is not _EMPTY and key == self._key:
            self._key = self._value = _EMPTY
        else:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        more = self._more
        if more is not None:
            return iter(more)
        return iter(() if self._key is _EMPTY else (self._key,))

    def __len__(self) -> int:
        more = self._more
        if more is not None:
            return len(more)
        return 0 if self._key is _EMPTY else 1

    def __contains__(self, key: object) -> bool:
        more = self._more
        if more is not None:
            return key in more
        return self._key is not _EMPTY and key == self._key

    # iterated once per task run: no view objects
    def items(self) -> Any:
        more = self._more
        if more is not None:
            return more.items()
        return () if self._key is _EMPTY else ((self._key, self._value),)

    def values(self) -> Any:
        more = self._more
        if more is not None:
            return more.values()
        return () if self._key is _EMPTY else (self._value,)

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def __reduce__(self) -> Any:  # pickled as the dict it stands for, rebuilt compact
        return (_literals_from, (dict(self.items()),))


def _literals_from(items: dict[str, Any]) -> _Literals:
    bound = _Literals(_EMPTY, None)
    for key, value in items.items():
        bound[key] = value
    return bound


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
        # per task, the edges into and out of it: the Edge itself while there is one (most
        # tasks of a wide flow: no list to allocate), a list once there are more
        self._edges_to: dict[Task, Edge | list[Edge]] = {}
        self._edges_from: dict[Task, Edge | list[Edge]] = {}
        #: for a task with more than _SCAN_MAX edges in: its keyed edges by argument (a task
        #: with fewer is looked up in its list; most have no entry here)
        self._keys_to: dict[Task, dict[str, Edge]] = {}
        #: the edges that pass no result (``upstream_tasks=``, ``a | b``): what keeps them unique
        #: (a keyed edge is unique by its task and argument)
        self._unkeyed: set[Edge] = set()
        #: ``edges``, made when it is read (None after the graph changed)
        self._edge_set: set[Edge] | None = None
        #: literal arguments bound to a task: ``{task: {argument: value}}`` (no task, no edge,
        #: no task run: the task runner passes them with the upstream results); each task's
        #: is a mapping like a dict (compact while it holds one argument)
        self.constants: dict[Task, collections.abc.MutableMapping[str, Any]] = {}
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # set_dependencies adds edges and literals without the public methods' extra checks
        # only while a subclass overrides none of them
        cls._plain_building = all(getattr(cls, name) is getattr(Flow, name) for name in _BUILDING_METHODS)
        cls._direct_calls = cls._plain_building and cls.set_dependencies is Flow.set_dependencies

    #: no building method overridden (see __init_subclass__)
    _plain_building = True
    #: nor set_dependencies: a task called in the flow is added by ``_add_called``
    _direct_calls = True

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
        state["_edge_set"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slug_counters = collections.defaultdict(int, self._slug_counters)
        if "_unkeyed" not in state:  # pickled by an earlier runwright: index its edges anew
            old_edges = self.__dict__.pop("edges", None) or ()
            self._edges_to, self._edges_from, self._keys_to = {}, {}, {}
            self._unkeyed, self._edge_set = set(), None
            for edge in old_edges:
                self._insert_edge(edge)

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
        edge = Edge(upstream_task, downstream_task, key, mapped)
        if not self._insert_edge(edge):  # the same edge again: nothing changes
            return edge
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

    def _keyed_edge_to(self, task: Task, key: str) -> Edge | None:
        """The edge into ``task`` that passes argument ``key``, if any."""
        into = self._edges_to.get(task)
        if into is None:
            return None
        if not isinstance(into, list):
            return into if into.key == key else None
        keyed = self._keys_to.get(task)
        if keyed is not None:
            return keyed.get(key)
        for edge in into:
            if edge.key == key:
                return edge
        return None

    def _insert_edge(self, edge: Edge) -> bool:
        """Add ``edge`` (and its tasks) to the graph; False when the flow has it already.
        Raises when its argument is bound already (to another task, or to a value)."""
        upstream_task = edge.upstream_task
        downstream_task = edge.downstream_task
        key = edge.key
        tasks = self.tasks
        if upstream_task not in tasks:
            self.add_task(upstream_task)
        if downstream_task not in tasks:
            self.add_task(downstream_task)
        if key is not None:
            existing = self._keyed_edge_to(downstream_task, key)
            if existing is not None:
                if existing.upstream_task is upstream_task:
                    return False
                raise ValueError(f'Argument "{key}" of task {downstream_task.name!r} is already bound to a task')
            constants = self.constants.get(downstream_task)
            if constants and key in constants:
                raise ValueError(f'Argument "{key}" of task {downstream_task.name!r} is already bound to a value')
        else:
            unkeyed = self._unkeyed
            if edge in unkeyed:
                return False
            unkeyed.add(edge)
        edges_to = self._edges_to
        into = edges_to.get(downstream_task)
        if into is None:
            edges_to[downstream_task] = edge
        elif isinstance(into, list):
            into.append(edge)
            if key is not None:
                keyed = self._keys_to.get(downstream_task)
                if keyed is not None:
                    keyed[key] = edge
                elif len(into) > _SCAN_MAX:
                    self._keys_to[downstream_task] = {e.key: e for e in into if e.key is not None}
        else:
            edges_to[downstream_task] = [into, edge]
        edges_from = self._edges_from
        out = edges_from.get(upstream_task)
        if out is None:
            edges_from[upstream_task] = edge
        elif isinstance(out, list):
            out.append(edge)
        else:
            edges_from[upstream_task] = [out, edge]
        self._sorted = None
        self._edge_set = None
        return True

    def bind_constant(self, task: Task, key: str, value: Any, validate: bool | None = None) -> None:
        """Bind the literal ``value`` to argument ``key`` of ``task`` (what calling a task
        with a non-task argument does): it is passed to every run of the task, mapped
        children included, without a task or an edge of its own."""
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise ValueError(f"Argument name {key!r} must be a valid Python identifier that is not a keyword")
        self.add_task(task)
        bound = self.constants.get(task)
        if bound is not None and key in bound:
            raise ValueError(f'Argument "{key}" of task {task.name!r} is already bound to a value')
        if self._keyed_edge_to(task, key) is not None:
            raise ValueError(f'Argument "{key}" of task {task.name!r} is already bound to a task')
        if validate:
            import inspect

            params = inspect.signature(task.run).parameters
            takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            if key not in params and not takes_kwargs:
                raise ValueError(f"Task {task.name!r} has no argument named {key!r}")
        if bound is None:
            self.constants[task] = _Literals(key, value)
        else:
            bound[key] = value

    def _remove_edge(self, edge: Edge) -> None:
        for index, task in ((self._edges_to, edge.downstream_task), (self._edges_from, edge.upstream_task)):
            listed = index.get(task)
            if listed is None:
                continue
            if isinstance(listed, list):
                for i, other in enumerate(listed):
                    if other == edge:
                        del listed[i]
                        break
                if len(listed) > 1:
                    continue
                if listed:
                    index[task] = listed[0]
                else:
                    del index[task]
            elif listed == edge:
                del index[task]
            else:
                continue
            if index is self._edges_to:  # its edges in are no list any more: no index either
                self._keys_to.pop(task, None)
        keyed = self._keys_to.get(edge.downstream_task)
        if keyed is not None and edge.key is not None and keyed.get(edge.key) == edge:
            del keyed[edge.key]
        if edge.key is None:
            self._unkeyed.discard(edge)
        self._sorted = None
        self._edge_set = None

    def _reaches(self, start: Task, target: Task) -> bool:
        if start is target:
            return True
        seen = {start}
        stack = [start]
        edges_from = self._edges_from
        while stack:
            for edge in _listed(edges_from.get(stack.pop())):
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
        if (
            upstream_tasks is None
            and downstream_tasks is None
            and keyword_tasks
            and self._plain_building
            and not validate
            and task not in self.tasks
            and not isinstance(task, _parameter_class())
        ):  # a task new to the flow with only arguments (what calling a task gives)
            self._add_called(task, keyword_tasks, mapped)
            return
        if task not in self.tasks:
            self.add_task(task)
        for upstream in upstream_tasks or ():
            is_mapped = mapped and not isinstance(upstream, unmapped)
            if isinstance(upstream, unmapped):
                upstream = upstream.task
            self.add_edge(as_task(upstream, flow=self), task, mapped=is_mapped, validate=validate)
        for downstream in downstream_tasks or ():
            self.add_edge(task, as_task(downstream, flow=self), validate=validate)
        if not keyword_tasks:
            return
        # what add_edge and bind_constant do, without their calls and the checks that hold
        # already here (the task is in the flow; a Parameter takes no argument)
        plain = self._plain_building and not validate
        plain_edges = plain and not isinstance(task, _parameter_class())
        for key, value in keyword_tasks.items():
            if isinstance(value, unmapped):
                value = value.task
                is_mapped = False
            else:
                is_mapped = mapped
            if not isinstance(value, Task):
                if not is_mapped and is_literal(value):
                    if plain and key.__class__ is str and key.isidentifier() and not keyword.iskeyword(key):
                        bound = self.constants.get(task)
                        if bound is not None and key in bound:
                            raise ValueError(f'Argument "{key}" of task {task.name!r} is already bound to a value')
                        if self._keyed_edge_to(task, key) is not None:
                            raise ValueError(f'Argument "{key}" of task {task.name!r} is already bound to a task')
                        if bound is None:
                            self.constants[task] = _Literals(key, value)
                        else:
                            bound[key] = value
                    else:
                        self.bind_constant(task, key, value, validate=validate)
                    continue
                value = as_task(value, flow=self)
            if plain_edges:
                self._insert_edge(Edge(value, task, key, is_mapped))
            else:
                self.add_edge(value, task, key=key, mapped=is_mapped, validate=validate)

    def _add_called(self, task: Task, callargs: dict[str, Any], mapped: bool, names_valid: bool = False) -> None:
        """What ``set_dependencies(task, keyword_tasks=callargs, mapped=mapped)`` does, for
        a task called in the flow (``Task.__call__``, ``Task.map``; ``_direct_calls``) or
        given only arguments: ``add_task``, ``_insert_edge`` and ``bind_constant``, inlined.
        A task new to the flow has no argument bound yet, and the keys of ``callargs`` are
        unique: their duplicate checks are left out (the others are made). ``names_valid``:
        the caller made the keys (``as_task``'s ``arg_0, arg_1, ...``), they are not checked."""
        tasks = self.tasks
        if task in tasks or isinstance(task, _parameter_class()) or not self._plain_building:
            self.set_dependencies(task, None, None, callargs, mapped, None)
            return
        # add_task
        slug = task.slug
        slugs = self._slugs
        if slug is None:
            name = task.name
            counter = self._slug_counters[name]
            slug = f"{name}-{counter + 1}"
            while slug in slugs:
                counter += 1
                slug = f"{name}-{counter + 1}"
            self._slug_counters[name] = counter + 1
            task.slug = slug
        elif slug in slugs:
            raise ValueError(f'A task with the slug "{slug}" already exists in this flow.')
        slugs[slug] = task
        tasks.add(task)
        self._sorted = None
        if not callargs:
            return
        edges_to = self._edges_to
        edges_from = self._edges_from
        bound: Any = None
        into: Any = None  # the task's edges in: None, an Edge, then a list
        for key, value in callargs.items():
            if key not in _CHECKED_KEYS and not names_valid:
                _check_key(key, value, mapped)
            if isinstance(value, unmapped):
                value = value.task
                is_mapped = False
            else:
                is_mapped = mapped
            if not isinstance(value, Task):
                if not is_mapped and (value.__class__ in _SCALARS or is_literal(value)):  # bind_constant
                    if bound is None:
                        bound = self.constants[task] = _new_literals(_Literals)
                        bound._key, bound._value, bound._more = key, value, None
                    else:
                        bound[key] = value
                    continue
                value = as_task(value, flow=self)
            # _insert_edge
            edge = _new_edge(Edge)
            edge.upstream_task = value
            edge.downstream_task = task
            edge.key = key
            edge.mapped = is_mapped
            if value not in tasks:
                self.add_task(value)
            if into is None:
                into = edges_to[task] = edge
            elif into.__class__ is list:
                into.append(edge)
                keyed = self._keys_to.get(task)
                if keyed is not None:
                    keyed[key] = edge
                elif len(into) > _SCAN_MAX:
                    self._keys_to[task] = {e.key: e for e in into if e.key is not None}
            else:
                into = edges_to[task] = [into, edge]
            out: Any = edges_from.get(value)
            if out is None:
                edges_from[value] = edge
            elif out.__class__ is list:
                out.append(edge)
            else:
                edges_from[value] = [out, edge]
        self._edge_set = None

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """The tasks whose states decide the flow's final state (default: terminal tasks)."""
        tasks = set(tasks)
        unknown = tasks - self.tasks
        if unknown:
            raise ValueError(f"Reference tasks must be part of the flow; not in it: {sorted(t.name for t in unknown)}")
        self._reference_tasks = tasks

    # -- queries ---------------------------------------------------------------------------
    @property
    def edges(self) -> set[Edge]:
        """Every edge of the flow (a set, made when read after the graph changed; add edges
        with ``add_edge`` or by calling tasks)."""
        edge_set = self._edge_set
        if edge_set is None:
            edge_set = self._edge_set = set(self._iter_edges())
        return edge_set

    def _iter_edges(self) -> Iterator[Edge]:
        for into in self._edges_to.values():
            if isinstance(into, list):
                yield from into
            else:
                yield into

    def edges_to(self, task: Task) -> set[Edge]:
        return set(_listed(self._edges_to.get(task)))

    def edges_from(self, task: Task) -> set[Edge]:
        return set(_listed(self._edges_from.get(task)))

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream_task for e in _listed(self._edges_to.get(task))}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream_task for e in _listed(self._edges_from.get(task))}

    def root_tasks(self) -> set[Task]:
        edges_to = self._edges_to
        return {t for t in self.tasks if t not in edges_to}

    def terminal_tasks(self) -> set[Task]:
        edges_from = self._edges_from
        return {t for t in self.tasks if t not in edges_from}

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
        # Kahn's algorithm, breadth first; ``order`` is its own queue (a task is appended
        # when its last edge in is passed, and visited when the loop reaches it). The
        # indexes' entries (an Edge, or a list of them) are read inline: this runs per task.
        edges_to = self._edges_to
        indegree: dict[Task, int] = {}
        roots: list[Task] = []
        for t in self.tasks:
            into = edges_to.get(t)
            if into is None:
                roots.append(t)
                indegree[t] = 0
            else:
                indegree[t] = len(into) if into.__class__ is list else 1
        # a stable order: by slug among ready tasks, so runs are reproducible
        order: list[Task] = sorted(roots, key=_slug_or_empty)
        edges_from = self._edges_from
        for current in order:  # grows while it is walked
            out: Any = edges_from.get(current)
            if out is None:
                continue
            if out.__class__ is not list:
                child = out.downstream_task
                left = indegree[child] - 1
                indegree[child] = left
                if left == 0:
                    order.append(child)
                continue
            for edge in out:
                child = edge.downstream_task
                left = indegree[child] - 1
                indegree[child] = left
                if left == 0:
                    order.append(child)
        if len(order) != len(self.tasks):
            stuck = sorted(t.name for t, d in indegree.items() if d > 0)[:5]
            raise FlowValidationError(f"Cycle found; flows must be acyclic! Tasks on or after the cycle include: {stuck}")
        return tuple(order)

    def validate(self) -> None:
        """Check the whole graph: edges between known tasks, reference tasks, no cycle."""
        tasks = self.tasks
        into: Any
        for into in self._edges_to.values():  # _iter_edges, inlined (flow.run validates)
            for edge in into if into.__class__ is list else (into,):
                if edge.upstream_task not in tasks or edge.downstream_task not in tasks:
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
                    for e in self._iter_edges()
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
