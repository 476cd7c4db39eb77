"""What runs on a Dask worker: the task-run trampoline and planned mapped children.

The client (``executor.py``) never hands a worker a runwright State that holds futures:
distributed resolves futures only inside plain tuples, lists and dicts. An upstream task run
named in a submission's ``upstream_states`` therefore travels as an *input*,
``("value", state_or_future)`` or, for a mapped parent,
``("mapped", (parent_state_without_children, parts))`` where each part is a future of a
chunk of children (resolving to a list of states) or a list of states. Its entry in
``upstream_states`` holds a :class:`Slot` with the input's position. Nothing else in the
arguments is looked into.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from runwright.engine.executors import LostRun
from runwright.engine.state import Mapped, State
from runwright_dask.recompute import refuse_if_recomputed


class Slot:
    """Marks where the input number ``index`` goes back into a task run's ``upstream_states``."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[type[Slot], tuple[int]]:
        return (Slot, (self.index,))


class ChildCall:
    """A mapped child's run, planned by its parent on a worker and submitted by the client.

    The parent's ``executor.map(run_child, states, indices, upstreams)`` returns these instead
    of running anything, so no worker ever blocks waiting for other tasks: the client submits
    the children (in chunks) once the parent's Mapped state comes back.
    """

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., State], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[type[ChildCall], tuple[Any, ...]]:
        return (ChildCall, (self.fn, self.args))

    @property
    def index(self) -> int | None:
        """The child's map index (the second argument of the task runner's ``run_child``)."""
        return self.args[1] if len(self.args) > 1 and isinstance(self.args[1], int) else None

    def with_state(self, state: State) -> ChildCall:
        """The same call starting from ``state`` (a Retrying state after a lost worker)."""
        return ChildCall(self.fn, (state, *self.args[1:]))

    def run(self) -> State:
        return self.fn(*self.args)

    def record_lost(self, lost: LostRun) -> State:
        """In the client: record through the task runner that this child's work was lost."""
        return self.fn(*self.args, lost=lost)


def is_plan(state: Any) -> bool:
    """True for a Mapped state whose children are planned calls not yet run."""
    return isinstance(state, Mapped) and bool(state.map_states) and isinstance(state.map_states[0], ChildCall)


def run_child_calls(calls: list[ChildCall]) -> list[State]:
    """Run a chunk of mapped children one after the other (one Dask task per chunk)."""
    refuse_if_recomputed()
    return [call.run() for call in calls]


def materialize(kind: str, payload: Any) -> Any:
    """The value an input stands for, once distributed has resolved the futures in it."""
    if kind == "mapped":
        parent, parts = payload
        state = copy.copy(parent)
        state.map_states = [child for part in parts for child in part]
        return state
    return payload


def run_task_run(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    upstream_states: dict[Any, Any] | None,
    *inputs: tuple[str, Any],
) -> Any:
    """The function every top-level task run is submitted as: put the (resolved) upstream
    inputs back into ``upstream_states``, then call ``fn`` (normally ``FlowRunner.run_task``).
    A task run that finished before and whose result was lost is not run again."""
    refuse_if_recomputed()
    if upstream_states is None:
        return fn(*args, **kwargs)
    if inputs:
        values = [materialize(kind, payload) for kind, payload in inputs]
        upstream_states = {
            key: values[value.index] if isinstance(value, Slot) else value for key, value in upstream_states.items()
        }
    return fn(*args, upstream_states=upstream_states, **kwargs)


def identity(value: Any) -> Any:
    """The Dask task that holds the flow runner on the cluster (sent once per session)."""
    return value


def call_method(owner: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``owner.name(...)``: a bound method whose owner travelled once, as a future."""
    return getattr(owner, name)(*args, **kwargs)
