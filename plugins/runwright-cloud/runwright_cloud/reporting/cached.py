"""Cache checks of cloud runs: one request for the candidates of every task of a flow run.

The candidate Cached states of every task of flows with the flow run's name come in one
request (``GET /cached_states`` without a task slug, small results inline; when the flow is
known, only states stored since ``now -`` its longest ``cache_for``): started in a
thread while the flow run is loaded (a flow with a ``cache_for`` task), or by the first cache
check of the flow run in a process (a Dask worker); every later check of that flow run is
answered from that answer. The checks may start as soon as the answer is there: the thread
then deserializes the candidates ahead of them, in the order of the flow's tasks, skipping
those a check already looked at (a check that finds its candidates not prepared yet reads
them itself, with the same outcome).

A candidate is valid when it has not expired (``cache_for`` and its own expiration) and:

* with a *keyed* validator (:func:`runwright.engine.cache_validators.cache_key`: runwright-cache's
  policies, ``all_inputs``, ``all_parameters``), when the key stored with it equals the key of
  the run about to start: no cached input is read back;
* with any other validator (or a candidate stored without a key), when the validator accepts
  it (which may read its cached inputs back).

The candidate's result comes from the answer when the server inlined it; a result that does
not unpickle is a miss (the next candidate is tried, then the task runs), never a failure.
When the server's answer was cut at its row limit, a task without candidates in it asks for
its own (the request of earlier versions).

A hit is recorded compactly: the writer names the candidate's history row (``state_id`` in
the answer) and the server copies that Cached state into the task run
(``POST /cached_states/hits``), instead of the state going back to the server in full (see
:func:`hit_source`; an older server, or a candidate it no longer has, gets the full state).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from runwright.engine.cache_validators import cache_key, duration_only
from runwright.engine.result import Result, SafeResult
from runwright.engine.result_framing import unpickle_framed
from runwright.engine.state import Cached, State, utcnow

if TYPE_CHECKING:
    from runwright.task import Task
    from runwright_cloud.client import Client

logger = logging.getLogger("runwright.cloud")

#: rows asked for in one request; an answer this long may be incomplete
CANDIDATE_LIMIT = 20000
#: distinct cache keys kept per task and map index
PER_TASK = 5
#: flow runs whose candidates a process keeps (a worker process serves several)
_KEPT_RUNS = 8


class FlowRunCandidates:
    """The candidates of one flow run's tasks, fetched on first use."""

    def __init__(
        self, client: Client, flow_name: str, created_after: datetime | None = None, order: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.flow_name = flow_name
        #: no candidate stored before this can be valid (the flow's longest ``cache_for``)
        self.created_after = created_after
        #: the task slugs in the order the flow run checks them (its topological order)
        self.order = order
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, int], list[dict[str, Any]]] | None = None
        self.complete = True

    def prefetch(self) -> None:
        """Start fetching in a daemon thread (a failure there is retried by the first check)."""
        self._lock.acquire()
        threading.Thread(target=self._prefetch, name="runwright-cloud-cache", daemon=True).start()

    def _prefetch(self) -> None:
        try:
            rows = self._fetch()
            self._rows = rows
        except Exception as exc:  # noqa: BLE001 - the first cache check asks again, and reports it
            logger.debug("Could not prefetch the cached states of flow %r: %s", self.flow_name, exc)
            return
        finally:
            self._lock.release()
        # The checks may start now; this thread prepares the rows ahead of them, in the order
        # they come (a check that overtakes it prepares its own rows: the same outcome).
        try:
            _prepare(rows, self.order)
        except Exception as exc:  # noqa: BLE001 - the checks prepare what is left themselves
            logger.debug("Could not prepare the cached states of flow %r: %s", self.flow_name, exc)

    def rows_for(self, slug: str, map_index: int) -> list[dict[str, Any]] | None:
        """The candidate rows of a task run, newest first; None: ask the server for them."""
        rows = self._rows
        if rows is None:
            with self._lock:
                if self._rows is None:
                    self._rows = self._fetch()
                rows = self._rows
        found = rows.get((slug, map_index))
        if found is None and not self.complete:
            return None
        return found or []

    def _fetch(self) -> dict[tuple[str, int], list[dict[str, Any]]]:
        answer = self.client.get_cached_candidates(
            self.flow_name, limit=CANDIDATE_LIMIT, per_task=PER_TASK, created_after=self.created_after
        )
        self.complete = len(answer) < CANDIDATE_LIMIT
        rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in answer:
            rows.setdefault((str(row.get("task_slug")), int(row.get("map_index", -1))), []).append(row)
        return rows


