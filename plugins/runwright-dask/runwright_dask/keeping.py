"""Keeping finished states on the client: each Dask task's final value (a task run's
state, or a chunk of mapped children's states) is fetched into this process in the
background as it finishes, in batches (:data:`BATCH_SECONDS`), on one thread. Runs go on
at once with their futures (results still move worker to worker); ``wait`` takes the kept
values instead of a final ``gather``.

Why: a worker that dies takes the only copy of the results it held, and Dask would compute
them again, running finished tasks twice (see ``recompute.py``, which stops that). With the
states kept here, the runs that still need a lost result are submitted again with the kept
state instead. The flow run returns every task's state anyway, so this moves the final
``gather`` earlier rather than adding one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client, Future

logger = logging.getLogger("runwright.dask")

#: how long the keeper collects finished tasks into one ``gather`` (nobody waits for it
#: meanwhile: runs go on with their futures), unless :meth:`StateKeeper.flush` was called
BATCH_SECONDS = 0.02

#: how long one value is waited for after a batch failed (its worker died)
FETCH_SECONDS = 30.0

#: ``done(value, error)``: the fetched value, or the exception that lost it
Done = Callable[[Any, "BaseException | None"], None]


class StateKeeper:
    """One per session; :meth:`keep` a finished future, :meth:`close` at the session's end."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._queue: queue.SimpleQueue[tuple[Future, Done] | None] = queue.SimpleQueue()
        self._flush = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runwright-dask-keeper", daemon=True)
        self._thread.start()

    def keep(self, future: Future, done: Done) -> None:
        """Fetch ``future``'s value, then call ``done`` (on the keeper's thread)."""
        self._queue.put((future, done))

    def flush(self) -> None:
        """Someone waits for kept values: fetch what is queued now, and from now on at once."""
        self._flush.set()

    def close(self) -> None:
        self._flush.set()
        self._queue.put(None)
        self._thread.join(10)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            self._flush.wait(BATCH_SECONDS)
            while True:  # everything queued meanwhile goes in the same gather
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            for (_, done), (value, error) in zip(batch, self._fetch([f for f, _ in batch]), strict=True):
                try:
                    done(value, error)
                except Exception:  # a bug here must not stop the keeper
                    logger.exception("runwright-dask: error while keeping a state")

    def _fetch(self, futures: list[Future]) -> list[tuple[Any, BaseException | None]]:
        try:
            return [(value, None) for value in self._client.gather(futures)]
        except Exception:  # noqa: BLE001 - one lost value: fetch one by one
            out: list[tuple[Any, BaseException | None]] = []
            for future in futures:
                try:
                    # a value lost with its worker can wait for a recomputation that never
                    # comes: after FETCH_SECONDS its outcome counts as unknown here
                    out.append((future.result(timeout=FETCH_SECONDS), None))
                except Exception as exc:  # noqa: BLE001
                    out.append((None, exc))
            return out
