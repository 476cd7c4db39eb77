"""The runwright-cache plugin object (entry point ``cache = runwright_cache.plugin:plugin``):
look up cached states before a task runs, store them after.

:data:`plugin`, a :class:`CachePlugin`, owns the process's cache stores (one per configured
path and settings) and implements:

* ``runwright_register_cache_validators``: the seed's validators and the named policies;
* ``runwright_check_task_is_cached``: for a task with ``cache_for``, the newest stored entry
  of the task (same flow, slug and map index) that is no older than ``cache_for``, not
  expired, valid for the task's validator or policy, and whose result can be read back;
* ``runwright_task_state_change`` (scoped with ``for_tasks`` to tasks with ``cache_for``:
  the runs of other tasks do not call it): the result of a successful run of a task with
  ``cache_for`` is written by its result handler, then the Cached state the engine makes of
  it is stored; a run whose result could not be kept ends ``Success`` ("its result was not
  cached: ..."), never reported Cached;
* ``runwright_register_commands``: ``runwright cache list`` and ``runwright cache clear``.

Nothing is looked up or stored when the run's backend answers cache checks itself
(``runwright.backends.active_backend().answers_cache_checks``, the cloud backend): the
backend keeps cached states for its runs then. A cache problem never fails a run: it is a
warning, and the task runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runwright.backends import active_backend
from runwright.config import Config, get_config
from runwright.engine.result import Result
from runwright.engine.signals import ENDRUN
from runwright.engine.state import Cached, Running, State, Success
from runwright.hookspecs import for_tasks, hookimpl
from runwright.plugins import get_plugin_manager
from runwright_cache.cache_validators import VALIDATORS
from runwright_cache.identity import TaskIdentity
from runwright_cache.policies import POLICIES, CachePolicy
from runwright_cache.store import CacheEntry, CacheStore, CacheStoreError

if TYPE_CHECKING:
    import click

    from runwright.engine.task_runner import TaskRunner
    from runwright.task import Task

logger = logging.getLogger("runwright.cache")

#: The ``[plugins.cache]`` keys and their defaults.
DEFAULTS: dict[str, Any] = {
    "path": "~/.runwright/cache.db",
    "busy_timeout": 30.0,
    "max_entries_per_task": 10,
}


#: How late a lookup may see another process's commit to the cache database, within one flow
#: run (each flow run's first lookup always checks): saves a query per cache hit.
MAX_STALENESS = 0.01


def _has_cache_for(task: Task) -> bool:
    """The tasks whose runs the cache watches (``for_tasks``): those with ``cache_for``."""
    return task.cache_for is not None


class CachePlugin:
    """The cache plugin's hooks and the state they share: the stores and the warnings given."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, float, int], CacheStore] = {}
        self._current: tuple[Config, CacheStore] | None = None
        self._stores_lock = threading.Lock()
        self._warned: set[str] = set()

    def store(self) -> CacheStore:
        """The store configured by ``[plugins.cache]`` (one per path and settings)."""
        config = get_config()
        current = self._current
        if current is not None and current[0] is config:
            return current[1]
        settings = config.plugin_section("cache", DEFAULTS)
        key = (str(settings["path"]), float(settings["busy_timeout"]), int(settings["max_entries_per_task"]))
        with self._stores_lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = CacheStore(*key)
            self._current = (config, store)
        return store

    def _warn_once(self, message: str) -> None:
        """Log a store problem once (not once per task) until the store works again."""
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s", message)

    # -- registration ----------------------------------------------------------------------
    @hookimpl
    def runwright_register_cache_validators(self, register: Callable[..., None]) -> None:
        for name, validator in VALIDATORS.items():
            register(name, validator)
        for name, policy in POLICIES.items():
            register(name, policy)

    @hookimpl
    def runwright_register_config(self, register: Callable[..., None]) -> None:
        register("plugins.cache", DEFAULTS)

    @hookimpl
    def runwright_register_commands(self, cli: click.Group) -> None:
        from runwright_cache.cli import make_cache_command

        cli.add_command(make_cache_command(self.store))

    # -- lookups ---------------------------------------------------------------------------
    @hookimpl
    def runwright_flow_run_initialize(self, runner: Any, flow: Any, setup: Any) -> None:
        """A flow run starts: its first lookup sees every commit made before it."""
        for store in list(self._stores.values()):
            store.expect_changes()

    @hookimpl
    def runwright_check_task_is_cached(
        self, runner: TaskRunner, task: Task, inputs: dict[str, Any], parameters: dict[str, Any]
    ) -> Cached | None:
        if task.cache_for is None or _backend_answers_cache_checks(runner):
            return None
        store = self.store()
        identity = TaskIdentity.of_current_run(task)
        try:
            entries = store.candidates(
                identity, newer_than=time.time() - task.cache_for.total_seconds(), max_staleness=MAX_STALENESS
            )
        except CacheStoreError as exc:
            self._warn_once(f"Task '{identity}': cache lookup failed, running the task. {exc}")
            return None
        if self._warned:
            self._warned.clear()
        if not entries:
            return None
        validator = task.cache_validator
        policy_key: str | None = None
        for entry in entries:
            if isinstance(validator, CachePolicy):
                if policy_key is None:
                    try:
                        policy_key = validator.compute_key(task, inputs, parameters)
                    except Exception as exc:  # noqa: BLE001 - an unkeyable input is a miss
                        logger.warning("Task '%s': no cache key (%s); running the task.", identity, exc)
                        return None
                if entry.cache_key != policy_key:
                    continue
                candidate = self._load(store, entry)
            else:
                candidate = self._load(store, entry)
                if candidate is None or not validator(candidate, inputs, parameters):
                    continue
            if candidate is not None and self._read_result(store, entry, candidate):
                return candidate
        return None

    def _load(self, store: CacheStore, entry: CacheEntry) -> Cached | None:
        try:
            return entry.state()
        except Exception as exc:  # noqa: BLE001 - a damaged entry is dropped, never fatal
            logger.warning("Task '%s': cache entry %s is unreadable (%s); it is removed.", entry.identity, entry.id, exc)
            self._forget(store, entry)
            return None

    def _read_result(self, store: CacheStore, entry: CacheEntry, candidate: Cached) -> bool:
        """Read the cached result back now, so a missing or corrupt result file is a miss (and
        the entry is dropped) and an older entry can still be tried."""
        try:
            candidate._result = get_plugin_manager().results.load(candidate._result)
        except Exception as exc:  # noqa: BLE001 - an unreadable result is a miss, never a failure
            logger.warning(
                "Task '%s': the cached result could not be read (%s); the entry is removed and the task runs.",
                entry.identity,
                exc,
            )
            self._forget(store, entry)
            return False
        return True

    def _forget(self, store: CacheStore, entry: CacheEntry) -> None:
        try:
            store.delete(entry)
        except CacheStoreError as exc:
            self._warn_once(str(exc))

    # -- storing ---------------------------------------------------------------------------
    @hookimpl
    @for_tasks(_has_cache_for)
    def runwright_task_state_change(self, runner: TaskRunner, task: Task, old_state: State, new_state: State) -> None:
        """Store a cached run in two steps, so that no run is reported Cached that is not:

        1. Running -> Success of a task with ``cache_for``: its result is written by its
           result handler now, before the engine makes the Cached state; when that fails
           (no handler installed, a full disk) the task run ends here, ``Success`` with a
           message saying the result was not cached, and never becomes Cached;
        2. Success -> Cached (``cache_result``): the state is stored; when the cache store
           fails, the run ends ``Success`` with that message too (this Cached state was
           already seen by the other plugins' hooks: the one window left).
        """
        if task.cache_for is None or not isinstance(new_state, Success) or isinstance(old_state, Cached):
            return
        if isinstance(new_state, Cached):
            # Only a Cached state made by ``cache_result`` after a run; a cache hit comes from Pending.
            if isinstance(old_state, (Running, Success)) and not _backend_answers_cache_checks(runner):
                self._store_or_end(task, new_state)
        elif isinstance(old_state, Running) and type(new_state) is Success and not _backend_answers_cache_checks(runner):
            self._store_result_or_end(task, new_state)

    def _store_result_or_end(self, task: Task, state: Success) -> None:
        try:
            get_plugin_manager().results.store(state._result)
        except Exception as exc:
            identity = TaskIdentity.of_current_run(task)
            logger.warning("Task '%s': its result was not cached: %s", identity, exc)
            state.message = _not_cached(state.message, exc)
            raise ENDRUN(state) from exc

    def _store_or_end(self, task: Task, state: Cached) -> None:
        identity = TaskIdentity.of_current_run(task)
        try:
            self.store_cached_state(task, identity, state)
            return
        except CacheStoreError as exc:
            self._warn_once(f"Task '{identity}': its result was not cached. {exc}")
            error: Exception = exc
        except Exception as exc:  # noqa: BLE001 - failing to cache must never fail the task
            logger.warning("Task '%s': its result was not cached: %s", identity, exc)
            error = exc
        raise ENDRUN(Success(result=state._result, message=_not_cached(state.message, error))) from error

    def store_cached_state(self, task: Task, identity: TaskIdentity, state: Cached) -> CacheEntry:
        """Write ``state``'s result and inputs with their result handlers, then store the state."""
        results = get_plugin_manager().results
        results.store(state._result)
        raw_inputs: dict[str, Any] = {}
        for name, result in (state.cached_inputs or {}).items():
            if isinstance(result, Result):
                raw_inputs[name] = result.value
                try:
                    results.store(result)
                except Exception as exc:  # noqa: BLE001 - the input is then stored as "no result"
                    logger.debug("Task '%s': input %r not stored (%s)", identity, name, exc)
            else:
                raw_inputs[name] = getattr(result, "value", result)
        validator = task.cache_validator
        key = validator.compute_key(task, raw_inputs, state.cached_parameters) if isinstance(validator, CachePolicy) else None
        expiration = state.cached_result_expiration
        return self.store().add(
            identity,
            task.name,
            json.dumps(state.serialize()),
            cache_key=key,
            expires=expiration.timestamp() if expiration is not None else None,
        )


def _not_cached(message: str | None, error: Exception) -> str:
    """The message of a successful run whose result the cache could not keep."""
    return f"{message.rstrip('.') + '; ' if message else ''}its result was not cached: {error}"


def _backend_answers_cache_checks(runner: Any) -> bool:
    """True when the run's backend keeps cached states itself (the runner knows its backend;
    :func:`~runwright.backends.active_backend` is the slower way for any other caller)."""
    backend = getattr(runner, "active_backend", None) or active_backend()
    return backend.answers_cache_checks


#: The plugin object the entry point names.
plugin = CachePlugin()


def get_store() -> CacheStore:
    """The configured store of this process's cache plugin."""
    return plugin.store()


#: ``runwright cache ...`` for a click group of your own (the plugin's own commands hook).
runwright_register_commands = plugin.runwright_register_commands
