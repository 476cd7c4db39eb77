"""DaskExecutor: run task runs, mapped children included, on a Dask ``distributed`` cluster.

How a flow run maps onto Dask (the client side lives here, the worker side in ``worker.py``):

* every task run is one Dask task; its upstream task runs are passed as Dask futures, so
  results move from worker to worker and the scheduler orders the work;
* a mapped parent runs on a worker and returns a *plan* (its Mapped state whose children are
  :class:`~runwright_dask.worker.ChildCall`); the client then submits the children in chunks
  (``map_chunk_size``, auto: about four chunks per worker thread). No worker ever waits for
  other tasks, so a worker that dies takes only its own chunk with it;
* a task run downstream of a mapped parent is submitted once every child has finished
  (retries included) and receives the children's futures as separate arguments;
* a task run lost with its worker (``KilledWorker`` once the scheduler's
  ``distributed.scheduler.allowed-failures`` is exceeded), or whose Dask task failed outside
  the task runner, becomes a Failed state with a message saying so, and is submitted again
  as Retrying while the task's ``max_retries`` allow. Its downstream runs then receive that
  state, so triggers apply as usual and the flow run always ends.

Importing this module does not import ``distributed``: installing the plugin costs nothing
to flows that do not use it.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import math
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runwright.context import context as runtime_context
from runwright.engine.executors import Executor
from runwright.engine.signals import ENDRUN
from runwright.engine.state import Failed, Mapped, Retrying, Running, State, utcnow
from runwright_dask.worker import (
    MAX_DEPTH,
    ChildCall,
    Slot,
    is_plan,
    run_child_calls,
    run_task_run,
)

if TYPE_CHECKING:
    from distributed import Client, Future

    from runwright.task import Task

logger = logging.getLogger("runwright.dask")

#: ``[plugins.dask]`` keys and their defaults ("" / 0 mean "let Dask decide").
CONFIG_DEFAULTS: dict[str, Any] = {
    "address": "",
    "local_processes": False,
    "n_workers": 0,
    "threads_per_worker": 0,
    "map_chunk_size": 0,
}

_CHUNKS_PER_THREAD = 4
_HEALTH_CHECK_SECONDS = 1.0


def plugin_config() -> dict[str, Any]:
    """The ``[plugins.dask]`` table merged over :data:`CONFIG_DEFAULTS`."""
    from runwright.config import get_config

    return get_config().plugin_section("dask", CONFIG_DEFAULTS)


class _Submission:
    """Client-side record of one Dask task: a task run, or a chunk of mapped children."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.future: Future | None = None
        self.lost_attempts = 0
        #: set when the outcome is known on the client (an infrastructure failure)
        self.states: list[State] | None = None


def _as_chunk(sub: _Submission) -> _Chunk:
    """``sub`` as the chunk of mapped children it is (every submission that is not a task run)."""
    assert isinstance(sub, _Chunk), sub
    return sub


