"""Chunking: how a mapped parent's planned children become Dask tasks.

A mapped parent runs on a worker and returns a *plan* (its Mapped state whose children are
:class:`~runwright_dask.worker.ChildCall`). The client cuts the children into chunks of
consecutive calls, each one Dask task: ``map_chunk_size`` children, or (0, the default) about
:data:`CHUNKS_PER_THREAD` chunks per worker thread, so that a thousand trivial children cost
a few Dask tasks and a worker that dies takes only its own chunk with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from runwright.engine.state import Mapped, State
from runwright_dask.submissions import Chunk, TaskRun

if TYPE_CHECKING:
    from runwright_dask.worker import ChildCall

CHUNKS_PER_THREAD = 4


def chunk_size(configured: int, threads: int, count: int) -> int:
    """Children per chunk: ``configured`` when positive, else about four chunks per thread."""
    if configured > 0:
        return configured
    return max(1, math.ceil(count / (max(threads, 1) * CHUNKS_PER_THREAD)))


def cut_into_chunks(run: TaskRun, plan: Mapped, size: int) -> list[Chunk]:
    """The chunks of ``plan``'s children; ``plan`` keeps its state, without the children."""
    calls: list[ChildCall] = list(plan.map_states)
    plan.map_states = []
    return [Chunk(run, calls[i : i + size]) for i in range(0, len(calls), size)]


def replace_chunk(run: TaskRun, chunk: Chunk, replacements: list[Chunk]) -> None:
    """Put ``replacements`` where ``chunk`` was among ``run``'s chunks (the caller holds
    the executor's lock)."""
    position = run.chunks.index(chunk)
    run.chunks[position : position + 1] = replacements
    run.open_chunks += len(replacements) - 1


def children_states(run: TaskRun, kept: Callable[[Chunk], list[State]]) -> list[State]:
    """A finished mapped parent's children's states, in order, from its chunks' outcomes
    (recorded on the client, or ``kept(chunk)``: fetched as the chunk finished)."""
    children: list[State] = []
    for chunk in run.chunks:
        children.extend(chunk.states if chunk.states is not None else kept(chunk))
    return children
