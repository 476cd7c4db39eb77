"""Key-based cache policies: a policy turns what a task run depends on into a stable key.

A policy computes a cache key (a sha256 hex digest) from the task, its raw inputs and the
flow run's parameters. The key is stored with each cache entry; a cached entry is valid when
its key equals the key computed for the run about to start and it has not expired. Keys are
the same in every process (see :mod:`runwright_cache.hashing`), so a cache written by one
process is found by the next.

Combine policies with ``+``::

    from runwright_cache.policies import Inputs, Parameters, TaskSource

    @task(cache_for=timedelta(days=1), cache_validator=Inputs() + TaskSource())
    def expensive(x): ...

A policy is also a cache validator ``(state, inputs, parameters) -> bool``; used that way
(a Cached state handed to a run by hand) it compares the keys of the state's cached inputs and
parameters with the current ones, and cannot check :class:`TaskSource` (the task is not
known there). The cache store always checks the full key.

Write your own by subclassing :class:`CachePolicy` and implementing :meth:`key_parts`.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from runwright.engine.cache_validators import duration_only
from runwright_cache.cache_validators import _Unreadable, all_inputs, all_parameters, raw_values
from runwright_cache.hashing import stable_digest

if TYPE_CHECKING:
    from runwright.engine.state import Cached
    from runwright.task import Task

__all__ = ["CachePolicy", "CompoundPolicy", "Inputs", "Parameters", "TaskSource", "task_source_digest"]


class CachePolicy:
    """Base class: a policy contributes named parts to a task run's cache key."""

    def key_parts(self, task: Task | None, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, str]:
        """Digests of what this policy depends on, by a name unique to the policy.

        ``task`` is None when the policy is used as a plain validator; a part that needs the
        task then returns no entry.
        """
        raise NotImplementedError

    def policies(self) -> tuple[CachePolicy, ...]:
        """The simple policies this one is made of (itself, for a simple policy)."""
        return (self,)

    def compute_key(
        self, task: Task | None, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None
    ) -> str:
        """The cache key of a run of ``task`` with these raw inputs and parameters."""
        inputs = inputs or {}
        parameters = parameters or {}
        parts: dict[str, str] = {}
        for policy in self.policies():
            parts.update(policy.key_parts(task, inputs, parameters))
        text = "\n".join([f"{name}={parts[name]}" for name in sorted(parts)])
        return hashlib.sha256(text.encode()).hexdigest()

    def __add__(self, other: CachePolicy) -> CompoundPolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return CompoundPolicy(*self.policies(), *other.policies())

    def __call__(self, state: Cached, inputs: dict[str, Any] | None, parameters: dict[str, Any] | None) -> bool:
        """Use the policy as a cache validator (see the module docstring)."""
        if not duration_only(state, inputs, parameters):
            return False
        try:
            cached_inputs = raw_values(state.cached_inputs)
        except _Unreadable:
            return False
        before = self.compute_key(None, cached_inputs, state.cached_parameters)
        return before == self.compute_key(None, raw_values(inputs), parameters)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _select(values: Mapping[str, Any], include: tuple[str, ...] | None, exclude: tuple[str, ...]) -> dict[str, Any]:
    names = include if include is not None else values.keys()
    return {name: values[name] for name in names if name in values and name not in exclude}


def _names(names: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    return (names,) if isinstance(names, str) else tuple(sorted(names))


class _ValuesPolicy(CachePolicy):
    part = ""

    def __init__(self, include: Iterable[str] | str | None = None, exclude: Iterable[str] | str = ()) -> None:
        self.include = _names(include)
        self.exclude = _names(exclude) or ()
        #: the name of this policy's part of a key (its kind, ``include`` and ``exclude``)
        self.part_name = f"{self.part}{self.include!r}{self.exclude!r}"

    def _values(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        raise NotImplementedError


    def key_parts(self, task: Task | None, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, str]:
        values = self._values(inputs, parameters)
        if self.include is not None or self.exclude or type(values) is not dict:
            values = _select(values, self.include, self.exclude)
        return {self.part_name: stable_digest(values)}

    def __repr__(self) -> str:
        args = []
        if self.include is not None:
            args.append(f"include={list(self.include)!r}")
        if self.exclude:
            args.append(f"exclude={list(self.exclude)!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class Inputs(_ValuesPolicy):
    """The task's inputs (all of them, or only ``include``, minus ``exclude``)."""

    part = "inputs"

    def _values(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        return inputs


class Parameters(_ValuesPolicy):
    """The flow run's parameters (all of them, or only ``include``, minus ``exclude``)."""

    part = "parameters"

    def _values(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        return parameters


_source_digests: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_source_lock = threading.Lock()


def _code_of(task: Task) -> Any:
    """What defines the task's behaviour: the function of a ``@task``, else the Task class."""
    fn = vars(task).get("run")  # a FunctionTask keeps its function as the instance's ``run``
    if fn is None:
        return type(task)
    fn = inspect.unwrap(fn)
    return getattr(fn, "__func__", fn)


def _digest_of_code(obj: Any) -> str:
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()
    except (OSError, TypeError):
        pass
    code = getattr(obj, "__code__", None)
    if code is None and isinstance(obj, type):
        code = getattr(getattr(obj, "run", None), "__code__", None)
    if code is not None:
        return hashlib.sha256(marshal.dumps(code)).hexdigest()
    return stable_digest(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}")


def task_source_digest(task: Task) -> str:
    """The sha256 of the source of the task's function (``@task``) or class (a Task subclass);
    of its byte code when the source is not available. Computed once per function per process
    (every copy of a task made by calling it in a flow shares the function)."""
    owner = vars(task).get("run") or type(task)
    try:
        return _source_digests[owner]
    except (KeyError, TypeError):
        pass
    digest = _digest_of_code(_code_of(task))
    try:
        with _source_lock:
            _source_digests[owner] = digest
    except TypeError:  # not weak-referenceable: recompute next time
        pass
    return digest


class TaskSource(CachePolicy):
    """The task's source code: editing the task's function (or class) invalidates its cache."""

    def key_parts(self, task: Task | None, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, str]:
        return {} if task is None else {"task_source": task_source_digest(task)}


class CompoundPolicy(CachePolicy):
    """Several policies at once (what ``+`` builds); the order does not matter."""

    def __init__(self, *policies: CachePolicy) -> None:
        unique: dict[str, CachePolicy] = {}
        for policy in policies:
            for simple in policy.policies():
                unique.setdefault(repr(simple), simple)
        self._policies = tuple(unique[name] for name in sorted(unique))

    def policies(self) -> tuple[CachePolicy, ...]:
        return self._policies

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self._policies)


#: Policies registered by name (usable as ``cache_validator="inputs"`` and in configuration).
POLICIES: dict[str, CachePolicy] = {
    "inputs": Inputs(),
    "parameters": Parameters(),
    "task_source": TaskSource(),
    "inputs_and_task_source": Inputs() + TaskSource(),
}


def _key_with(policy: CachePolicy) -> Any:
    def compute_key(task: Task | None, inputs: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None) -> str:
        return policy.compute_key(None, inputs, parameters)

    return compute_key


# The seed's ``all_inputs`` and ``all_parameters`` compare the same values the Inputs() and
# Parameters() policies digest: they are keyed validators too (see
# runwright.engine.cache_validators.cache_key), so a backend storing keys can validate them
# without reading the cached inputs back.
all_inputs.compute_key = _key_with(Inputs())  # type: ignore[attr-defined]
all_parameters.compute_key = _key_with(Parameters())  # type: ignore[attr-defined]
