"""The runwright-cache plugin: look up cached states before a task runs, store them after.

Hooks implemented:

* ``runwright_register_cache_validators``: the seed's validators and the named policies;
* ``runwright_check_task_is_cached``: for a task with ``cache_for`` in a local run, the
  newest stored entry of the task (same flow, slug and map index) that is no older than
  ``cache_for``, not expired, valid for the task's validator or policy, and whose result
  can be read back;
* ``runwright_task_state_change``: a Cached state produced by a successful run is stored
  (its result and inputs written by their result handler first);
* ``runwright_register_commands``: ``runwright cache list`` and ``runwright cache clear``.

Nothing happens when the run reports to a backend (``context.backend == "cloud"``): the cloud
plugin answers cache checks from the server then. A cache problem never fails a run: it is
a warning, and the task runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runwright.config import Config, get_config
from runwright.context import context
from runwright.engine.result import Result
from runwright.engine.state import Cached, Running, State, Success
from runwright.hookspecs import hookimpl
from runwright.plugins import get_plugin_manager
from runwright_cache.cache_validators import VALIDATORS
from runwright_cache.identity import TaskIdentity
from runwright_cache.policies import POLICIES, CachePolicy
from runwright_cache.store import CacheEntry, CacheStore, CacheStoreError

if TYPE_CHECKING:
    import click

    from runwright.task import Task

logger = logging.getLogger("runwright.cache")

#: The ``[plugins.cache]`` keys and their defaults.
DEFAULTS: dict[str, Any] = {
    "path": "~/.runwright/cache.db",
    "busy_timeout": 30.0,
    "max_entries_per_task": 10,
}

_stores: dict[tuple[str, float, int], CacheStore] = {}
_current: tuple[Config, CacheStore] | None = None
_stores_lock = threading.Lock()
_warned: set[str] = set()


def get_store() -> CacheStore:
    """The store configured by ``[plugins.cache]`` (one per path and settings per process)."""
    global _current
    config = get_config()
    current = _current
    if current is not None and current[0] is config:
        return current[1]
    settings = config.plugin_section("cache", DEFAULTS)
    key = (str(settings["path"]), float(settings["busy_timeout"]), int(settings["max_entries_per_task"]))
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = CacheStore(*key)
        _current = (config, store)
    return store


def _warn_once(message: str) -> None:
    """Log a store problem once (not once per task) until the store works again."""
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


def _is_local_run() -> bool:
    return context.get("backend") != "cloud"


# -- registration --------------------------------------------------------------------------
@hookimpl
def runwright_register_cache_validators(register: Callable[..., None]) -> None:
    for name, validator in VALIDATORS.items():
        register(name, validator)
    for name, policy in POLICIES.items():
        register(name, policy)


@hookimpl
def runwright_register_commands(cli: click.Group) -> None:
    from runwright_cache.cli import cache_command

    cli.add_command(cache_command)


# -- lookups -------------------------------------------------------------------------------
@hookimpl
def runwright_check_task_is_cached(
    task: Task, inputs: dict[str, Any], parameters: dict[str, Any]
) -> Cached | None:
    if not _is_local_run() or task.cache_for is None:
        return None
    store = get_store()
    identity = TaskIdentity.of_current_run(task)
    try:
        entries = store.candidates(identity, newer_than=time.time() - task.cache_for.total_seconds())
    except CacheStoreError as exc:
        _warn_once(f"Task '{identity}': cache lookup failed, running the task. {exc}")
        return None
    if _warned:
        _warned.clear()
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
            candidate = _load(store, entry)
        else:
            candidate = _load(store, entry)
            if candidate is None or not validator(candidate, inputs, parameters):
                continue
        if candidate is not None and _read_result(store, entry, candidate):
            return candidate
    return None


def _load(store: CacheStore, entry: CacheEntry) -> Cached | None:
    try:
        return entry.state()
    except Exception as exc:  # noqa: BLE001 - a damaged entry is dropped, never fatal
        logger.warning("Task '%s': cache entry %s is unreadable (%s); it is removed.", entry.identity, entry.id, exc)
        _forget(store, entry)
        return None


def _read_result(store: CacheStore, entry: CacheEntry, candidate: Cached) -> bool:
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
        _forget(store, entry)
        return False
    return True


def _forget(store: CacheStore, entry: CacheEntry) -> None:
    try:
        store.delete(entry)
    except CacheStoreError as exc:
        _warn_once(str(exc))


# -- storing -------------------------------------------------------------------------------
@hookimpl
def runwright_task_state_change(task: Task, old_state: State, new_state: State) -> None:
    # Only a Cached state made by ``cache_result`` after a run; a cache hit comes from Pending.
    if not isinstance(new_state, Cached) or not isinstance(old_state, (Running, Success)) or isinstance(old_state, Cached):
        return
    if task.cache_for is None or not _is_local_run():
        return
    identity = TaskIdentity.of_current_run(task)
    try:
        store_cached_state(task, identity, new_state)
    except CacheStoreError as exc:
        _warn_once(f"Task '{identity}': its result was not cached. {exc}")
    except Exception as exc:  # noqa: BLE001 - failing to cache must never fail the task
        logger.warning("Task '%s': its result was not cached: %s", identity, exc)


def store_cached_state(task: Task, identity: TaskIdentity, state: Cached) -> CacheEntry:
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
    return get_store().add(
        identity,
        task.name,
        json.dumps(state.serialize()),
        cache_key=key,
        expires=expiration.timestamp() if expiration is not None else None,
    )
