"""Which task run a cache entry belongs to, the same in every process.

A task is identified by its flow's name, its slug in that flow and, for a mapped child, its
map index. Slugs are assigned deterministically when tasks are added to a flow (``name-1``,
``name-2``, ... in the order they are added; a Parameter's slug is its name), so the same flow
file builds the same identities in every process, and tasks of two different flows never
share a cache. A task run outside a flow uses flow name ``""`` and its slug (or name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from runwright.context import context

if TYPE_CHECKING:
    from runwright.task import Task


class TaskIdentity(NamedTuple):
    """``(flow_name, task_slug, map_index)``; ``map_index`` is None for an unmapped task.

    A named tuple (cheap to build: one is made per cache lookup), compared field by field."""

    flow_name: str
    task_slug: str
    map_index: int | None = None

    @classmethod
    def of_current_run(cls, task: Task) -> TaskIdentity:
        """The identity of the task run in progress (read from the run context)."""
        get = context.get
        return cls(get("flow_name") or "", get("task_slug") or task.slug or task.name, get("map_index"))

    def __str__(self) -> str:
        child = "" if self.map_index is None else f"[{self.map_index}]"
        return f"{self.flow_name}/{self.task_slug}{child}"