class _TaskRun(_Submission):
    """A task run submitted by the flow runner; :meth:`DaskExecutor.submit` returns one."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        task = kwargs.get("task")
        super().__init__(str(getattr(task, "name", None) or getattr(fn, "__name__", "task-run")))
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.task: Task | None = task
        upstream = kwargs.get("upstream_states") or {}
        self.maps_children = any(getattr(edge, "mapped", False) for edge in upstream)
        self.done = threading.Event()
        self.waiters: list[Callable[[], None]] = []
        self.blockers = 0
        #: upstream runs passed by their (then unfinished) future, and that future
        self.bound: list[tuple[_TaskRun, Future]] = []
        #: a mapped parent's returned Mapped state, children stripped, and its chunks
        self.plan: Mapped | None = None
        self.chunks: list[_Chunk] = []
        self.open_chunks = 0

    def __repr__(self) -> str:
        return f"<dask task run {self.name!r}{' (done)' if self.done.is_set() else ''}>"


class _Chunk(_Submission):
    """Consecutive mapped children run as one Dask task."""

    def __init__(self, parent: _TaskRun, calls: list[ChildCall]) -> None:
        super().__init__(f"{parent.name}-children")
        self.parent = parent
        self.calls = calls
        #: the next child to run once this one is settled (children of a lost chunk)
        self.following: _Chunk | None = None


def _is_lost_worker(exc: BaseException | None) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker)


class DaskExecutor(Executor):
    """Runs task runs on a Dask cluster.

    :param address: a ``distributed`` scheduler address to connect to; None (or ``""``)
        starts a ``LocalCluster`` for the duration of the run. Default: ``[plugins.dask]
        address``.
    :param local_processes: the local cluster's workers are processes (True) or threads of
        this process (False). Default: ``[plugins.dask] local_processes``. Processes need
        the ``if __name__ == "__main__":`` guard in scripts (workers are spawned).
    :param map_chunk_size: mapped children per Dask task; None: ``[plugins.dask]
        map_chunk_size``, where 0 means about four chunks per worker thread.
    :param client_kwargs: passed to ``LocalCluster`` (``n_workers``, ``threads_per_worker``,
        ...) when no address is given, else to ``distributed.Client``.
    """

    def __init__(
        self,
        address: str | None = None,
        local_processes: bool | None = None,
        *,
        map_chunk_size: int | None = None,
        **client_kwargs: Any,
    ) -> None:
        super().__init__()
        config = plugin_config()
        self.address: str | None = (address if address is not None else config["address"]) or None
        self.local_processes = bool(config["local_processes"] if local_processes is None else local_processes)
        self.map_chunk_size = int(config["map_chunk_size"] if map_chunk_size is None else map_chunk_size)
        cluster_defaults = {k: config[k] for k in ("n_workers", "threads_per_worker") if config[k]}
        self.client_kwargs: dict[str, Any] = {**cluster_defaults, **client_kwargs} if self.address is None else dict(client_kwargs)
        self._on_worker = False
        self._client: Client | None = None
        self._cluster: Any = None
        self._lock = threading.RLock()
        self._shared: dict[int, tuple[Any, Future]] = {}
        self._keys = itertools.count()

    # -- pickling: a worker gets a copy without client, cluster or bookkeeping -------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "executor_id": self.executor_id,
            "address": self.address,
            "local_processes": self.local_processes,
            "map_chunk_size": self.map_chunk_size,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client_kwargs = {}
        self._on_worker = True
        self._client = None
        self._cluster = None
        self._lock = threading.RLock()
        self._shared = {}
        self._keys = itertools.count()

    @property  # type: ignore[override]
    def returns_futures(self) -> bool:  # type: ignore[override]
        """True on the client; on a worker the executor only plans mapped children."""
        return not self._worker_side()

    def _worker_side(self) -> bool:
        """True in a Dask task: a copy unpickled on a worker, or (threads) the same object
        called from a worker thread of this process."""
        return self._on_worker or _inside_dask_task()

    @property
    def client(self) -> Client:
        """The ``distributed.Client`` of the running session."""
        if self._client is None:
            raise ValueError("This executor has not been started: use `with executor.start():`")
        return self._client

    # -- session ---------------------------------------------------------------------------
    @contextmanager
    def start(self) -> Iterator[None]:
        """Connect to the cluster (or start a LocalCluster); close what was started on exit."""
        if self._on_worker:
            yield
            return
        from distributed import Client, LocalCluster

        if self.address is not None:
            client = Client(self.address, set_as_default=False, **self.client_kwargs)
            cluster = None
        else:
            from runwright.config import get_config

            options: dict[str, Any] = {
                "processes": self.local_processes,
                "dashboard_address": None,
                "silence_logs": logging.WARNING if get_config().get("debug") else logging.CRITICAL,
            }
            if self.local_processes:
                options["host"] = "127.0.0.1"  # not with threads: inproc:// then breaks
            options.update(self.client_kwargs)
            with warnings.catch_warnings():
                # dashboard_address=None still serves /health on 8787, or any free port
                warnings.filterwarnings("ignore", message="Port 8787 is already in use")
                cluster = LocalCluster(**options)
            try:
                client = Client(cluster, set_as_default=False)
            except BaseException:
                cluster.close()
                raise
        self._client, self._cluster = client, cluster
        try:
            yield
        finally:
            self._client = None
            self._cluster = None
            self._shared.clear()
            try:
                client.close()
            finally:
                if cluster is not None:
                    cluster.close()

    # -- submitting ------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Submit a task run; returns a handle that :meth:`wait` (or a later ``submit``'s
        arguments) resolves to its state. On a worker, calls ``fn`` at once."""
        if self._worker_side():
            return fn(*args, **kwargs)
        self.client  # noqa: B018 - raises when not started
        run = _TaskRun(fn, args, kwargs)
        upstream = _find_runs((args, kwargs))
        with self._lock:
            for up in upstream:
                # a mapped parent's children are known only once it has finished; a run not
                # yet submitted (itself waiting) has no future to pass on
                if not up.done.is_set() and (up.maps_children or up.future is None):
                    run.blockers += 1
                    up.waiters.append(functools.partial(self._unblock, run))
            ready = run.blockers == 0
        if ready:
            self._dispatch(run)
        return run

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        """On a worker (a mapped parent): plan the children; the client submits them.
        On the client: one :meth:`submit` per item."""
        if self._worker_side():
            return [ChildCall(fn, args) for args in zip(*iterables)]
        return [self.submit(fn, *args) for args in zip(*iterables)]

    def _unblock(self, run: _TaskRun) -> None:
        with self._lock:
            run.blockers -= 1
            ready = run.blockers == 0
        if ready:
            self._dispatch(run)

    def _next_key(self, name: str) -> str:
        return f"{name}-{next(self._keys)}-{uuid.uuid4().hex[:12]}"

    def _function_reference(self, fn: Callable[..., Any]) -> tuple[Callable[..., Any], Any]:
        """Send a bound method's owner (the FlowRunner, with its whole flow) to the cluster
        once per session, not once per task run. It is a Dask task (not scattered data), so
        the scheduler computes it again if the worker holding it dies."""
        owner = getattr(fn, "__self__", None)
        if owner is None or isinstance(owner, type):
            return fn, None
        with self._lock:
            entry = self._shared.get(id(owner))
            if entry is None:
                future = self.client.submit(_identity, owner, key=self._next_key("runner"), pure=False)
                entry = self._shared[id(owner)] = (owner, future)
        return _call_method, (entry[1], fn.__name__)

    def _dispatch(self, run: _TaskRun) -> None:
        """Submit ``run`` to Dask with its upstream runs as inputs."""
        try:
            inputs: list[tuple[str, Any]] = []
            bound: list[tuple[_TaskRun, Future]] = []
            args = _replace_runs(run.args, inputs, bound, 1)
            kwargs = _replace_runs(run.kwargs, inputs, bound, 1)
            run.bound = bound
            fn, method = self._function_reference(run.fn)
            if method is not None:
                args = (*method, *args)
            future = self.client.submit(
                run_task_run, fn, args, kwargs, *inputs, key=self._next_key(run.name), pure=False
            )
        except Exception as exc:  # noqa: BLE001 - e.g. an argument that cannot be pickled
            self._fail(run, f"could not be submitted to Dask: {exc!r}", exc)
            return
        run.future = future
        future.add_done_callback(lambda f, run=run: self._guarded(run, self._on_run_done, run, f))

    def _guarded(self, run: _TaskRun, callback: Callable[..., None], *args: Any) -> None:
        """Run a completion callback; a bug in it fails the run instead of hanging the flow."""
        try:
            callback(*args)
        except Exception as exc:
            logger.exception("runwright-dask: error while tracking %r", run)
            if not run.done.is_set():
                run.states = [Failed(f"runwright-dask could not track this task run: {exc!r}", result=exc)]
                self._settle(run)

    # -- completion ------------------------------------------------------------------------
    def _on_run_done(self, run: _TaskRun, future: Future) -> None:
        if future is not run.future or self._client is None:
            return  # a superseded attempt, or the session is over
        if future.status == "finished":
            if run.maps_children:
                state = future.result()
                if is_plan(state):
                    self._submit_children(run, state)
                    return
            self._settle(run)
            return
        exc = _exception_of(future)
        failed_upstream = [up for up, bound in run.bound if bound.status in ("error", "cancelled")]
        if failed_upstream:
            # the Dask task never ran: an upstream run's task failed; go again once every
            # upstream run has its final (client-side) state
            run.bound = []
            with self._lock:
                waiting = [up for up in failed_upstream if not up.done.is_set()]
                run.blockers += len(waiting)
                for up in waiting:
                    up.waiters.append(functools.partial(self._unblock, run))
                ready = run.blockers == 0
            if ready:
                self._dispatch(run)
            return
        self._lost_or_failed(run, exc, retry=lambda state: self._retry_run(run, state))

    def _retry_run(self, run: _TaskRun, state: State) -> None:
        run.kwargs = {**run.kwargs, "state": state}
        self._dispatch(run)

    def _lost_or_failed(self, sub: _Submission, exc: BaseException | None, retry: Callable[[State], None]) -> None:
        """A Dask task of ``sub`` (one task run) failed outside the task runner: retry it as
        the task allows, or give it a Failed state."""
        task = sub.task if isinstance(sub, _TaskRun) else _as_chunk(sub).parent.task
        lost = _is_lost_worker(exc)
        if lost:
            reason = f"its Dask worker died while running it ({exc})"
        else:
            reason = f"its Dask task failed outside the task runner: {exc!r}"
        max_retries = int(getattr(task, "max_retries", 0) or 0)
        context = self._context_of(sub)
        if lost and sub.lost_attempts < max_retries:
            sub.lost_attempts += 1
            delay = getattr(task, "retry_delay", None)
            retrying = Retrying(
                f"Retrying Task (after attempt {sub.lost_attempts} of {max_retries + 1}): {reason}",
                start_time=utcnow() + delay if delay else None,
                run_count=sub.lost_attempts,
            )
            retry(self._record_transition(sub, context, retrying))
            return
        self._fail(sub, reason, exc)

    def _fail(self, sub: _Submission, reason: str, exc: BaseException | None) -> None:
        context = self._context_of(sub)
        name = context.get("task_full_name") or sub.name
        failed = Failed(f"Task '{name}': {reason}", result=exc)
        sub.states = [self._record_transition(sub, context, failed)]
        if isinstance(sub, _TaskRun):
            self._settle(sub)
        else:
            self._chunk_settled(_as_chunk(sub))

    def _context_of(self, sub: _Submission) -> dict[str, Any]:
        if isinstance(sub, _TaskRun):
            context = dict(sub.kwargs.get("context") or {})
            context.setdefault("map_index", None)
        else:
            chunk = _as_chunk(sub)
            context = dict(chunk.parent.kwargs.get("context") or {})
            context["map_index"] = chunk.calls[0].index
        task = sub.task if isinstance(sub, _TaskRun) else _as_chunk(sub).parent.task
        if task is not None:
            index = context["map_index"]
            context.setdefault("task_name", task.name)
            context["task_full_name"] = task.name if index is None else f"{task.name}[{index}]"
        return context

    def _record_transition(self, sub: _Submission, context: dict[str, Any], new_state: State) -> State:
        """Send a transition made here (the worker is gone) through the task's handlers and
        the state-change hooks, in this process, with the task run's context."""
        run = sub if isinstance(sub, _TaskRun) else _as_chunk(sub).parent
        if run.task is None:
            return new_state
        owner = getattr(run.fn, "__self__", None)
        from runwright.engine.task_runner import TaskRunner

        runner_cls = getattr(owner, "task_runner_cls", None) or TaskRunner
        runner = runner_cls(task=run.task, state_handlers=run.kwargs.get("task_runner_state_handlers"))
        try:
            with runtime_context(context):
                return runner.handle_state_change(Running("Starting task run."), new_state)
        except ENDRUN as exc:
            return exc.state

    # -- mapped children -------------------------------------------------------------------
    def _chunk_size(self, count: int) -> int:
        if self.map_chunk_size > 0:
            return self.map_chunk_size
        threads = sum(self.client.nthreads().values()) or 1
        return max(1, math.ceil(count / (threads * _CHUNKS_PER_THREAD)))

    def _submit_children(self, run: _TaskRun, plan: Mapped) -> None:
        calls: list[ChildCall] = list(plan.map_states)
        plan.map_states = []
        size = self._chunk_size(len(calls))
        chunks = [_Chunk(run, calls[i : i + size]) for i in range(0, len(calls), size)]
        with self._lock:
            run.plan = plan
            run.chunks = chunks
            run.open_chunks = len(chunks)
        for chunk in chunks:
            self._dispatch_chunk(chunk)

    def _dispatch_chunk(self, chunk: _Chunk) -> None:
        try:
            future = self.client.submit(run_child_calls, chunk.calls, key=self._next_key(chunk.name), pure=False)
        except Exception as exc:  # noqa: BLE001
            self._fail_chunk(chunk, f"could not be submitted to Dask: {exc!r}", exc)
            return
        chunk.future = future
        future.add_done_callback(lambda f, c=chunk: self._guarded(c.parent, self._on_chunk_done, c, f))

    def _on_chunk_done(self, chunk: _Chunk, future: Future) -> None:
        if future is not chunk.future or self._client is None:
            return
        if future.status == "finished":
            self._chunk_settled(chunk)
            return
        exc = _exception_of(future)
        if len(chunk.calls) > 1 and _is_lost_worker(exc):
            # Run the children of a lost chunk again, alone and one after the other: the one
            # that killed its worker then fails (or retries) without taking the others along.
            singles = [_Chunk(chunk.parent, [call]) for call in chunk.calls]
            for single, following in itertools.pairwise(singles):
                single.following = following
            with self._lock:
                chunks = chunk.parent.chunks
                position = chunks.index(chunk)
                chunks[position : position + 1] = singles
                chunk.parent.open_chunks += len(singles) - 1
            self._dispatch_chunk(singles[0])
            return
        if len(chunk.calls) > 1:
            self._fail_chunk(chunk, f"its Dask task failed outside the task runner: {exc!r}", exc)
            return

        def retry(state: State) -> None:
            chunk.calls = [chunk.calls[0].with_state(state)]
            self._dispatch_chunk(chunk)

        self._lost_or_failed(chunk, exc, retry)

    def _fail_chunk(self, chunk: _Chunk, reason: str, exc: BaseException | None) -> None:
        states = []
        for call in chunk.calls:
            single = _Chunk(chunk.parent, [call])
            context = self._context_of(single)
            failed = Failed(f"Task '{context.get('task_full_name')}': {reason}", result=exc)
            states.append(self._record_transition(single, context, failed))
        chunk.states = states
        self._chunk_settled(chunk)

    def _chunk_settled(self, chunk: _Chunk) -> None:
        if chunk.following is not None:
            self._dispatch_chunk(chunk.following)
        parent = chunk.parent
        with self._lock:
            parent.open_chunks -= 1
            last = parent.open_chunks == 0
        if last:
            self._settle(parent)

    def _settle(self, run: _TaskRun) -> None:
        with self._lock:
            if run.done.is_set():
                return
            run.done.set()
            waiters, run.waiters = run.waiters, []
        for waiter in waiters:
            waiter()

    # -- waiting ---------------------------------------------------------------------------
    def wait(self, futures: Any) -> Any:
        """Block until every task run in ``futures`` has finished (mapped children and
        retries included); return ``futures`` with each replaced by its final state."""
        if self._worker_side():
            return futures
        runs = _find_runs(futures)
        for run in runs:
            while not run.done.wait(_HEALTH_CHECK_SECONDS):
                self._check_connection(runs)
        values = self._gather(runs)
        return _substitute(futures, values, 0)

    def _check_connection(self, runs: list[_TaskRun]) -> None:
        client = self._client
        status = getattr(client, "status", "closed")
        if client is not None and status in ("running", "newly-created", "connecting"):
            return
        for run in runs:
            if not run.done.is_set():
                run.states = [Failed(f"Task '{run.name}': lost the connection to the Dask scheduler ({status}).")]
                self._settle(run)

    def _gather(self, runs: list[_TaskRun]) -> dict[int, State]:
        """Fetch the final states of finished runs, with one ``gather`` for all of them."""
        needed: list[Future] = []
        for run in runs:
            if run.states is None and run.plan is None and run.future is not None:
                needed.append(run.future)
            for chunk in run.chunks:
                if chunk.states is None and chunk.future is not None:
                    needed.append(chunk.future)
        fetched = dict(zip((f.key for f in needed), self._gather_futures(needed)))
        values: dict[int, State] = {}
        for run in runs:
            if run.states is not None:
                values[id(run)] = run.states[0]
            elif run.plan is not None:
                children: list[State] = []
                for chunk in run.chunks:
                    children.extend(chunk.states if chunk.states is not None else fetched[chunk.future.key])  # type: ignore[union-attr]
                state = run.plan
                state.map_states = children
                values[id(run)] = state
            else:
                values[id(run)] = fetched[run.future.key]  # type: ignore[union-attr]
        return values

    def _gather_futures(self, futures: list[Future]) -> list[Any]:
        if not futures:
            return []
        try:
            return list(self.client.gather(futures))
        except Exception:  # noqa: BLE001 - one lost result: fetch one by one, fail only it
            out = []
            for future in futures:
                try:
                    out.append(future.result())
                except Exception as exc:  # noqa: BLE001
                    out.append(Failed(f"The result of Dask task {future.key} was lost: {exc!r}", result=exc))
            return out


