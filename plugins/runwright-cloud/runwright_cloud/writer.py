"""The background writer: task-run state writes that need no answer, sent in batches.

A mapped parent's ``Mapped`` state (and, with ``[cloud] task_claims = "sync"``, every claim
to ``Running``) is written at once and version-checked. Every other task-run state is queued
here (with ``task_claims = "lease"``, the claims to ``Running`` too): a daemon thread
serializes the states, storing their results (checkpointing, cached results and cached
inputs) inline in the same request when they are small (see
:mod:`runwright_cloud.result_handler`), and up to ``batch_size`` queued writes of one flow
run go in one ``set_task_run_states`` request, sent by one of two sender threads (two
requests on their way at once). Each task run's writes are sent in queue order: a write
joins a batch only once every earlier batch holding a write of its task run was answered.
It sends when the queue holds ``batch_size`` writes or ``batch_linger`` seconds after the
first one was queued, whichever comes first, and at once when someone waits (a flush).

A cache hit whose state is exactly a candidate the server sent (see
:mod:`runwright_cloud.reporting.cached`) is sent as ``{task_run_id, version, state_id}``
to ``POST /cached_states/hits``, in its own request next to the batch's other writes (a task
run with other writes in the batch keeps all of them in one request, in order): the server
copies the candidate's stored state. A hit the server cannot copy (``rejected``: it has not
got that candidate) follows as a full state; against a server without the route every hit
is sent in full for the next :data:`FULL_HITS_FOR` seconds.

The queue is bounded (``max_queued`` writes, 20 batches by default): a task run whose state
finds it full waits until the writer has taken a batch off it. So when the server is slower
than the engine (a map of a million children) or unreachable (the writer retrying a batch for
``outage_tolerance``), the run slows down to the server's pace instead of holding every state
in memory; no write is dropped.

Writes of a leased flow run carry the runner's lease token: when the server answers that the
lease is no longer this runner's (another runner took the flow run over), nothing of the
batch was applied and the writer marks the flow run's lease lost; the reporting code then
ends later task runs ``ClientFailed`` and does not record the flow run's final state.

The flow runner flushes the queue before it writes the flow run's final state and at the end
of the run; a task run on another process (a Dask worker) waits for its own writes when it
ends. What a crash can lose is the unflushed queue: those task runs still show their earlier
state on the server (``Running``, or ``Pending`` when their queued claim was lost too) and
run again when the flow run is resumed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runwright.context import context as runtime_context
from runwright_cloud.errors import ClientError, LeaseLost, ServerError, ServerUnreachable
from runwright_cloud.state_bodies import StateForms, serialize_for_server, store_results

__all__ = ["StateWriter", "WriterPool", "serialize_for_server", "store_results"]

if TYPE_CHECKING:
    from runwright.engine.state import State
    from runwright_cloud.client import Client
    from runwright_cloud.cloud_settings import CloudSettings

logger = logging.getLogger("runwright.cloud.writer")


#: seconds during which hits are sent in full after the server answered without the hits route
FULL_HITS_FOR = 300.0


class TaskRunReport(Protocol):
    """What the writer needs of a task run's report
    (:class:`runwright_cloud.reporting.reports.TaskRunReport`)."""

    id: str
    version: int
    flow_run_id: str
    lease: str | None
    settings: CloudSettings
    #: queued writes not sent yet (guarded by the writer's lock)
    pending: int
    #: the server refused (or never got) a queued write
    refused: bool
    #: a queued write could not be delivered (kept in the journal): later ones follow it there
    undelivered: bool
    #: the run's cache key, stored with its Cached state (see reporting/cached.py)
    cache_key: str | None
    #: the Cached state its cache check found, and that state as the server sent it
    cached_hit: tuple[State, dict[str, Any]] | None
    #: that state's history row when the hit can be recorded by naming it (cached_hits.py)
    cached_from: int | None
    slug: str
    map_index: int | None
    #: the server has no such run yet: its first write (version 0) creates it
    creates: bool

    def describe(self) -> str: ...


@dataclass(slots=True)
class _Write:
    report: TaskRunReport
    version: int
    state: State
    checkpoint: bool


class _Group:
    """The writes of one batch to one flow run (with one lease), serialized: ``(write, body)``
    in queue order (body None: not serialized, the task run's earlier write was refused),
    the cache hits recorded by naming their candidates (``hits``, sent apart: see
    :func:`_split_hits`), the results that go inline, and the request body encoded for
    ``items``."""

    __slots__ = ("encoded", "flow_run_id", "hits", "items", "lease", "results")

    def __init__(self, flow_run_id: str, lease: str | None) -> None:
        self.flow_run_id = flow_run_id
        self.lease = lease
        self.items: list[tuple[_Write, dict[str, Any] | None]] = []
        self.hits: list[tuple[_Write, dict[str, Any]]] = []
        self.results: list[dict[str, str]] = []
        self.encoded: bytes | None = None


class _Batch:
    """A batch taken off the queue: its writes, serialized (its groups), sent by one sender."""

    __slots__ = ("claimed", "groups", "writes")

    def __init__(self, writes: list[_Write], groups: list[_Group]) -> None:
        self.writes = writes
        self.groups = groups
        self.claimed = False


class StateWriter:
    """A queue of task-run state writes and the daemon threads that send them in batches: one
    serializes the next batch while ``senders`` others send the batches before it and wait
    for the server's answers (``pipeline`` batches serialized or in flight at most), so the
    engine, the serialization and the server work at the same time, and the server has the
    next batch as soon as it answered one. A task run's writes reach the server in the
    order they were queued: a write is taken into a batch only once every earlier batch
    holding a write of its task run was answered (it waits in the queue, with the task run's
    later writes, meanwhile), so two batches in flight never hold the same task run."""

    def __init__(
        self,
        client: Client,
        batch_size: int = 2000,
        linger: float = 0.002,
        max_queued: int | None = None,
        pipeline: int = 3,
        senders: int = 2,
    ) -> None:
        self.client = client
        self.batch_size = batch_size
        self.linger = linger
        #: most writes queued; enqueue waits while the queue holds that many (back-pressure)
        self.max_queued = max(batch_size, max_queued if max_queued is not None else 20 * batch_size)
        #: batches sent at the same time (each by its own thread, on its own connection)
        self.senders = max(1, senders)
        #: most batches taken off the queue and not answered yet (serialized, or being sent)
        self.pipeline = max(self.senders, pipeline)
        lock = threading.RLock()
        #: waited on by task runs (room in the queue, their writes sent) and flushes
        self._cond = threading.Condition(lock)
        #: waited on by the serializing thread alone (writes to take): a write queued wakes
        #: only it, and only when it may be waiting for that write
        self._work = threading.Condition(lock)
        #: waited on by the senders (a batch to send) and the serializer (room for one, or
        #: an answer that lets a waiting task run's write go)
        self._ready = threading.Condition(lock)
        self._queue: deque[_Write] = deque()
        #: batches taken off the queue and not answered yet, oldest first
        self._outbox: list[_Batch] = []
        #: task runs (their reports' ids) with writes in those batches: how many each
        self._unanswered: dict[int, int] = {}
        self._unfinished = 0
        #: until then (``time.monotonic()``), hits are sent in full: the server lacked the route
        self._full_hits_until = 0.0
        #: threads waiting for writes to land: send without lingering
        self._waiting = 0
        self._thread: threading.Thread | None = None
        self._sender_threads: list[threading.Thread] = []
        #: writes that did not land (server unreachable, or refused), per flow run id
        self._lost: dict[str, int] = {}
        #: flow runs whose lease the server says this runner no longer holds
        self._lease_lost: set[str] = set()
        #: requests sent (for tests and benchmarks)
        self.requests = 0

    def enqueue(self, report: TaskRunReport, state: State, checkpoint: bool) -> None:
        """Queue ``state`` for the task run, expecting its current version (then +1); wait
        while the queue is full (``max_queued``)."""
        with self._cond:
            if len(self._queue) >= self.max_queued:
                current = threading.current_thread()
                if current is not self._thread and current not in self._sender_threads:
                    self._wait_for_room()
            self._queue.append(_Write(report, report.version, state, checkpoint))
            report.version += 1
            report.pending += 1
            self._unfinished += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="runwright-cloud-writer", daemon=True)
                self._sender_threads = [
                    threading.Thread(target=self._send_loop, name="runwright-cloud-sender", daemon=True)
                    for _ in range(self.senders)
                ]
                self._thread.start()
                for sender in self._sender_threads:
                    sender.start()
            queued = len(self._queue)
            if queued == 1 or queued >= self.batch_size:
                # the writer waits for a first write, or lingers for a full batch: waking it
                # for every write in between would only hand the GIL back and forth
                self._work.notify()

    def _wait_for_room(self) -> None:
        """Wait (holding the condition) until the writer took a batch off the full queue."""
        self._waiting += 1  # a full queue is sent at once anyway; no lingering either
        self._work.notify()
        try:
            while len(self._queue) >= self.max_queued and self._thread is not None and self._thread.is_alive():
                self._cond.wait(1.0)
        finally:
            self._waiting -= 1

    def flush(self) -> None:
        """Wait until every queued write was sent (or failed, which is logged)."""
        with self._cond:
            if not self._unfinished:
                return
            self._waiting += 1
            self._work.notify()
            try:
                while self._unfinished:
                    self._cond.wait()
            finally:
                self._waiting -= 1

    @property
    def queued(self) -> int:
        """How many writes wait in the queue now (at most ``max_queued``)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """How many batches were taken off the queue and are not answered yet (at most ``pipeline``)."""
        return len(self._outbox)

    def lease_lost(self, flow_run_id: str) -> bool:
        """True once the server refused a batch of ``flow_run_id``: another runner holds its lease."""
        return flow_run_id in self._lease_lost

    def lost(self, flow_run_id: str) -> int:
        """How many queued task-run states of ``flow_run_id`` the server did not record."""
        with self._cond:
            return self._lost.get(flow_run_id, 0)

    def _record_lost(self, report: TaskRunReport) -> None:
        report.refused = True
        with self._cond:
            self._lost[report.flow_run_id] = self._lost.get(report.flow_run_id, 0) + 1

    def wait_for(self, report: TaskRunReport) -> None:
        """Wait until the queued writes of one task run were sent."""
        if not report.pending:
            return
        with self._cond:
            self._waiting += 1
            self._work.notify()
            try:
                while report.pending:
                    self._cond.wait()
            finally:
                self._waiting -= 1

    def _loop(self) -> None:
        """The serializing thread: take a batch off the queue, serialize it, hand it to the sender."""
        work, ready = self._work, self._ready
        while True:
            with work:
                while not self._queue:
                    work.wait()
                if self.linger > 0 and len(self._queue) < self.batch_size and not self._waiting:
                    deadline = time.monotonic() + self.linger
                    while len(self._queue) < self.batch_size and not self._waiting:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        work.wait(remaining)
                full = len(self._queue) >= self.max_queued
                batch = self._take()
                while not batch:  # every queued write waits for an answer about its task run
                    ready.wait()
                    batch = self._take()
                if full:
                    self._cond.notify_all()  # room again: the waiting task runs go on while this batch is sent
            try:
                groups = self._prepare(batch)
            except Exception:  # a bug must not stop the writer: the batch is lost
                logger.exception("Could not serialize %d task run state(s)", len(batch))
                for write in batch:
                    self._record_lost(write.report)
                groups = []
            with ready:
                while len(self._outbox) >= self.pipeline:
                    ready.wait()
                self._outbox.append(_Batch(batch, groups))
                ready.notify_all()

    def _take(self) -> list[_Write]:
        """Up to ``batch_size`` writes off the queue (the lock is held), in queue order,
        leaving in it, in order, those of task runs with a write in a batch not answered
        yet (and their later ones): they go with a later batch."""
        unanswered = self._unanswered
        queue = self._queue
        popleft = queue.popleft
        if not unanswered:
            batch = [popleft() for _ in range(min(self.batch_size, len(queue)))]
        else:
            batch, left = [], []
            waiting: set[int] = set()
            while queue and len(batch) < self.batch_size:
                write = popleft()
                key = id(write.report)
                if key in unanswered or key in waiting:
                    left.append(write)
                    waiting.add(key)
                else:
                    batch.append(write)
            queue.extendleft(reversed(left))
        for write in batch:
            key = id(write.report)
            unanswered[key] = unanswered.get(key, 0) + 1
        return batch

    def _send_loop(self) -> None:
        """A sending thread: send the oldest serialized batch no other sender took, wait for
        its answer, and so on."""
        ready = self._ready
        while True:
            with ready:
                while True:
                    taken = next((entry for entry in self._outbox if not entry.claimed), None)
                    if taken is not None:
                        break
                    ready.wait()
                taken.claimed = True
            batch = taken.writes
            try:
                for group in taken.groups:
                    self._deliver(group)
            except Exception:  # a bug must not stop the writer
                logger.exception("Could not send %d task run state(s)", len(batch))
                for write in batch:
                    self._record_lost(write.report)
            finally:
                with ready:
                    self._outbox.remove(taken)
                    unanswered = self._unanswered
                    for write in batch:
                        write.report.pending -= 1
                        key = id(write.report)
                        left = unanswered[key] - 1
                        if left:
                            unanswered[key] = left
                        else:
                            del unanswered[key]
                    self._unfinished -= len(batch)
                    ready.notify_all()  # room for the next batch serialized, and its writes free to go
                    self._cond.notify_all()  # writes sent: flushes and waiting task runs look again

    def _prepare(self, batch: list[_Write]) -> list[_Group]:
        """Serialize a batch, per flow run (and lease): its states, with their small results
        inline (see :mod:`runwright_cloud.result_handler`), and the request body."""
        from runwright_cloud.result_handler import collect_inline

        groups: dict[tuple[str, str | None], list[_Write]] = {}
        for write in batch:
            groups.setdefault((write.report.flow_run_id, write.report.lease), []).append(write)
        prepared = []
        forms = StateForms()
        compact = self.compact_hits()
        for (flow_run_id, lease), writes in groups.items():
            group = _Group(flow_run_id, lease)
            items = group.items
            # Results are stored from this thread, whose run context is empty: the handler finds
            # the run's server and token here (a Dask worker may have no [cloud] config at all).
            with collect_inline(self.client) as inline, runtime_context(cloud_settings=writes[0].report.settings):
                for write in writes:
                    report = write.report
                    if report.refused and not report.undelivered:
                        items.append((write, None))  # an earlier write was refused: counted lost when sent
                        continue
                    hit = report.cached_hit
                    if hit is not None and hit[0] is write.state:
                        state = dict(hit[1])  # a cache hit, recorded as the server sent it
                    else:
                        state = serialize_for_server(write.state, write.checkpoint, report, forms)
                    if report.cache_key is not None and state["type"] == "Cached":
                        state["cache_key"] = report.cache_key
                    body = {"task_run_id": report.id, "version": write.version, "state": state}
                    if report.creates and write.version == 0:  # a fresh map's child: this write creates its run
                        body["task_slug"], body["map_index"] = report.slug, report.map_index
                    if hit is not None and hit[0] is write.state and report.cached_from is not None and compact:
                        group.hits.append((write, body))
                    else:
                        items.append((write, body))
            if group.hits and items:
                group.items, group.hits = _split_hits(writes, items, group.hits)
                items = group.items
            group.results = inline.results
            bodies = [body for _, body in items if body is not None]
            if bodies:
                group.encoded = self.client.encode_task_run_states(
                    bodies, lease=None if lease is None else (flow_run_id, lease), results=group.results
                )
            prepared.append(group)
        return prepared

    def _deliver(self, group: _Group) -> None:
        """Send one serialized group; what an earlier batch's answer changed is decided here
        (a refused task run's later writes are lost, an undelivered one's are journaled after
        its earlier ones, a lost lease stops the flow run's writes)."""
        flow_run_id, lease = group.flow_run_id, group.lease
        held: list[dict[str, Any]] = []  # writes after an undelivered one of the same task run

        def sendable(serialized: list[tuple[_Write, dict[str, Any] | None]]) -> list[tuple[_Write, dict[str, Any]]]:
            items: list[tuple[_Write, dict[str, Any]]] = []
            for write, body in serialized:
                report = write.report
                if (
                    body is None
                    or (report.refused and not report.undelivered)
                    or (lease is not None and flow_run_id in self._lease_lost)
                ):
                    self._record_lost(report)
                    continue  # an earlier write of this task run was refused: later versions cannot match
                if report.undelivered:
                    held.append(body)  # journaled after the earlier ones, never sent ahead of them
                    self._record_lost(report)
                else:
                    items.append((write, body))
            return items

        items = sendable(group.items)
        hits = sendable(list(group.hits))
        if held:
            self._journal(flow_run_id, held, group.results)
        # the body encoded with the batch holds exactly these writes unless some dropped out
        encoded = group.encoded if len(items) == len(group.items) else None
        outcome = self._post(flow_run_id, lease, items, group.results, encoded) if items else "sent"
        if hits:
            if outcome == "sent":
                self._post_hits(flow_run_id, lease, hits)
            else:  # the server is gone, or the lease: the hits would fare the same
                self._failed(flow_run_id, outcome, hits, [])

    def compact_hits(self) -> bool:
        """Whether cache hits are recorded by naming their candidates (not while the server
        was found without the route, for :data:`FULL_HITS_FOR` seconds)."""
        return time.monotonic() >= self._full_hits_until

    def _post_hits(self, flow_run_id: str, lease: str | None, hits: list[tuple[_Write, dict[str, Any]]]) -> None:
        """Record cache hits by naming their candidates; the full states of those the server
        could not copy (an older server, a candidate it no longer has) follow."""
        settings = hits[0][0].report.settings
        try:
            self.requests += 1
            results = self.client.record_cached_hits(
                [{**body, "state_id": write.report.cached_from} for write, body in hits],
                lease=None if lease is None else (flow_run_id, lease),
                retry_for=settings.outage_tolerance,
            )
        except ClientError as exc:
            self._failed(flow_run_id, exc, hits, [])
            return
        if results is None:
            # an older server: full states for a while (it may be upgraded meanwhile)
            self._full_hits_until = time.monotonic() + FULL_HITS_FOR
            self._post(flow_run_id, lease, hits, [])
            return
        retry = [(write, body) for (write, body), outcome in zip(hits, results, strict=True) if outcome.get("status") == "rejected"]
        self._check_outcomes([(item, outcome) for item, outcome in zip(hits, results, strict=True) if outcome.get("status") != "rejected"])
        if retry:
            self._post(flow_run_id, lease, retry, [])

    def _post(
        self,
        flow_run_id: str,
        lease: str | None,
        items: list[tuple[_Write, dict[str, Any]]],
        results: list[dict[str, str]],
        encoded: bytes | None = None,
    ) -> Any:
        """Send full state writes (``encoded``: their request body, if already encoded);
        "sent", or the error that kept them from the server."""
        try:
            self.requests += 1
            outcomes = self.client.set_task_run_states(
                [body for _, body in items],
                lease=None if lease is None else (flow_run_id, lease),
                results=results,
                retry_for=items[0][0].report.settings.outage_tolerance,
                encoded=encoded,
                brief=True,
            )
        except ClientError as exc:
            self._failed(flow_run_id, exc, items, results)
            return exc
        if outcomes is not None:  # None: every write applied (a brief answer)
            self._check_outcomes(list(zip(items, outcomes, strict=True)))
        return "sent"

    def _failed(
        self, flow_run_id: str, exc: Any, items: list[tuple[_Write, dict[str, Any]]], results: list[dict[str, str]]
    ) -> None:
        """Writes the server did not get (``exc``): lost, or kept in the journal."""
        if isinstance(exc, LeaseLost):
            self._lease_lost.add(flow_run_id)
            logger.error(
                "The runwright server refused %d task run state(s): %s. This runner stops reporting flow run %s.",
                len(items),
                exc,
                flow_run_id,
            )
            for write, _ in items:
                self._record_lost(write.report)
            return
        if isinstance(exc, ServerUnreachable | ServerError):
            # not delivered: kept on local disk, replayed when the flow run is resumed
            path = self._journal(flow_run_id, [body for _, body in items], results)
            kept = f"; they are kept in {path} and recorded when the flow run is resumed" if path else ""
            logger.error("Could not record %d task run state(s) on the runwright server: %s%s", len(items), exc, kept)
            for write, _ in items:
                write.report.undelivered = True
                self._record_lost(write.report)
            return
        logger.error("Could not record %d task run state(s) on the runwright server: %s", len(items), exc)
        for write, _ in items:
            self._record_lost(write.report)

    def _check_outcomes(self, answered: list[tuple[tuple[_Write, dict[str, Any]], dict[str, Any]]]) -> None:
        for (write, _), outcome in answered:
            if outcome.get("status") != "ok":
                self._record_lost(write.report)
                logger.warning(
                    "The runwright server refused the %s state of %s (%s; its version is now %s): another "
                    "runner wrote to it",
                    type(write.state).__name__,
                    write.report.describe(),
                    outcome.get("status"),
                    outcome.get("version"),
                )

    def _journal(self, flow_run_id: str, writes: list[dict[str, Any]], results: list[dict[str, str]]) -> Any:
        """Append undelivered writes to the flow run's journal (fsync'd); None if that failed."""
        from runwright_cloud import journal

        try:
            return journal.append(self.client.api, flow_run_id, writes, list(results))
        except Exception as exc:  # noqa: BLE001 - a full disk must not break the run: they are lost
            logger.error("Could not keep %d undelivered task run state(s) on local disk: %s", len(writes), exc)
            return None


class WriterPool:
    """The process's writer per client (owned by the cloud backend)."""

    def __init__(self) -> None:
        self._writers: dict[int, StateWriter] = {}
        self._lock = threading.Lock()

    def get(self, client: Client, batch_size: int, linger: float = 0.002) -> StateWriter:
        """The writer for ``client`` (created with ``batch_size`` and ``linger`` on first use;
        its queue holds at most 20 batches)."""
        writer = self._writers.get(id(client))
        if writer is None:
            with self._lock:
                writer = self._writers.get(id(client))
                if writer is None:
                    writer = self._writers[id(client)] = StateWriter(client, batch_size, linger)
        return writer


def _split_hits(
    batch: list[_Write], items: list[tuple[_Write, dict[str, Any] | None]], hits: list[tuple[_Write, dict[str, Any]]]
) -> tuple[list[tuple[_Write, dict[str, Any] | None]], list[tuple[_Write, dict[str, Any]]]]:
    """The full writes and the compact hits, sent in two requests: a hit of a task run that
    also has a full write in the batch goes with the full writes, in queue order (each run's
    writes stay in one request, in order)."""
    runs = {write.report.id for write, _ in items}
    moved = [hit for hit in hits if hit[0].report.id in runs]
    if not moved:
        return items, hits
    position = {id(write): index for index, write in enumerate(batch)}
    merged: list[tuple[_Write, dict[str, Any] | None]] = sorted([*items, *moved], key=lambda item: position[id(item[0])])
    return merged, [hit for hit in hits if hit[0].report.id not in runs]
