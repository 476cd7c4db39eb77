"""The local cache store: Cached states in an SQLite file shared by every process.

One row per cache entry: the task's identity (flow name, task slug, map index), the time it
was written, when it expires, the policy key (None for function validators) and the Cached
state serialized as JSON. The state carries only *locations* of its result and inputs: the
values themselves were written by the task's result handler (runwright-local, GCS, ...).

Concurrency: the database runs in WAL mode with a busy timeout, and every write is one short
``BEGIN IMMEDIATE`` transaction, so several processes can write at once without losing a
write. Reads never block writers.

Speed: a lookup does not query SQLite per task. The first lookup for a flow loads every live
entry of that flow into memory; later lookups are dict lookups, after a ``PRAGMA
data_version`` check that tells whether *another* connection committed since (then the
snapshot is reloaded). The cache plugin's lookups make that check at most every 10 ms within
a flow run, and always at the first lookup of a flow run (``max_staleness`` and
:meth:`CacheStore.expect_changes`). Writes made through this store update the snapshot in
place.

Errors: every SQLite failure (a file that is not a database, a malformed one, a lock held
longer than the busy timeout) is raised as :class:`CacheStoreError`, whose message names the
file and the recovery (``runwright cache clear``). The plugin turns it into a warning and a
cache miss.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runwright.engine.result import ResultInterface, SafeResult
from runwright.engine.result_handlers import ResultHandler
from runwright.engine.serialization import deserialize_handler, deserialize_result
from runwright.engine.state import Cached, State
from runwright.plugins import get_plugin_manager
from runwright_cache.identity import TaskIdentity

logger = logging.getLogger("runwright.cache")

__all__ = ["SCHEMA_VERSION", "CacheEntry", "CacheStore", "CacheStoreError"]

SCHEMA_VERSION = 1
_NO_INDEX = -1  # map_index of an unmapped task (NULL would not compare equal in SQL)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_name   TEXT    NOT NULL,
    task_slug   TEXT    NOT NULL,
    map_index   INTEGER NOT NULL,
    task_name   TEXT    NOT NULL,
    cache_key   TEXT,
    created     REAL    NOT NULL,
    expires     REAL,
    state       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_by_task
    ON cache_entries (flow_name, task_slug, map_index, created DESC);
CREATE INDEX IF NOT EXISTS cache_entries_by_expiry ON cache_entries (expires);
"""
_COLUMNS = "id, flow_name, task_slug, map_index, task_name, cache_key, created, expires, state"

# Connections inherited through fork() must never be used or closed by the child (closing
# could checkpoint or delete the parent's WAL file); they are parked here instead.
_inherited_connections: list[sqlite3.Connection] = []

#: This process's id, kept current across fork() (``os.getpid()`` is a system call, and the
#: hot path of a lookup asks it once per task).
_process = [os.getpid()]


def _after_fork_in_child() -> None:
    _process[0] = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class CacheStoreError(Exception):
    """The cache database could not be used; the message names the file and the recovery."""