#: a row's state, deserialized ahead (by the prefetch thread), and its inline result read
_PREPARED = "_prepared"
#: set on a row by the first check that looked at it: the prefetch thread skips it
_SEEN = "_seen"


def _ordered(rows: dict[tuple[str, int], list[dict[str, Any]]], order: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """The candidate lists of ``rows``, those of the slugs in ``order`` first, in that order."""
    for slug in order:
        found = rows.get((slug, -1))
        if found is not None:
            yield found
    known = set(order)
    for (slug, map_index), candidates in list(rows.items()):
        if map_index != -1 or slug not in known:
            yield candidates


def _prepare(rows: dict[tuple[str, int], list[dict[str, Any]]], order: Sequence[str] = ()) -> None:
    """Deserialize every candidate's state and read its inline result ahead of the checks,
    in the order the checks come (``order``: task slugs), skipping the rows a check already
    looked at (each is used once: a second check of the same row deserializes it again). A
    candidate that does not deserialize is left for its check to skip, with the same outcome."""
    for candidates in _ordered(rows, order):
        for row in candidates:
            if _SEEN in row:
                continue
            try:
                candidate = State.deserialize(row["state"])
            except Exception:  # noqa: BLE001 - its check tries again and skips it
                continue
            inline = row.get("result")
            value: Any = _NOT_READ
            if isinstance(candidate, Cached) and isinstance(inline, str) and isinstance(candidate._result, SafeResult):
                try:
                    value = unpickle_framed(base64.b64decode(inline), str(candidate._result.value), "result at")
                except Exception:  # noqa: BLE001 - its check reads it again and reports it
                    continue
            row[_PREPARED] = (candidate, value)


_NOT_READ = object()


class CachedStates:
    """This process's candidates, per flow run (the last few flow runs only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple[int, str], FlowRunCandidates] = OrderedDict()

    def for_run(self, client: Client, flow_run_id: str, flow_name: str) -> FlowRunCandidates:
        key = (id(client), flow_run_id)
        with self._lock:
            candidates = self._runs.get(key)
            if candidates is None or candidates.flow_name != flow_name:
                candidates = self._runs[key] = FlowRunCandidates(client, flow_name)
                while len(self._runs) > _KEPT_RUNS:
                    self._runs.popitem(last=False)
            return candidates

    def prefetch(
        self, client: Client, flow_name: str, longest_cache_for: timedelta | None = None, order: Sequence[str] = ()
    ) -> FlowRunCandidates:
        """Candidates being fetched now, for a flow run not known yet (see :meth:`add`);
        with ``longest_cache_for`` (the flow's longest ``cache_for``), only those stored since
        then: older ones cannot be valid, so a flow's history beyond it costs nothing.
        ``order``: the task slugs in the order the run checks them (they are prepared so)."""
        created_after = utcnow() - longest_cache_for if longest_cache_for is not None else None
        candidates = FlowRunCandidates(client, flow_name, created_after, order)
        candidates.prefetch()
        return candidates

    def add(self, client: Client, flow_run_id: str, candidates: FlowRunCandidates) -> None:
        """Use ``candidates`` for the cache checks of that flow run."""
        with self._lock:
            self._runs[(id(client), flow_run_id)] = candidates
            while len(self._runs) > _KEPT_RUNS:
                self._runs.popitem(last=False)

    def forget(self, flow_run_id: str) -> None:
        """Drop a finished flow run's candidates."""
        with self._lock:
            for key in [k for k in self._runs if k[1] == flow_run_id]:
                del self._runs[key]


def current_key(task: Task, inputs: dict[str, Any], parameters: dict[str, Any]) -> str | None:
    """The key of the run about to start, None when the validator is not keyed or the
    inputs cannot be keyed (the validator then decides)."""
    try:
        return cache_key(task.cache_validator, task, inputs, parameters)
    except Exception as exc:  # noqa: BLE001 - an unkeyable input: validate the slow way
        logger.debug("Task '%s': no cache key (%s)", task.slug, exc)
        return None


def pick(
    task: Task, rows: list[dict[str, Any]], key: str | None, inputs: dict[str, Any], parameters: dict[str, Any]
) -> tuple[Cached, dict[str, Any]] | None:
    """The newest valid candidate among ``rows`` (see the module docstring), with its row as
    the server sent it (the writer records the hit with the row's state: no re-serializing;
    see :func:`hit_source`)."""
    cache_for: timedelta = task.cache_for  # type: ignore[assignment]
    oldest = utcnow() - cache_for
    for row in rows:
        stored_key = row.get("cache_key")
        keyed = key is not None and isinstance(stored_key, str)
        if (keyed and stored_key != key) or not _newer_than(row.get("created"), oldest):
            continue
        row[_SEEN] = True
        prepared = row.pop(_PREPARED, None)
        try:
            candidate = prepared[0] if prepared is not None else State.deserialize(row["state"])
        except Exception as exc:  # noqa: BLE001 - a candidate we cannot read is no candidate
            logger.debug("Skipping a cached state of %s: %s", task.slug, exc)
            continue
        if not isinstance(candidate, Cached):
            continue
        if keyed:
            if not duration_only(candidate, inputs, parameters):
                continue
        elif not task.cache_validator(candidate, inputs, parameters):
            continue
        inline = row.get("result")
        if prepared is not None and prepared[1] is not _NOT_READ:
            _give_result(candidate, prepared[1])
        elif isinstance(inline, str) and not _use_inline(task, candidate, inline):
            continue
        return candidate, row
    return None


def hit_source(row: dict[str, Any], key: str | None) -> int | None:
    """The candidate's history row (``state_id``) when the hit's state is exactly the stored
    one, so the server can copy it (``POST /cached_states/hits``): the run's key is the stored
    key, or the run has none (the writer then records the state as it is). None: the writer
    sends the state."""
    state_id = row.get("state_id")
    if type(state_id) is not int or state_id < 1:
        return None  # an older server's answer, or a task's own (uncut) request
    stored = row["state"].get("cache_key") if isinstance(row.get("state"), dict) else None
    return state_id if key is None or key == stored else None


def _newer_than(created: Any, oldest: datetime) -> bool:
    if not isinstance(created, str):
        return True  # the server filters by age when asked; an answer without a time is kept
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")) >= oldest
    except ValueError:
        return False


def _use_inline(task: Task, candidate: Cached, inline: str) -> bool:
    """Give the candidate its inlined result, read; False when the bytes do not unpickle."""
    stored = candidate._result
    if not isinstance(stored, SafeResult):
        return True
    try:
        value = unpickle_framed(base64.b64decode(inline), str(stored.value), "result at")
    except Exception as exc:  # noqa: BLE001 - a corrupt cached result is a miss, never a failure
        logger.warning("Task '%s': a cached result could not be read (%s); it is not used.", task.slug, exc)
        return False
    _give_result(candidate, value)
    return True


def _give_result(candidate: Cached, value: Any) -> None:
    stored = candidate._result
    assert isinstance(stored, SafeResult)
    loaded = Result(value, stored.result_handler)
    loaded.safe_value = stored
    candidate._result = loaded
