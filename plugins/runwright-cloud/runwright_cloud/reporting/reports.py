"""The per-run bookkeeping of reporting: plain data, created by the reporters.

The flow run's report is kept by the :class:`~runwright_cloud.reporting.flow_runs.FlowRunReporter`
per flow runner; a task run's is in the task run's context (key ``cloud_task_run``), so it
reaches thread and Dask workers with the context and survives in-process retries. A report
that travels to another process arrives *detached* (without the client and writer of the
process that made it): the reporter of the receiving process makes the task run's own report
there, from the ids the context carries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.state import State
    from runwright_cloud.client import Client
    from runwright_cloud.cloud_settings import CloudSettings
    from runwright_cloud.writer import StateWriter


#: how many children's task runs one request gets or creates (a page of :class:`ChildRuns`)
CHILD_PAGE = 1000


class ChildRuns(dict):  # type: ignore[type-arg]
    """The task runs of a mapped parent's children by map index, got or created a page of
    :data:`CHILD_PAGE` children per request: the parent fetches the first page when it
    becomes Mapped, a child whose run is not here fetches its own page (one request for the
    next ``CHILD_PAGE`` children), so a map of N children costs N / CHILD_PAGE requests and
    at most a few pages in memory (a run is handed to its child once, then dropped).

    Each child's context is a copy of the parent's, so the child finds its run here. On Dask
    it travels with the children's plan (about 90 bytes a child of the pages fetched, pickled
    once per chunk of children); a worker fetches the pages that did not travel itself."""

    def __init__(self, slug: str, runs: dict[int, Any], flow_run_id: str = "", count: int = 0) -> None:
        super().__init__(runs)
        self.slug = slug
        self.flow_run_id = flow_run_id
        self.count = count
        self._lock = threading.Lock()

    def take(self, map_index: int, client: Client | None = None) -> Any:
        """The run of child ``map_index``, fetching its page with ``client`` when it is not
        here (None without a client, or for an index beyond the map: the caller asks alone)."""
        with self._lock:
            run = self.pop(map_index, None)
            if run is not None or client is None or not self.flow_run_id or not 0 <= map_index < self.count:
                return run
            start = map_index
            runs = client.get_task_runs(self.flow_run_id, self.slug, range(start, min(start + CHILD_PAGE, self.count)))
            self.update((info.map_index, info) for info in runs)
            return self.pop(map_index, None)

    def __reduce__(self) -> Any:
        return (ChildRuns, (self.slug, dict(self), self.flow_run_id, self.count))


@dataclass(eq=False)
class FlowRunReport:
    """A flow run being reported: its id and the version the next write expects."""

    id: str
    version: int
    settings: CloudSettings
    client: Client
    writer: StateWriter
    last_reported: State | None = None
    #: this runner's lease token (``task_claims = "lease"``), sent with every flow-run write
    lease: str | None = None
    #: the server stored ``lease`` with a winning write: this runner holds the flow run
    holds_lease: bool = False
    #: a flush of the run's log records timed out (the server is gone): later ones wait briefly
    logs_behind: bool = False
    #: who this runner is (``"host:pid"``), stored with its lease
    holder: str | None = None


@dataclass(eq=False)
class TaskRunReport:
    """A task run (or mapped child run) being reported."""

    id: str
    version: int
    slug: str
    map_index: int | None
    settings: CloudSettings
    flow_run_id: str = ""
    last_reported: State | None = None
    #: queued writes not sent yet (guarded by the writer's lock)
    pending: int = 0
    #: the server refused (or never got) a queued write: later versions cannot match
    refused: bool = False
    runner_id: int = 0
    context: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the flow run's lease token: claims to Running are queued (``task_claims = "lease"``)
    lease: str | None = None
    #: wait for the queued writes at the end of the run (a lost run, recorded by the client)
    flush_at_end: bool = False
    #: a write could not be delivered and is in the flow run's journal (see journal.py)
    undelivered: bool = False
    #: the Cached state its cache check found, and that state as the server sent it
    cached_hit: tuple[State, dict[str, Any]] | None = field(default=None, repr=False)
    #: that state's history row on the server when the hit can be recorded by naming it
    cached_from: int | None = None
    #: the cache key of this run (computed by its cache check), stored with its Cached state
    cache_key: str | None = None
    #: this process's client and writer (None in a detached copy)
    _client: Client | None = field(default=None, repr=False)
    _writer: StateWriter | None = field(default=None, repr=False)

    def describe(self) -> str:
        where = "" if self.map_index is None else f"[{self.map_index}]"
        return f"task run {self.slug}{where} ({self.id})"

    def __reduce__(self) -> Any:
        # A copy (a mapped child's context going to a Dask worker) arrives detached.
        return (
            _detached_report,
            (self.id, self.version, self.slug, self.map_index, self.settings, self.flow_run_id, self.lease),
        )

    @property
    def client(self) -> Client:
        client = self._client
        if client is None:
            raise RuntimeError(f"The report of {self.describe()} was made by another process")
        return client

    @property
    def writer(self) -> StateWriter:
        writer = self._writer
        if writer is None:
            raise RuntimeError(f"The report of {self.describe()} was made by another process")
        return writer


def _detached_report(
    id: str, version: int, slug: str, map_index: int | None, settings: CloudSettings, flow_run_id: str, lease: str | None
) -> TaskRunReport:
    return TaskRunReport(id, version, slug, map_index, settings, flow_run_id, lease=lease)
