"""DaskExecutor: run task runs, mapped children included, on a Dask ``distributed`` cluster.

How a flow run maps onto Dask (the client side is split by concern: the cluster session in
``session.py``, the bookkeeping records in ``submissions.py``, chunking in ``chunking.py``,
the failure policy in ``failures.py``; the worker side is ``worker.py``):

* every task run is one Dask task; the upstream task runs named in its ``upstream_states``
  are passed as Dask futures, so results move from worker to worker and the scheduler
  orders the work. No other argument is looked into;
* a mapped parent runs on a worker and returns a *plan* (its Mapped state whose children are
  :class:`~runwright_dask.worker.ChildCall`); the client then submits the children in chunks.
  No worker ever waits for other tasks;
* a task run downstream of a mapped parent is submitted once every child has finished
  (retries included) and receives the children's futures as separate inputs;
* a task run lost with its worker (``KilledWorker`` once the scheduler's
  ``distributed.scheduler.allowed-failures`` is exceeded), or whose Dask task failed outside
  the task runner, is recorded through the task runner in this process (see
  ``failures.py``): Failed, or Retrying and submitted again as the task's retries allow.
  Its downstream runs then receive that state, so triggers apply as usual and the flow run
  always ends.

Importing this module does not import ``distributed``: installing the plugin costs nothing
to flows that do not use it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runwright.engine.executors import Executor, LostRun
from runwright.engine.executors.base import FinishedRunCallback
from runwright.engine.state import Failed, Mapped, State
from runwright_dask.chunking import children_states, chunk_size, cut_into_chunks, replace_chunk
from runwright_dask.failures import FailurePolicy, exception_of, lost_run_of, record_child, runs_again
from runwright_dask.keeping import StateKeeper
from runwright_dask.recompute import AlreadyRan, lost_after_finishing, lost_key, register_guard
from runwright_dask.session import cluster_session, connection_is_usable, inside_dask_task, plugin_config
from runwright_dask.submissions import Chunk, Submission, TaskRun, input_of, is_kept, lost_input, wait_until_kept
from runwright_dask.worker import ChildCall, Slot, call_method, identity, is_plan, run_child_calls, run_task_run

if TYPE_CHECKING:
    from distributed import Client, Future

logger = logging.getLogger("runwright.dask")

_HEALTH_CHECK_SECONDS = 1.0
#: times one run is sent again because the flow runner's Dask task was lost under it
_RUNNER_LOSSES = 5
#: times one run's outcome is recovered after its result was lost before it reached here
_RECOVERIES = 5


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
        self._finished_callback: FinishedRunCallback | None = None
        self._reset()

    def _reset(self) -> None:
        self._client: Client | None = None
        self._lock = threading.RLock()
        self._shared: dict[int, tuple[Any, Future]] = {}
        self._keys = itertools.count()
        self._keeper: StateKeeper | None = None
        self._failures = FailurePolicy(self._dispatch, self._settle, self._dispatch_chunk, self._chunk_settled)

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
        self._finished_callback = None
        self._reset()

    @property  # type: ignore[override]
    def task_hooks_in_process(self) -> bool:  # type: ignore[override]
        """False unless the workers are threads of a LocalCluster started in this process."""
        return self.address is None and not self.local_processes

    def report_finished_runs(self, callback: FinishedRunCallback) -> bool:
        """Tell ``callback`` (in this process) of each task run as it finishes on a worker
        process: its state's class comes with Dask's completion message (``Future.type``),
        so the report waits for no transfer."""
        if self.task_hooks_in_process:
            return False
        self._finished_callback = callback
        return True

    def _report_finished(self, run: TaskRun, state_type: Any, map_count: int | None = None) -> None:
        callback = self._finished_callback
        if callback is None or run.task is None or not isinstance(state_type, type) or not issubclass(state_type, State):
            return
        if map_count is None and issubclass(state_type, Mapped):
            map_count = 0  # a parent with no children (a plan has at least one)
        try:
            callback(run.task, state_type, map_count)
        except Exception:  # a listener never breaks the run
            logger.exception("runwright-dask: error in a finished-run callback for %r", run)

    @property  # type: ignore[override]
    def returns_futures(self) -> bool:  # type: ignore[override]
        """True on the client; on a worker the executor only plans mapped children."""
        return not self._worker_side()

    def _worker_side(self) -> bool:
        """True in a Dask task: a copy unpickled on a worker, or (threads) the same object
        called from a worker thread of this process."""
        return self._on_worker or inside_dask_task()

    @property
    def client(self) -> Client:
        """The ``distributed.Client`` of the running session."""
        if self._client is None:
            raise ValueError("This executor has not been started: use `with executor.start():`")
        return self._client

    @contextmanager
    def start(self) -> Iterator[None]:
        """Connect to the cluster (or start a LocalCluster); close what was started on exit."""
        if self._on_worker:
            yield
            return
        with cluster_session(self.address, self.local_processes, self.client_kwargs) as client:
            register_guard(client)
            self._failures = FailurePolicy(self._dispatch, self._settle, self._dispatch_chunk, self._chunk_settled)
            self._client = client
            self._keeper = StateKeeper(client)
            try:
                yield
            finally:
                self._failures.close()
                self._keeper.close()
                self._keeper = None
                self._client = None
                self._shared.clear()

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self, fn: Callable[..., Any], *args: Any, upstream_states: Mapping[Any, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Submit a task run; returns a handle that :meth:`wait` (or a later submission's
        ``upstream_states``) resolves to its state. On a worker, calls ``fn`` at once."""
        if self._worker_side():
            if upstream_states is None:
                return fn(*args, **kwargs)
            return fn(*args, upstream_states=upstream_states, **kwargs)
        self.client  # noqa: B018 - raises when not started
        run = TaskRun(fn, args, kwargs, upstream_states)
        with self._lock:
            for up in run.upstream_runs():
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
            return [ChildCall(fn, args) for args in zip(*iterables, strict=False)]
        return [self.submit(fn, *args) for args in zip(*iterables, strict=False)]

    def _unblock(self, run: TaskRun) -> None:
        with self._lock:
            run.blockers -= 1
            ready = run.blockers == 0
        if ready:
            self._dispatch(run)

    def _next_key(self, name: str) -> str:
        return f"{name}-{next(self._keys)}-{uuid.uuid4().hex[:12]}"

    def _function_reference(self, fn: Callable[..., Any]) -> tuple[Callable[..., Any], Any, Future | None]:
        """Send a bound method's owner (the FlowRunner, with its whole flow) to the cluster
        once per session, not once per task run: ``(call_method, (owner_future, name),
        owner_future)``, or ``(fn, None, None)`` for a plain function. The owner is a Dask
        task (not scattered data), so the scheduler computes it again if the worker holding
        it dies; when that fails too (it was being computed there), :meth:`_runner_lost`
        sends it again under a new key."""
        owner = getattr(fn, "__self__", None)
        if owner is None or isinstance(owner, type):
            return fn, None, None
        with self._lock:
            entry = self._shared.get(id(owner))
            if entry is None:
                future = self.client.submit(identity, owner, key=self._next_key("runner"), pure=False)
                entry = self._shared[id(owner)] = (owner, future)
        return call_method, (entry[1], fn.__name__), entry[1]

    def _runner_lost(self, run: TaskRun, exc: BaseException | None) -> bool:
        """True when ``run``'s Dask task never ran because the flow runner's own Dask task
        was lost (its worker died while computing it): that future is then replaced by a new
        one, which the run's next dispatch uses. The run is not to blame."""
        runner = run.runner
        if runner is None or getattr(exc, "task", None) != runner.key or runner.status not in ("error", "cancelled", "lost"):
            return False
        run.runner_losses += 1
        if run.runner_losses > _RUNNER_LOSSES:
            return False  # the runner cannot be kept on this cluster: the run is lost
        with self._lock:
            for owner_id, (owner, future) in list(self._shared.items()):
                if future is runner:  # the first run to notice replaces it; the others reuse the new one
                    fresh = self.client.submit(identity, owner, key=self._next_key("runner"), pure=False)
                    self._shared[owner_id] = (owner, fresh)
        logger.warning("runwright-dask: the flow runner's Dask task %s was lost with its worker; sending it again", runner.key)
        return True

    def _dispatch(self, run: TaskRun) -> None:
        """Submit ``run`` to Dask with the upstream runs of its ``upstream_states`` as inputs
        (later, while a suspect has its turn: see ``failures.py``)."""
        if self._failures.holds(run, functools.partial(self._dispatch, run)):
            return
        try:
            inputs: list[tuple[str, Any]] = []
            bound: list[tuple[TaskRun, Future]] = []
            upstream = run.upstream_states
            if upstream is not None:
                upstream = dict(upstream)
                for key, value in upstream.items():
                    if isinstance(value, TaskRun):
                        inputs.append(input_of(value, bound))
                        upstream[key] = Slot(len(inputs) - 1)
            run.bound = bound
            fn, method, run.runner = self._function_reference(run.fn)
            args = run.args if method is None else (*method, *run.args)
            key = self._next_key(run.name)
            self._failures.started(key)
            future = self.client.submit(run_task_run, fn, args, run.kwargs, upstream, *inputs, key=key, pure=False)
        except Exception as exc:  # noqa: BLE001 - e.g. an argument that cannot be pickled
            self._failures.ended(key)
            self._failures.run_lost(run, LostRun(f"could not be submitted to Dask: {exc!r}", exc))
            return
        run.future = future
        future.add_done_callback(lambda f, run=run: self._tracked(run, self._on_run_done, run, f))

    def _tracked(self, run: TaskRun, callback: Callable[..., bool | None], sub: Submission, future: Future) -> None:
        """A Dask task's completion: ``callback`` returns True when it handed the finished
        future to the keeper (which then ends it, see :meth:`_kept`); else it ends here."""
        handed = False
        try:
            handed = self._guarded(run, callback, sub, future) is True
        finally:
            if not handed:
                self._failures.ended(str(future.key))

    def _guarded(self, run: TaskRun, callback: Callable[..., Any], *args: Any) -> Any:
        """Run a completion callback; a bug in it fails the run instead of hanging the flow."""
        try:
            return callback(*args)
        except Exception as exc:
            logger.exception("runwright-dask: error while tracking %r", run)
            if not run.done.is_set():
                run.states = [Failed(f"runwright-dask could not track this task run: {exc!r}", result=exc)]
                self._settle(run)
        return None

    # -- completion ------------------------------------------------------------------------
    def _on_run_done(self, run: TaskRun, future: Future) -> bool:
        """True when ``future`` went to the keeper (see :meth:`_tracked`)."""
        if future is not run.future or self._client is None:
            return False  # a superseded attempt, or the session is over
        if future.status == "finished":
            if run.suspect:
                self._failures.release(run)
            if run.maps_children:
                state = future.result()
                if is_plan(state):
                    self._report_finished(run, type(state), len(state.map_states))
                    self._submit_children(run, state)
                    return False
                run.states = [state]
                self._report_finished(run, type(state))
                self._settle(run)
                return False
            if self._finished_callback is not None:
                self._report_finished(run, future.type)
            self._keep(run, future)
            self._settle(run)
            return True
        exc = exception_of(future)
        if self._runner_lost(run, exc):
            self._dispatch(run)  # never ran: as it was (a suspect keeps its turn)
            return False
        if isinstance(exc, AlreadyRan) and exc.key == future.key and not run.maps_children:
            # it finished, and its result was lost with its worker before this callback ran
            # (Dask sent the same key again and the guard refused it): its outcome is
            # unknown here, as for a value the keeper could not fetch
            if run.suspect:
                self._failures.release(run)
            self._recover_outcome(run, exc)
            self._settle(run)
            return False
        failed_upstream = [up for up, bound in run.bound if bound.status in ("error", "cancelled")]
        for up in run.upstream_runs():  # an input's result lost with its worker (recompute.py)
            if up not in failed_upstream and lost_input(up, lost_key(exc), isinstance(exc, AlreadyRan)):
                failed_upstream.append(up)
        if failed_upstream:
            # the Dask task never ran: an upstream run's task failed, or a finished one's
            # result was lost; go again once every upstream run has its final (client-side)
            # state, kept here for a finished one (a suspect gives up its turn)
            if run.suspect:
                self._failures.release(run)
            run.bound = []
            if any(up.done.is_set() and not is_kept(up) for up in failed_upstream):
                # wait off Dask's callback thread: getting a value may take another Dask
                # task's completion (a run again for its state, see _recover_outcome)
                threading.Thread(
                    target=self._when_kept, args=(run, failed_upstream), name="runwright-dask-wait-kept", daemon=True
                ).start()
                return False
            self._when_done(run, failed_upstream)
            return False
        self._failures.run_lost(run, lost_run_of(exc))
        return False

    def _when_kept(self, run: TaskRun, ups: list[TaskRun]) -> None:
        for up in ups:
            if up.done.is_set():
                wait_until_kept(up)
        self._when_done(run, ups)

    def _when_done(self, run: TaskRun, ups: list[TaskRun]) -> None:
        """Dispatch ``run`` again once each of ``ups`` has settled."""
        with self._lock:
            waiting = [up for up in ups if not up.done.is_set()]
            run.blockers += len(waiting)
            for up in waiting:
                up.waiters.append(functools.partial(self._unblock, run))
            ready = run.blockers == 0
        if ready:
            self._dispatch(run)

    def _keep(self, sub: Submission, future: Future) -> None:
        """Fetch a finished Dask task's value into this process in the background (see
        ``keeping.py``); the run goes on at once, with its future."""
        assert self._keeper is not None
        self._keeper.keep(future, functools.partial(self._kept, sub, future))

    def _kept(self, sub: Submission, future: Future, value: Any, error: BaseException | None) -> None:
        try:
            if error is not None and self._client is not None:
                # its worker died before the state reached this process: the outcome is
                # unknown here, so it is recorded as lost (where a backend holding the
                # finished state gives it back), and what runs again keeps its state here
                self._recover_outcome(sub, error)
                return
            if error is not None:
                self._set_kept(sub, self._lost_states(sub, error))
                return
            self._set_kept(sub, value)
        finally:
            self._failures.ended(str(future.key))

    @staticmethod
    def _lost_states(sub: Submission, error: BaseException) -> Any:
        reason = lost_after_finishing(error)
        if isinstance(sub, Chunk):
            return [Failed(f"Task '{sub.parent.name}[{call.index}]': {reason}", result=error) for call in sub.calls]
        return Failed(f"Task '{sub.name}': {reason}", result=error)

    @staticmethod
    def _set_kept(sub: Submission, value: Any) -> None:
        target = sub.kept_for or sub
        target.kept = value
        target.kept_event.set()

    def _recover_outcome(self, sub: Submission, error: BaseException) -> None:
        """``sub`` finished on a worker that died before its value reached this process. Each
        of its runs is recorded as lost with that worker, not blamed (``failures.py``): a
        backend that holds its finished state gives that state back (nothing runs again);
        otherwise it is Retrying, counting no attempt, and run again to get its state. A run
        again whose value is lost the same way is recovered the same way, up to
        :data:`_RECOVERIES` times."""
        if sub.kept_for is not None:
            sub = sub.kept_for
        sub.recoveries += 1
        if sub.recoveries > _RECOVERIES:
            self._set_kept(sub, self._lost_states(sub, error))
            return
        lost = LostRun(f"its Dask worker died before its state reached the flow runner ({error!r})", error, blamed=False)
        if isinstance(sub, Chunk):
            states = [record_child(sub, call, lost) for call in sub.calls]
            if not any(runs_again(state) for state in states):
                self._set_kept(sub, states)
                return
            logger.warning("runwright-dask: %r finished on a worker that died before its states arrived; running it again", sub)
            # the children whose finished state came back end with it at once
            chunk = Chunk(sub.parent, [call.with_state(state) for call, state in zip(sub.calls, states, strict=True)])
            chunk.kept_for = sub
            self._dispatch_chunk(chunk)
            return
        assert isinstance(sub, TaskRun)
        state = self._failures.record_run(sub, lost)
        if not runs_again(state):
            self._set_kept(sub, state)
            return
        logger.warning("runwright-dask: %r finished on a worker that died before its state arrived; running it again", sub)
        run = TaskRun(sub.fn, sub.args, {**sub.kwargs, "state": state}, sub.upstream_states)
        run.kept_for = sub
        self._dispatch(run)

    # -- mapped children -------------------------------------------------------------------
    def _submit_children(self, run: TaskRun, plan: Any) -> None:
        threads = sum(self.client.nthreads().values()) if self.map_chunk_size <= 0 else 0
        chunks = cut_into_chunks(run, plan, chunk_size(self.map_chunk_size, threads, len(plan.map_states)))
        with self._lock:
            run.plan = plan
            run.chunks = chunks
            run.open_chunks = len(chunks)
        if not chunks:
            self._settle(run)
        for chunk in chunks:
            self._dispatch_chunk(chunk)

    def _dispatch_chunk(self, chunk: Chunk) -> None:
        if self._failures.holds(chunk, functools.partial(self._dispatch_chunk, chunk)):
            return
        key = self._next_key(chunk.name)
        try:
            self._failures.started(key)
            future = self.client.submit(run_child_calls, chunk.calls, key=key, pure=False)
        except Exception as exc:  # noqa: BLE001
            self._failures.ended(key)
            self._failures.chunk_lost(chunk, LostRun(f"could not be submitted to Dask: {exc!r}", exc), self._replace_chunk)
            return
        chunk.future = future
        future.add_done_callback(lambda f, c=chunk: self._tracked(c.parent, self._on_chunk_done, c, f))

    def _on_chunk_done(self, chunk: Chunk, future: Future) -> bool:
        """True when ``future`` went to the keeper (see :meth:`_tracked`)."""
        if future is not chunk.future or self._client is None:
            return False
        if future.status == "finished":
            if chunk.suspect:
                self._failures.release(chunk)
            self._keep(chunk, future)
            self._chunk_settled(chunk)
            return True
        exc = exception_of(future)
        if (isinstance(exc, AlreadyRan) and exc.key == future.key) or chunk.kept_for is not None:
            # it finished and its result was lost before this callback ran, or it ran again
            # for its states (children that finished before) and was lost: recover them
            if chunk.suspect:
                self._failures.release(chunk)
            self._recover_outcome(chunk, exc if exc is not None else RuntimeError("lost"))
            self._chunk_settled(chunk)
            return False
        self._failures.chunk_lost(chunk, lost_run_of(exc), self._replace_chunk)
        return False

    def _replace_chunk(self, chunk: Chunk, replacements: list[Chunk]) -> None:
        with self._lock:
            replace_chunk(chunk.parent, chunk, replacements)

    def _chunk_settled(self, chunk: Chunk) -> None:
        if chunk.kept_for is not None:
            return  # run again for its state: the keeper passes it on
        parent = chunk.parent
        with self._lock:
            parent.open_chunks -= 1
            last = parent.open_chunks == 0
        if last:
            self._settle(parent)

    def _settle(self, run: TaskRun) -> None:
        if run.kept_for is not None and run.states is not None:
            self._set_kept(run, run.states[0])
        with self._lock:
            if run.done.is_set():
                return
            run.done.set()
            waiters, run.waiters = run.waiters, []
        for waiter in waiters:
            waiter()

    # -- waiting ---------------------------------------------------------------------------
    def wait(self, futures: Any) -> Any:
        """Block until every task run in ``futures`` (one handle, a list/tuple of them or a
        dict's values) has finished, mapped children and retries included; return the same
        shape with each handle replaced by its final state."""
        if self._worker_side():
            return futures
        if isinstance(futures, TaskRun):
            values = [futures]
        elif isinstance(futures, dict):
            values = list(futures.values())
        elif isinstance(futures, (list, tuple)):
            values = list(futures)
        else:
            return futures
        runs = [value for value in values if isinstance(value, TaskRun)]
        if self._keeper is not None:
            self._keeper.flush()
        for run in runs:
            while not run.done.wait(_HEALTH_CHECK_SECONDS):
                self._check_connection(runs)
        states = self._gather(runs)

        def final(value: Any) -> Any:
            return states[id(value)] if isinstance(value, TaskRun) else value

        if isinstance(futures, TaskRun):
            return states[id(futures)]
        if isinstance(futures, dict):
            return {key: final(value) for key, value in futures.items()}
        return type(futures)(final(value) for value in futures)

    def _check_connection(self, runs: list[TaskRun]) -> None:
        usable, status = connection_is_usable(self._client)
        if usable:
            return
        for run in runs:
            if not run.done.is_set():
                run.states = [Failed(f"Task '{run.name}': lost the connection to the Dask scheduler ({status}).")]
                self._settle(run)

    def _gather(self, runs: list[TaskRun]) -> dict[int, State]:
        """The final states of finished runs: recorded here, or kept as they finished."""
        values: dict[int, State] = {}
        for run in runs:
            if run.states is not None:
                values[id(run)] = run.states[0]
            elif run.plan is not None:
                state = run.plan
                state.map_states = children_states(run, self._kept_value)
                values[id(run)] = state
            else:
                values[id(run)] = self._kept_value(run)
        return values

    def _kept_value(self, sub: Submission) -> Any:
        """``sub``'s value, once the keeper has it (or a Failed state if the scheduler is gone)."""
        while not sub.kept_event.wait(_HEALTH_CHECK_SECONDS):
            usable, status = connection_is_usable(self._client)
            if not usable:
                failed = Failed(f"Task '{sub.name}': lost the connection to the Dask scheduler ({status}).")
                return [failed for _ in sub.calls] if isinstance(sub, Chunk) else failed
        return sub.kept

