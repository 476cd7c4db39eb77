"""Engine creation and transactions.

A new SQLite database file is created 0600 (its new directories 0700). SQLite gets WAL,
``synchronous=NORMAL`` and a busy timeout on every connection, and checkpoints its WAL every
:data:`SQLITE_CHECKPOINT_PAGES` pages instead of 1,000: a batch of a map's states dirties a few
hundred index pages, and a checkpoint every few commits wrote the same hot pages back to the
database file again and again (about 5% of the server's time on a 100,000-child map). Its
transactions are begun by us, not by the driver: write transactions use ``BEGIN IMMEDIATE``
so that a read-then-write transaction (get-or-create, the sweeper) takes the write lock up
front and waits for it (busy_timeout) instead of failing with "database is locked" when it
tries to upgrade a stale read snapshot. Read transactions use a plain deferred ``BEGIN`` so
readers never block under WAL.

Within one process, SQLite write transactions also take a per-engine lock first: writers of
the same server queue on it and start the moment the previous one commits, instead of
meeting SQLite's busy handler, which polls with sleeps of 1-100 ms. ``busy_timeout`` still
arbitrates with other processes (the ``token`` commands, a second server).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: WAL pages between two automatic checkpoints (4 KiB pages: the WAL grows to about 40 MiB)
SQLITE_CHECKPOINT_PAGES = 10_000
_WRITE_OPTION = "runwright_write"
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _create_private_file(path: Path) -> None:
    """Create a new SQLite file readable by its owner only (0600), and the directories
    missing above it 0700. It holds tokens' hashes and results; SQLite gives its ``-wal``
    and ``-shm`` files the database file's permissions. An existing file is left as it is."""
    missing = [parent for parent in path.parents if not parent.exists()]
    for parent in reversed(missing):
        parent.mkdir(mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def make_engine(db_url: str) -> Engine:
    """An engine for ``db_url``; a new SQLite file (and its directory) is private to its owner."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False)

    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    if url.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool
    else:
        _create_private_file(Path(url.database).expanduser())
        kwargs.update(pool_size=16, max_overflow=32)
    engine = create_engine(url, **kwargs)
    _WRITE_LOCKS[engine] = threading.RLock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: committed on success, rolled back on error."""
    lock = _WRITE_LOCKS.get(engine)
    with lock if lock is not None else nullcontext(), engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction."""
    with engine.connect() as conn, conn.begin():
        yield conn
