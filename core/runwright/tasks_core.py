"""Tasks runwright creates for you: constants and collections of task results."""

from __future__ import annotations

from typing import Any

from runwright.task import Task


class Constant(Task):
    """Returns a fixed value (a non-task argument passed to a task)."""

    def __init__(self, value: Any, **kwargs: Any) -> None:
        self.value = value
        kwargs.setdefault("name", _constant_name(value))
        super().__init__(**kwargs)

    def run(self) -> Any:
        return self.value


def _constant_name(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class List(Task):
    """Collects its keyword inputs ``arg_0, arg_1, ...`` into a list."""

    def run(self, **task_results: Any) -> list[Any]:  # type: ignore[override]
        return [task_results[f"arg_{i}"] for i in range(len(task_results))]


class Tuple(List):
    def run(self, **task_results: Any) -> tuple[Any, ...]:  # type: ignore[override]
        return tuple(super().run(**task_results))


class Set(List):
    def run(self, **task_results: Any) -> set[Any]:  # type: ignore[override]
        return set(super().run(**task_results))


class Dict(Task):
    """Builds a dict from inputs ``key_i`` / ``value_i``."""

    def run(self, **task_results: Any) -> dict[Any, Any]:  # type: ignore[override]
        count = len(task_results) // 2
        return {task_results[f"key_{i}"]: task_results[f"value_{i}"] for i in range(count)}


def is_literal(value: Any) -> bool:
    """True when ``value`` holds no task: :func:`as_task` would make it a :class:`Constant`.

    A literal argument of a task is bound to the task in its flow (``Flow.constants``)
    instead: no task, no edge, no task run."""
    if isinstance(value, Task):
        return False
    if isinstance(value, (list, tuple, set)):
        return not any(isinstance(v, Task) for v in value)
    if isinstance(value, dict):
        return not any(isinstance(v, Task) or isinstance(k, Task) for k, v in value.items())
    return True


def as_task(value: Any, flow: Any = None) -> Task:
    """A task for ``value``: itself, a collection task over task items, or a Constant."""
    if isinstance(value, Task):
        return value
    if isinstance(value, (list, tuple, set)) and any(isinstance(v, Task) for v in value):
        cls = {list: List, tuple: Tuple, set: Set}.get(type(value), List)
        items = cls()
        callargs = {f"arg_{i}": v for i, v in enumerate(value)}
        if flow is not None and flow._direct_calls:
            # what items.bind(**callargs, flow=flow) does (List's run takes **kwargs: its
            # arguments are callargs as they are), without copying them three times and
            # checking names made valid here (a wide reducer's list: 100,000 of them)
            flow._add_called(items, callargs, False, True)
        else:
            items.bind(**callargs, flow=flow)
        return items
    if isinstance(value, dict) and any(isinstance(v, Task) or isinstance(k, Task) for k, v in value.items()):
        collection = Dict()
        kwargs: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            kwargs[f"key_{i}"] = k
            kwargs[f"value_{i}"] = v
        collection.bind(**kwargs, flow=flow)
        return collection
    return Constant(value)
