"""Parameters: the flow run's inputs, given to ``flow.run(...)`` or on the command line."""

from __future__ import annotations

from typing import Any

from runwright.context import context
from runwright.engine import signals
from runwright.engine.result_handlers import JSONResultHandler
from runwright.task import Task


class Parameter(Task):
    """A task that returns the run's value for ``name`` (or ``default``).

    A Parameter is required unless it has a non-None default; its slug is its name, it is
    checkpointed with a JSON handler, and nothing may be upstream of it.
    """

    def __init__(self, name: str, default: Any = None, required: bool = True, tags: Any = None) -> None:
        if default is not None:
            required = False
        self.required = required
        self.default = default
        super().__init__(name=name, slug=name, tags=tags, checkpoint=True, result_handler=JSONResultHandler())

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def copy(self, **overrides: Any) -> Task:
        raise TypeError(f"Parameter {self.name!r} cannot be copied; use it directly as an argument")

    def __call__(self, *args: Any, **kwargs: Any) -> Task:  # type: ignore[override]
        raise TypeError(f"Parameter {self.name!r} cannot be called; pass it to a task as an argument")

    def set_upstream(self, task: Any, flow: Any = None, key: str | None = None, mapped: bool = False) -> None:
        raise ValueError("Parameters must be root tasks: nothing can be upstream of a Parameter")

    def run(self) -> Any:
        parameters = context.get("parameters") or {}
        if self.required and self.name not in parameters:
            raise signals.FAIL(f'Parameter "{self.name}" was required but not provided.')
        return parameters.get(self.name, self.default)
