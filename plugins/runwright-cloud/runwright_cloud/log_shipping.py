"""Log shipping: every record of a cloud run goes to the server (``POST /logs``) in batches,
from one background thread per process.

What is shipped: the records of the ``runwright`` logger and its children (the run logger of
a task or flow, the runners', the plugins'), tracebacks included (a failed task's is logged
by its runner at ERROR), the prints of ``@task(log_stdout=True)`` tasks, and warnings
(``warnings.warn``), each emitted in a thread whose run context is a cloud run's (it names
the flow run, and the task run when inside one). Records of other threads (the shipper's
own, the heartbeat's) are not shipped, so shipping never logs into itself.

Never blocking a task: :meth:`LogShipper.add` appends to a bounded in-memory queue under a
lock and returns; the thread sends a batch when ``batch_size`` records wait, ``linger``
seconds after the first one, or at once on :meth:`LogShipper.flush`. Bounded memory: at
most ``[cloud] log_queue_size`` records wait (each message cut to
:data:`MAX_MESSAGE_CHARS`); a record arriving while the queue is full is dropped and
counted, and the next batch carries a WARNING record saying how many of the run's records
were dropped. Nothing is dropped at the end of a run: the flow runner flushes (waits for the
queue to be shipped) before it writes the run's final state; a Dask worker process flushes
at the end of each task run that logged anything.

Failures: while the server is unreachable or answers 5xx a batch is retried (backoff up to
5 s) for ``[cloud] outage_tolerance`` seconds, then given up (counted, like a full queue); a
batch the server refuses (404: a run that is gone; 413: too large) is split by flow run or in
halves, and a single refused record is given up. A batch whose answer was lost may be sent
twice: shipping is at least once.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runwright.context import context as runtime_context
from runwright.run_logging import ROOT_LOGGER_NAME
from runwright_cloud.errors import ClientError, NotFoundError, ServerError, ServerUnreachable
from runwright_cloud.keys import SETTINGS_KEY

if TYPE_CHECKING:
    from runwright_cloud.client import Client
    from runwright_cloud.connection import ClientPool

logger = logging.getLogger("runwright.cloud.logs")

#: a longer message is cut (and says so): the server takes up to 1,000,000 characters, and a
#: batch must fit the server's JSON body limit
MAX_MESSAGE_CHARS = 64 * 1024
#: a batch is sent once about this many bytes of messages wait
BATCH_BYTES = 256 * 1024
_RECORD_OVERHEAD = 200
_MAX_BACKOFF = 5.0

Record = dict[str, Any]


def _message(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    try:
        message = record.getMessage()
    except Exception as exc:  # noqa: BLE001 - a bad format string must not lose the record
        message = f"{record.msg!r} (could not be formatted: {exc})"
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = formatter.formatException(record.exc_info)
    if record.exc_text:
        message = f"{message}\n{record.exc_text}"
    if record.stack_info:
        message = f"{message}\n{formatter.formatStack(record.stack_info)}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + f"... [cut: {len(message):,} characters]"
    return message


class LogShipper:
    """The queue, the thread and the counts of one process (owned by its cloud backend)."""

    def __init__(self, capacity: int = 10_000, batch_size: int = 1_000, linger: float = 0.1) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self.linger = linger
        self.give_up_after = 60.0
        self._cond = threading.Condition()
        self._queue: deque[tuple[Client, Record, int]] = deque()
        self._dropped: dict[tuple[Client, str], int] = {}
        self._accepted = 0
        self._finished = 0
        self._flushing = 0
        #: ship without lingering once (see hurry)
        self._hurry = False
        self._notices_in_flight = 0
        self._thread: threading.Thread | None = None

    # -- the producers' side -------------------------------------------------------------------
    def add(self, client: Client, record: Record) -> None:
        """Queue ``record`` (``flow_run_id``, ``task_run_id``, ``timestamp``, ``level``, ``name``,
        ``message``) for ``client``'s server; never blocks on the network."""
        size = len(record["message"]) + _RECORD_OVERHEAD
        with self._cond:
            if len(self._queue) >= self.capacity:
                key = (client, record["flow_run_id"])
                self._dropped[key] = self._dropped.get(key, 0) + 1
                return
            self._queue.append((client, record, size))
            self._accepted += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="runwright-cloud-logs", daemon=True)
                self._thread.start()
            if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def pending(self) -> int:
        """Records accepted and not shipped (or given up) yet."""
        with self._cond:
            return self._accepted - self._finished

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record accepted before this call is shipped (or given up), and the
        counts of dropped records are shipped; False when ``timeout`` passed first."""
        with self._cond:
            target = self._accepted
            if self._finished >= target and not self._unsent_notices():
                return True
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._finished >= target and not self._unsent_notices(), timeout)
            finally:
                self._flushing -= 1

    def hurry(self) -> None:
        """Ship what is queued now, without lingering (and without waiting for it): a flow
        run about to end ships its last records while its last states are sent."""
        with self._cond:
            if self._queue:
                self._hurry = True
                self._cond.notify_all()

    def _unsent_notices(self) -> bool:
        return bool(self._dropped) or self._notices_in_flight > 0

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue or self._dropped))
                deadline = time.monotonic() + self.linger
                while len(self._queue) < self.batch_size and not self._flushing and not self._hurry:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._hurry = False
                client, batch = self._take()
                notices = sum(1 for record in batch if record.get("_notice"))
                self._notices_in_flight = notices
            try:
                self._ship(client, [{k: v for k, v in r.items() if k != "_notice"} for r in batch])
            except Exception:
                logger.exception("Shipping %d log record(s) failed", len(batch))
            with self._cond:
                self._finished += len(batch) - notices
                self._notices_in_flight = 0
                self._cond.notify_all()

    def _take(self) -> tuple[Client, list[Record]]:
        """The next batch: queued records of one server, then the notices of dropped records."""
        if self._queue:
            client = self._queue[0][0]
        else:
            client = next(iter(self._dropped))[0]
        batch: list[Record] = []
        size = 0
        while self._queue and len(batch) < self.batch_size and self._queue[0][0] is client:
            if batch and size + self._queue[0][2] > BATCH_BYTES:
                break
            _, record, record_size = self._queue.popleft()
            batch.append(record)
            size += record_size
        for key in [key for key in self._dropped if key[0] is client]:
            count = self._dropped.pop(key)
            batch.append(
                {
                    "_notice": True,
                    "flow_run_id": key[1],
                    "task_run_id": None,
                    "timestamp": datetime.now(UTC),
                    "level": "WARNING",
                    "name": logger.name,
                    "message": (
                        f"{count} log record(s) of this run were not shipped: the log queue of its process was full "
                        f"([cloud] log_queue_size = {self.capacity}) or the server could not take them"
                    ),
                }
            )
        return client, batch

    def _ship(self, client: Client, batch: list[Record]) -> None:
        """Send ``batch``; retry through an outage; split what the server refuses."""
        deadline = time.monotonic() + self.give_up_after
        delay = 0.2
        while True:
            try:
                client.write_logs(batch)
                return
            except (ServerUnreachable, ServerError) as exc:
                if time.monotonic() + delay > deadline:
                    logger.warning("Giving up %d log record(s): %s", len(batch), exc)
                    self._count_lost(client, batch)
                    return
                time.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
            except ClientError as exc:
                runs = {record["flow_run_id"] for record in batch}
                if isinstance(exc, NotFoundError) and len(runs) > 1:
                    for run_id in runs:
                        self._ship(client, [record for record in batch if record["flow_run_id"] == run_id])
                    return
                if exc.status_code == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    self._ship(client, batch[:half])
                    self._ship(client, batch[half:])
                    return
                logger.warning("The runwright server refused %d log record(s): %s", len(batch), exc)
                if not isinstance(exc, NotFoundError):
                    self._count_lost(client, batch)
                return

    def _count_lost(self, client: Client, batch: list[Record]) -> None:
        with self._cond:
            for record in batch:
                if record["level"] == "WARNING" and record["name"] == logger.name:
                    continue  # a lost notice is not counted again
                key = (client, record["flow_run_id"])
                self._dropped[key] = self._dropped.get(key, 0) + 1


class ShippingHandler(logging.Handler):
    """Turns the records of cloud runs into queued log records (see the module docstring)."""

    def __init__(self, shipper: LogShipper, clients: ClientPool) -> None:
        super().__init__(logging.NOTSET)
        self.shipper = shipper
        self.clients = clients
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = runtime_context.get("flow_run_id")
        settings = runtime_context.get(SETTINGS_KEY)
        if not flow_run_id or settings is None or not runtime_context.get("cloud"):
            return
        try:
            client = self.clients.get(settings.api, settings.api_token)
            self.shipper.add(
                client,
                {
                    "flow_run_id": str(flow_run_id),
                    "task_run_id": runtime_context.get("task_run_id"),
                    "timestamp": datetime.fromtimestamp(record.created, UTC),
                    "level": record.levelname[:20],
                    "name": record.name[:500],
                    "message": _message(record, self._formatter),
                },
            )
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


class LogShipping:
    """Installs the handler (once per process) and the warnings hook; owns the shipper."""

    def __init__(self, clients: ClientPool) -> None:
        self.shipper = LogShipper()
        self.handler = ShippingHandler(self.shipper, clients)
        self._installed = False
        self._lock = threading.Lock()

    def install(self, capacity: int, give_up_after: float) -> None:
        """Ship the records of cloud runs from now on (idempotent; cheap after the first call)."""
        self.shipper.capacity = capacity
        self.shipper.give_up_after = give_up_after
        if self._installed:
            return
        with self._lock:
            if self._installed:
                return
            from runwright.run_logging import configure_logging

            configure_logging()  # a Dask worker's runwright logger gets the run's level too
            logging.getLogger(ROOT_LOGGER_NAME).addHandler(self.handler)
            _hook_warnings(self.handler)
            self._installed = True


def _hook_warnings(handler: ShippingHandler) -> None:
    """``warnings.showwarning`` still shows the warning, and ships it as a WARNING record."""
    shown = warnings.showwarning

    def showwarning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        shown(message, category, filename, lineno, file, line)
        if runtime_context.get("flow_run_id") and runtime_context.get("cloud"):
            text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
            record = logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, "%s", (text,), None)
            handler.handle(record)

    warnings.showwarning = showwarning
