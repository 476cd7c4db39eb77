"""The per-run bookkeeping of reporting: plain data, created by the reporters.

The flow run's report is kept by the :class:`~runwright_cloud.reporting.flow_runs.FlowRunReporter`
per flow runner; a task run's is in the task run's context (key ``cloud_task_run``), so it
reaches thread and Dask workers with the context and survives in-process retries. A report
that travels to another process arrives *detached* (without the client and writer of the
process that made it): the reporter of the receiving process makes the task run's own report
there, from the ids the context carries.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.state import State
    from runwright_cloud.client import Client
    from runwright_cloud.cloud_settings import CloudSettings
    from runwright_cloud.writer import StateWriter


logger = logging.getLogger("runwright.cloud")

#: how many children's task runs one request gets or creates (a page of :class:`ChildRuns`)
CHILD_PAGE = 1000
#: how many pages of children a prefetching :class:`ChildRuns` gets ahead of the children
AHEAD = 2


class ChildRuns(dict):  # type: ignore[type-arg]
    """The task runs of a mapped parent's children by map index, got or created a page of
    :data:`CHILD_PAGE` children per request: the parent fetches the first page when it
    becomes Mapped, a child whose run is not here fetches its own page (one request for the
    next ``CHILD_PAGE`` children), so a map of N children costs N / CHILD_PAGE requests and
    at most a few pages in memory (a run is handed to its child once, then dropped).

    In the process that fetched the first page (``prefetch``), the pages come ahead of the
    children: the first of the :data:`AHEAD` pages after a child's that nobody asked for yet
    is fetched on a background thread (one at a time) while the children run, so children in
    index order (the local executor) never wait for one. Pages are aligned (page p holds map
    indexes p * CHILD_PAGE and up): a child whose page is on its way waits for it, one whose
    page nobody asked for fetches all of it (children out of order still cost a request per
    page), and a page the background fetch could not get is fetched by its children.

    Each child's context is a copy of the parent's, so the child finds its run here. On Dask
    it travels with the children's plan (about 90 bytes a child of the pages fetched, pickled
    once per chunk of children); a worker fetches the pages that did not travel itself (a
    copy never prefetches: a worker runs the children of its chunks only).

    A *fresh* map (``fresh``: the server had no child run of the task when the parent became
    Mapped, and the runner holds the flow run's lease) has no pages: each child names its run
    by a new id (:func:`runwright_cloud.ids.new_id`) and the run is created on the server by
    its first state write, which carries the child's slug and map index."""

    def __init__(
        self,
        slug: str,
        runs: dict[int, Any],
        flow_run_id: str = "",
        count: int = 0,
        prefetch: bool = False,
        fresh: bool = False,
    ) -> None:
        super().__init__(runs)
        self.slug = slug
        self.flow_run_id = flow_run_id
        self.count = count
        #: the children are created by their first writes (no pages)
        self.fresh = fresh
        self._cond = threading.Condition(threading.Lock())
        self._prefetch = prefetch
        #: the pages asked for (page p: map indexes p * CHILD_PAGE to (p + 1) * CHILD_PAGE - 1)
        self._asked: set[int] = {index // CHILD_PAGE for index in runs} if prefetch else set()
        #: the page a background fetch is getting now, if any
        self._fetching: int | None = None
        #: pages a background fetch could not get (their children fetch them themselves)
        self._failed: set[int] = set()
        #: requests sent for pages (for tests)
        self.pages = 0

    def take(self, map_index: int, client: Client | None = None) -> Any:
        """The run of child ``map_index``, fetching its page with ``client`` when it is not
        here (None without a client, or for an index beyond the map: the caller asks alone)."""
        with self._cond:
            run = self.pop(map_index, None)
            if client is None or not self.flow_run_id or not 0 <= map_index < self.count:
                return run
            start, end = map_index, min(map_index + CHILD_PAGE, self.count)
            if self._prefetch:
                page = map_index // CHILD_PAGE
                while run is None and self._fetching == page:
                    self._cond.wait()  # its page is on its way
                    run = self.pop(map_index, None)
                if self._fetching is None:
                    self._fetch_ahead(client, page)
                if run is not None:
                    return run
                end = min((page + 1) * CHILD_PAGE, self.count)
                if page in self._failed:
                    self._failed.discard(page)  # what the fetch ahead did not get, from this child on
                elif page in self._asked:
                    return None  # not in its page as it came: the caller asks for its own run
                else:
                    self._asked.add(page)
                    start = page * CHILD_PAGE  # a page no one asked for yet: all of it
            elif run is not None:
                return run
            self.pages += 1
            runs = client.get_task_runs(self.flow_run_id, self.slug, range(start, end))
            self.update((info.map_index, info) for info in runs)
            return self.pop(map_index, None)

    def _fetch_ahead(self, client: Client, page: int) -> None:
        """Start fetching the first of the :data:`AHEAD` pages after ``page`` not asked for
        yet on a background thread (the condition is held)."""
        for ahead in range(page + 1, page + 1 + AHEAD):
            if ahead * CHILD_PAGE >= self.count:
                return
            if ahead not in self._asked:
                self._asked.add(ahead)
                self._fetching = ahead
                self.pages += 1
                threading.Thread(target=self._fetch, args=(client, ahead), name="runwright-cloud-pages", daemon=True).start()
                return

    def _fetch(self, client: Client, page: int) -> None:
        runs: list[Any] = []
        failed = False
        indexes = range(page * CHILD_PAGE, min((page + 1) * CHILD_PAGE, self.count))
        try:
            runs = client.get_task_runs(self.flow_run_id, self.slug, indexes)
        except Exception as exc:  # noqa: BLE001 - its children then fetch the page themselves
            failed = True
            logger.warning(
                "Could not get the task runs of children %d to %d of %s ahead: %s", indexes.start, indexes.stop - 1, self.slug, exc
            )
        with self._cond:
            self.update((info.map_index, info) for info in runs)
            if failed:
                self._failed.add(page)
            self._fetching = None
            self._cond.notify_all()

    def __reduce__(self) -> Any:
        with self._cond:  # a page fetched ahead may be arriving
            runs = dict(self)
        return (ChildRuns, (self.slug, runs, self.flow_run_id, self.count, False, self.fresh))


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


@dataclass(eq=False, slots=True)
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
    #: the server has no such run yet: its first write (version 0) creates it (a fresh map's child)
    creates: bool = False
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