@dataclass(slots=True)
class CacheEntry:
    """One stored Cached state and what it is indexed by (a record: treat it as read-only)."""

    id: int
    identity: TaskIdentity
    task_name: str
    cache_key: str | None
    created: float
    expires: float | None
    state_json: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> CacheEntry:
        entry_id, flow_name, task_slug, map_index, task_name, cache_key, created, expires, state = row
        index = None if map_index == _NO_INDEX else int(map_index)
        return cls(entry_id, TaskIdentity(flow_name, task_slug, index), task_name, cache_key, created, expires, state)

    def is_live(self, now: float, newer_than: float | None = None) -> bool:
        """Not expired at ``now``, and written after ``newer_than`` (when given)."""
        if self.expires is not None and self.expires <= now:
            return False
        return newer_than is None or self.created >= newer_than

    def state(self) -> Cached:
        """The stored Cached state (its result and inputs are SafeResults, not yet read)."""
        return decode_cached_state(self.state_json, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible summary (what ``runwright cache list --json`` prints)."""
        try:
            result = json.loads(self.state_json).get("_result") or {}
        except ValueError:
            result = {}
        handler = result.get("result_handler") or {}
        return {
            "id": self.id,
            "flow_name": self.identity.flow_name,
            "task_slug": self.identity.task_slug,
            "map_index": self.identity.map_index,
            "task_name": self.task_name,
            "cache_key": self.cache_key,
            "created": _iso(self.created),
            "expires": _iso(self.expires),
            "result_location": result.get("value"),
            "result_handler": handler.get("type"),
        }


_handlers: dict[tuple[Any, ...], ResultHandler | None] = {}
_handlers_owner: list[Any] = [None]


def _safe_result(data: Any) -> ResultInterface:
    """``deserialize_result`` with one handler instance per distinct handler description
    (building a handler is most of the cost of decoding a state, and every entry of a flow
    usually names the same one)."""
    if not isinstance(data, dict) or data.get("type") != "SafeResult" or not isinstance(data.get("result_handler"), dict):
        return deserialize_result(data)
    description = data["result_handler"]
    try:
        key = tuple(description.items())  # entries written by one handler list fields alike
        handler = _handlers[key]
    except TypeError:  # an unhashable field: no memo
        return deserialize_result(data)
    except KeyError:
        handler = _handlers[key] = deserialize_handler(description)
    return SafeResult(data.get("value"), handler)


def decode_cached_state(text: str, entry_id: int | None = None) -> Cached:
    """The Cached state serialized in ``text`` (what ``State.deserialize`` returns, faster)."""
    pm = get_plugin_manager()
    if _handlers_owner[0] is not pm:  # handler names resolve through the plugin manager
        _handlers.clear()
        _handlers_owner[0] = pm
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("type") != "Cached":
        state = State.deserialize(data)
        raise TypeError(f"cache entry {entry_id} holds a {type(state).__name__} state, not a Cached one")
    inputs = data.get("cached_inputs")
    expiration = data.get("cached_result_expiration")
    return Cached(
        message=data.get("message"),
        result=_safe_result(data.get("_result")),
        cached_inputs={k: _safe_result(v) for k, v in inputs.items()} if inputs is not None else None,
        cached_parameters=data.get("cached_parameters"),
        cached_result_expiration=datetime.datetime.fromisoformat(expiration) if expiration else None,
    )


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


class CacheStore:
    """Cache entries in the SQLite file at ``path`` (created on first use).

    :param busy_timeout: seconds a write waits for another process's transaction.
    :param max_entries_per_task: entries kept per task identity (the newest win).
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = 30.0, max_entries_per_task: int = 10) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path)))
        self.busy_timeout = float(busy_timeout)
        self.max_entries_per_task = max(1, int(max_entries_per_task))
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._data_version: int | None = None
        self._flows: dict[str, dict[tuple[str, int | None], list[CacheEntry]]] = {}
        #: until when (``time.monotonic()``) a lookup passing ``max_staleness`` may skip the
        #: freshness check; 0: the next lookup checks (see :meth:`expect_changes`)
        self._fresh_until = 0.0

    def __repr__(self) -> str:
        return f"CacheStore({str(self.path)!r})"

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        if self._connection is not None:  # we are a forked child
            _inherited_connections.append(self._connection)
            self._connection = None
            self._flows.clear()
            self._data_version = None
            self._fresh_until = 0.0
        self._pid = os.getpid()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {version} is newer than this runwright-cache understands ({SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            conn.execute("DELETE FROM cache_entries WHERE expires IS NOT NULL AND expires <= ?", (time.time(),))
        except BaseException:
            conn.close()
            raise
        self._connection = conn
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the database to WAL mode (a no-op once any process did). Switching needs the
        database to itself, and SQLite answers "locked" at once, without the busy timeout,
        while another process is creating the same new file: retried until ``busy_timeout``."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.002
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @contextmanager
    def _using(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, with every SQLite error turned into a :class:`CacheStoreError`."""
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error as exc:
                self._reset()
                raise CacheStoreError(self._explain(action, exc)) from exc

    def _explain(self, action: str, exc: sqlite3.Error) -> str:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return (
                f"Cache database {self.path} is busy ({text}) while trying to {action}; another process "
                f"held it longer than busy_timeout={self.busy_timeout:g}s. Raise [plugins.cache] busy_timeout."
            )
        return (
            f"Cache database {self.path} could not be used to {action}: {text}. It may be corrupt: "
            "run `runwright cache clear` to recreate it (cached results are then computed again)."
        )

    def _reset(self) -> None:
        conn, self._connection = self._connection, None
        self._flows.clear()
        self._data_version = None
        self._fresh_until = 0.0
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        with self._lock:
            self._reset()

    # -- lookups ---------------------------------------------------------------------------
    def expect_changes(self) -> None:
        """Make the next lookup check for other connections' commits whatever its
        ``max_staleness`` (the cache plugin calls it when a flow run starts)."""
        self._fresh_until = 0.0

    def candidates(
        self, identity: TaskIdentity, newer_than: float | None = None, max_staleness: float = 0.0
    ) -> list[CacheEntry]:
        """Live entries of ``identity``, newest first, written after ``newer_than`` (epoch s).

        Every lookup sees the commits of other connections (``PRAGMA data_version``), except
        that with ``max_staleness`` > 0 the check is skipped for that many seconds after the
        last one (until :meth:`expect_changes`): a commit by another process is then seen
        ``max_staleness`` seconds late at most."""
        now = time.time()
        flow_name = identity.flow_name
        with self._lock:  # the hot path: one query (the freshness check), no context manager
            try:
                conn = self._connection
                if conn is None or self._pid != _process[0]:
                    conn = self._connect()
                if not max_staleness or (tick := time.monotonic()) >= self._fresh_until:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != self._data_version:
                        self._flows.clear()
                        self._data_version = version
                    if max_staleness:
                        self._fresh_until = tick + max_staleness
                tasks = self._flows.get(flow_name)
                if tasks is None:
                    tasks = self._load_flow(conn, flow_name, now)
            except sqlite3.Error as exc:
                self._reset()
                raise CacheStoreError(self._explain("look up cached states", exc)) from exc
        entries = tasks.get((identity.task_slug, identity.map_index))
        if not entries:
            return []
        return [entry for entry in entries if entry.is_live(now, newer_than)]

    def _load_flow(self, conn: sqlite3.Connection, flow_name: str, now: float) -> dict[tuple[str, int | None], list[CacheEntry]]:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM cache_entries WHERE flow_name = ? AND (expires IS NULL OR expires > ?) "
            "ORDER BY created DESC, id DESC",
            (flow_name, now),
        ).fetchall()
        # CacheEntry.from_row, inlined: a cached re-run's first lookup loads every entry of the flow
        tasks: dict[tuple[str, int | None], list[CacheEntry]] = {}
        for entry_id, flow, slug, map_index, task_name, cache_key, created, expires, state in rows:
            index = None if map_index == _NO_INDEX else int(map_index)
            entry = CacheEntry(entry_id, TaskIdentity(flow, slug, index), task_name, cache_key, created, expires, state)
            same = tasks.get((slug, index))
            if same is None:
                tasks[(slug, index)] = [entry]
            else:
                same.append(entry)
        self._flows[flow_name] = tasks
        return tasks

    def entries(self, task: str | None = None, flow: str | None = None) -> list[CacheEntry]:
        """Every stored entry (expired ones included until evicted), optionally only those
        whose task slug or task name is ``task`` and whose flow is ``flow``; newest first."""
        where, args = _filters(task, flow)
        with self._using("list cache entries") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM cache_entries {where} ORDER BY flow_name, task_slug, map_index, created DESC",
                args,
            ).fetchall()
        return [CacheEntry.from_row(row) for row in rows]

    # -- writes ----------------------------------------------------------------------------
    def add(
        self,
        identity: TaskIdentity,
        task_name: str,
        state_json: str,
        cache_key: str | None = None,
        expires: float | None = None,
        created: float | None = None,
    ) -> CacheEntry:
        """Store an entry. In the same short transaction, drop the identity's expired entries,
        older entries with the same key, and all but the newest ``max_entries_per_task``."""
        created = time.time() if created is None else created
        index = _NO_INDEX if identity.map_index is None else identity.map_index
        key_args = (identity.flow_name, identity.task_slug, index)
        with self._using("store a cached state") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "INSERT INTO cache_entries (flow_name, task_slug, map_index, task_name, cache_key, created, expires, state) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key_args, task_name, cache_key, created, expires, state_json),
                )
                entry_id = cursor.lastrowid
                same_task = "flow_name = ? AND task_slug = ? AND map_index = ? AND id != ?"
                conn.execute(
                    f"DELETE FROM cache_entries WHERE {same_task} AND ((expires IS NOT NULL AND expires <= ?) "
                    "OR (cache_key IS NOT NULL AND cache_key = ?))",
                    (*key_args, entry_id, created, cache_key),
                )
                conn.execute(
                    f"DELETE FROM cache_entries WHERE {same_task} AND id NOT IN (SELECT id FROM cache_entries "
                    "WHERE flow_name = ? AND task_slug = ? AND map_index = ? ORDER BY created DESC, id DESC LIMIT ?)",
                    (*key_args, entry_id, *key_args, self.max_entries_per_task),
                )
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM cache_entries WHERE flow_name = ? AND task_slug = ? AND map_index = ? "
                    "ORDER BY created DESC, id DESC",
                    key_args,
                ).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            kept = [CacheEntry.from_row(row) for row in rows]
            tasks = self._flows.get(identity.flow_name)
            if tasks is not None:
                tasks[(identity.task_slug, identity.map_index)] = kept
        return next(entry for entry in kept if entry.id == entry_id)

    def delete(self, entry: CacheEntry) -> None:
        """Remove one entry (e.g. one whose result can no longer be read)."""
        with self._using("delete a cache entry") as conn:
            conn.execute("DELETE FROM cache_entries WHERE id = ?", (entry.id,))
            tasks = self._flows.get(entry.identity.flow_name)
            if tasks is not None:
                key = (entry.identity.task_slug, entry.identity.map_index)
                tasks[key] = [e for e in tasks.get(key, ()) if e.id != entry.id]

    def evict_expired(self) -> int:
        """Delete every expired entry; return how many were deleted."""
        with self._using("evict expired cache entries") as conn:
            cursor = conn.execute("DELETE FROM cache_entries WHERE expires IS NOT NULL AND expires <= ?", (time.time(),))
            self._flows.clear()
            return cursor.rowcount

    def clear(self, task: str | None = None, flow: str | None = None) -> int:
        """Delete the entries of ``task`` (slug or name) and/or ``flow``, or all of them;
        return how many were deleted. Result files are left to their result handler."""
        where, args = _filters(task, flow)
        with self._using("clear the cache") as conn:
            cursor = conn.execute(f"DELETE FROM cache_entries {where}", args)
            self._flows.clear()
            return cursor.rowcount

    def recreate(self) -> None:
        """Delete the database file (and its WAL and shared-memory files) and create a new,
        empty one: the recovery for a corrupt cache database."""
        with self._lock:
            self._reset()
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.remove(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass
        with self._using("create the cache database"):
            pass


def _filters(task: str | None, flow: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: list[Any] = []
    if task is not None:
        clauses.append("(task_slug = ? OR task_name = ?)")
        args += [task, task]
    if flow is not None:
        clauses.append("flow_name = ?")
        args.append(flow)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (cached states name results and
    hold inputs); SQLite gives its -wal and -shm files the same mode. An existing file is
    left as it is."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
