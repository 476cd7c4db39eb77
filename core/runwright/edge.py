"""Edges connect an upstream task to a downstream one, optionally passing its result."""

from __future__ import annotations

import keyword
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runwright.task import Task


class Edge:
    """``upstream -> downstream``; ``key`` names the downstream argument that receives the
    upstream result (None: a pure state dependency); ``mapped`` maps over the result."""

    __slots__ = ("downstream_task", "key", "mapped", "upstream_task")

    def __init__(self, upstream_task: Task, downstream_task: Task, key: str | None = None, mapped: bool = False) -> None:
        if key is not None and (not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key)):
            raise ValueError(f"Edge key {key!r} must be a valid Python identifier that is not a keyword")
        self.upstream_task = upstream_task
        self.downstream_task = downstream_task
        self.key = key
        self.mapped = mapped

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Edge):
            return NotImplemented
        return (
            self.upstream_task is other.upstream_task
            and self.downstream_task is other.downstream_task
            and self.key == other.key
        )

    def __hash__(self) -> int:
        # computed when asked (an int kept per edge is 32 bytes; a flow's graph does not
        # hash its edges: Flow indexes them by task)
        return hash((id(self.upstream_task), id(self.downstream_task), self.key))

    def __getstate__(self) -> dict[str, object]:
        return {"u": self.upstream_task, "d": self.downstream_task, "k": self.key, "m": self.mapped}

    def __setstate__(self, data: dict[str, object]) -> None:
        self.__init__(data["u"], data["d"], data["k"], data["m"])  # type: ignore[misc,arg-type]

    def __repr__(self) -> str:
        key = f" (key={self.key})" if self.key else ""
        mapped = " mapped" if self.mapped else ""
        return f"<Edge{mapped}: {self.upstream_task.name} to {self.downstream_task.name}{key}>"