def _inside_dask_task() -> bool:
    from distributed.worker import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def _identity(value: Any) -> Any:
    return value


def _call_method(owner: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(owner, name)(*args, **kwargs)


def _exception_of(future: Future) -> BaseException | None:
    if future.status == "cancelled":
        from concurrent.futures import CancelledError

        return CancelledError(f"Dask task {future.key} was cancelled")
    try:
        return future.exception(timeout=30)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001
        return exc


def _find_runs(obj: Any, depth: int = 0, out: list[_TaskRun] | None = None) -> list[_TaskRun]:
    """The task-run handles in ``obj`` (arguments, a dict of states, a Mapped state)."""
    out = [] if out is None else out
    if isinstance(obj, _TaskRun):
        out.append(obj)
    elif depth >= MAX_DEPTH:
        pass
    elif isinstance(obj, Mapped):
        for value in obj.map_states:
            _find_runs(value, depth + 1, out)
    elif isinstance(obj, dict):
        for value in obj.values():
            _find_runs(value, depth + 1, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _find_runs(value, depth + 1, out)
    return out


def _replace_runs(obj: Any, inputs: list[tuple[str, Any]], bound: list[tuple[_TaskRun, Future]], depth: int) -> Any:
    """``obj`` with each task-run handle replaced by a :class:`Slot` naming its input."""
    if isinstance(obj, _TaskRun):
        inputs.append(_input_of(obj, bound))
        return Slot(len(inputs) - 1)
    if depth >= MAX_DEPTH:
        return obj
    if isinstance(obj, dict):
        return {key: _replace_runs(value, inputs, bound, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_replace_runs(value, inputs, bound, depth + 1) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_replace_runs(value, inputs, bound, depth + 1) for value in obj)
    return obj


def _input_of(run: _TaskRun, bound: list[tuple[_TaskRun, Future]]) -> tuple[str, Any]:
    """How an upstream run reaches a worker: its client-side state, its future, or (mapped
    parent) its state without children plus the children's futures or states."""
    if run.states is not None:
        return ("value", run.states[0])
    if run.plan is not None:
        parent = copy.copy(run.plan)
        parent.map_states = []
        parts = [chunk.states if chunk.states is not None else chunk.future for chunk in run.chunks]
        return ("mapped", (parent, parts))
    assert run.future is not None
    if not run.done.is_set():
        bound.append((run, run.future))
    return ("value", run.future)


def _substitute(obj: Any, values: dict[int, State], depth: int) -> Any:
    if isinstance(obj, _TaskRun):
        return values[id(obj)]
    if depth >= MAX_DEPTH:
        return obj
    if isinstance(obj, Mapped):
        if any(isinstance(s, _TaskRun) for s in obj.map_states):
            obj.map_states = [_substitute(s, values, depth + 1) for s in obj.map_states]
        return obj
    if isinstance(obj, dict):
        return {key: _substitute(value, values, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_substitute(value, values, depth + 1) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_substitute(value, values, depth + 1) for value in obj)
    return obj
