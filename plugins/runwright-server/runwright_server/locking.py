"""Optimistic locking of flow-run and task-run states.

A write names the version it expects. One statement does the check and the bump::

    UPDATE <runs> SET state=?, state_type=?, version=version+1, heartbeat=?, updated=?
    WHERE id=? AND tenant_id=? AND version=?

``rowcount == 1`` means the write won: the new state is appended to the history with the new
version, in the same transaction. ``rowcount == 0`` means the run is unknown (or another
tenant's) or the version moved on; a second read tells which. Two writers naming the same
version cannot both match, on SQLite (one writer at a time) or PostgreSQL (the second UPDATE
waits for the first and re-checks its WHERE clause).

**Flow-run leases.** A flow-run state write may carry a runner token (``lease``); a winning
write of a ``Running`` state stores it on the flow run (any other winning write clears it),
so the runner that claimed the flow run last holds its lease while the run is Running. A task-run write that names a lease (a batch, or a single
write) is applied only while that token is the flow run's current lease, and only to task
runs of that flow run: :func:`lease_of` reads the lease ``FOR UPDATE`` (PostgreSQL), so a
takeover and a batch of the runner it replaces are ordered. Writes naming no lease are not
lease-checked (the per-task synchronous claim mode and API users).

**Refused transitions** (:mod:`runwright_server.state_rules`): a write of Running or a meta
state carries ``b_guard = 1``, and the same ``UPDATE`` then also requires that the run is not
finished, or is in the sweeper's Failed state; a write that fails only that condition (the
version matched) is ``refused``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, Literal

from sqlalchemy import Connection, Insert, Integer, Table, Update, bindparam, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from runwright_server import models
from runwright_server.state_keys import cache_key_of
from runwright_server.state_rules import FINISHED_TYPES, REVIVING_TYPES, SWEPT_PREFIX, refused


@dataclass(frozen=True)
class WriteOutcome:
    status: Literal["ok", "conflict", "not_found", "refused"]
    version: int | None = None
    current_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunKind:
    """The pair of tables and the history's foreign-key column for one kind of run.

    The two statements of a winning write are built once here (with bound parameters), so a
    write costs no statement construction or cache-key computation.
    """

    runs: Table
    history: Table
    history_fk: str
    #: the column naming the parent flow run (task runs only)
    parent_fk: str | None = None
    bump: Update = field(init=False, repr=False, compare=False)
    #: ``bump`` restricted to the runs of one parent flow run (leased writes)
    bump_in_parent: Update | None = field(init=False, repr=False, compare=False)
    #: ``bump`` that sets the version to ``b_new_version`` (a chain of writes in one update)
    bump_to: Update = field(init=False, repr=False, compare=False)
    bump_to_in_parent: Update | None = field(init=False, repr=False, compare=False)
    append: Insert = field(init=False, repr=False, compare=False)
    #: ``append`` without the cache key (NULL): for history rows of no Cached state
    append_plain: Insert = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        runs = self.runs
        bump = (
            update(runs)
            .where(
                runs.c.id == bindparam("b_id"),
                runs.c.tenant_id == bindparam("b_tenant"),
                runs.c.version == bindparam("b_version"),
                or_(
                    bindparam("b_guard", type_=Integer) == 0,
                    text("state_type NOT IN (" + ", ".join(f"'{name}'" for name in FINISHED_TYPES) + ")"),
                    runs.c.state.startswith(bindparam("b_swept"), autoescape=False),
                ),
            )
            .values(
                state=bindparam("b_state"),
                state_type=bindparam("b_type"),
                version=runs.c.version + 1,
                heartbeat=bindparam("b_now"),
                updated=bindparam("b_now"),
            )
        )
        values: dict[str, Any] = {
            self.history_fk: bindparam("b_id"),
            "version": bindparam("b_new_version"),
            "state": bindparam("b_state"),
            "state_type": bindparam("b_type"),
            "timestamp": bindparam("b_now"),
        }
        object.__setattr__(self, "append_plain", self.history.insert().values(values))
        if "cache_key" in self.history.c:  # the database copies a Cached state's key out of it
            values["cache_key"] = cache_key_of(bindparam("b_state"), bindparam("b_type"))
        append = self.history.insert().values(values)
        object.__setattr__(self, "bump", bump)
        parent = bump.where(runs.c[self.parent_fk] == bindparam("b_parent")) if self.parent_fk else None
        object.__setattr__(self, "bump_in_parent", parent)
        object.__setattr__(self, "append", append)
        bump_to = bump.values(version=bindparam("b_new_version"))
        object.__setattr__(self, "bump_to", bump_to)
        parent_to = bump_to.where(runs.c[self.parent_fk] == bindparam("b_parent")) if self.parent_fk else None
        object.__setattr__(self, "bump_to_in_parent", parent_to)


FLOW_RUNS = RunKind(models.flow_runs, models.flow_run_states, "flow_run_id")
TASK_RUNS = RunKind(models.task_runs, models.task_run_states, "task_run_id", "flow_run_id")

#: :func:`lease_of` for a flow run that does not exist (or is another tenant's)
NO_RUN = object()


def write_state(
    conn: Connection,
    kind: RunKind,
    run_id: str,
    tenant_id: str,
    expected_version: int,
    state_text: str,
    state_type: str,
    now: datetime,
    parent_id: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> WriteOutcome:
    """Apply one version-checked state write inside the caller's transaction.

    With ``parent_id`` (task runs), only a run of that flow run can match: another is
    ``not_found``. With ``history``, the history row is appended to that list for the caller
    to insert with the rest of a batch (one executemany), not inserted here.
    """
    params = {
        "b_id": run_id,
        "b_tenant": tenant_id,
        "b_version": expected_version,
        "b_new_version": expected_version + 1,
        "b_state": state_text,
        "b_type": state_type,
        "b_now": now,
        "b_guard": int(state_type in REVIVING_TYPES),
        "b_swept": SWEPT_PREFIX,
    }
    bump = kind.bump
    if parent_id is not None and kind.bump_in_parent is not None:
        bump = kind.bump_in_parent
        params["b_parent"] = parent_id
    if conn.execute(bump, params).rowcount == 1:
        if history is None:
            conn.execute(kind.append, params)
        else:
            history.append(params)
        return WriteOutcome("ok", expected_version + 1)
    outcome = current(conn, kind, run_id, tenant_id, parent_id)
    if outcome.status == "conflict" and outcome.version == expected_version:
        return WriteOutcome("refused", outcome.version, outcome.current_state)
    return outcome


def write_states_at_once(
    conn: Connection,
    kind: RunKind,
    writes: list[tuple[str, int, str, str]],
    tenant_id: str,
    now: datetime,
    parent_id: str | None = None,
    creates: dict[str, tuple[str, int]] | None = None,
) -> bool:
    """Apply a batch of version-checked writes ``(run_id, expected_version, state_text,
    state_type)`` at once, if and only if every one of them applies; otherwise apply none and
    return False (the caller then writes them one by one to learn which failed).

    ``creates`` (task runs of ``parent_id``): ``run id -> (slug, map index)`` of the child
    runs the writes create; such a run's chain (from version 0) is one INSERT of the run with
    its last state instead of an UPDATE (if the run or its map index exists, nothing applies).

    The writes of one run must form a chain (versions ``v, v+1, ...``, in batch order), which
    is what a runner sends; they become one version-checked ``UPDATE`` from ``v`` to the
    chain's last version with its last state (a Running and a Success of a task in the same
    batch: one row update, not two). Every write still gets its history row. So the common
    batch, every write expected, costs two executemany statements (updates, history) under a
    savepoint, run straight on the database driver (statements compiled once per dialect).
    """
    if not writes or not conn.dialect.supports_sane_multi_rowcount:
        return False
    chains: dict[str, list[Any]] = {}  # run id -> [first expected version, last index in writes, guard]
    cached = False  # a Cached state among the writes: the history rows carry cache keys
    for index, (run_id, version, _text, state_type) in enumerate(writes):
        if state_type == "Cached":
            cached = True
        chain = chains.get(run_id)
        if chain is None:
            chains[run_id] = [version, index, int(state_type in REVIVING_TYPES)]
        elif version != writes[chain[1]][1] + 1:
            return False  # not a chain: cannot all apply; the one-by-one path tells which
        elif refused(writes[chain[1]][3], writes[chain[1]][2], state_type):
            return False  # a refused transition inside the chain: the one-by-one path refuses it
        else:
            chain[1] = index
    dialect = conn.dialect
    new_rows: list[tuple[Any, ...]] = []  # in TASK_RUN_COLUMNS' order
    insert = driver_statement(NEW_RUNS_INSERT, dialect) if creates else None
    if insert is not None and creates:
        created = insert.process("created", now)
        for run_id in [run_id for run_id in chains if run_id in creates]:
            first, last, _guard = chains.pop(run_id)
            if first != 0:
                return False  # the one-by-one path tells what became of it
            slug, index = creates[run_id]
            _, version, text, state_type = writes[last]
            new_rows.append((run_id, tenant_id, parent_id, slug, index, text, state_type, version + 1, created, created, created))
    bump_to = kind.bump_to if parent_id is None or kind.bump_to_in_parent is None else kind.bump_to_in_parent
    bump = driver_statement(bump_to, dialect)
    # the history rows of a batch without a Cached state skip the cache-key expression
    append = driver_statement(kind.append if cached else kind.append_plain, dialect)
    stamp = bump.process("b_now", now)
    bumps = bump.rows(
        _BUMP_COLUMNS,
        [
            (run_id, tenant_id, first, writes[last][1] + 1, writes[last][2], writes[last][3], stamp, parent_id, guard, SWEPT_PREFIX)
            for run_id, (first, last, guard) in chains.items()
        ],
    )
    stamp = append.process("b_now", now)
    history = append.rows(
        _APPEND_COLUMNS, [(run_id, version + 1, text, state_type, stamp) for run_id, version, text, state_type in writes]
    )
    savepoint = conn.begin_nested()
    try:
        if insert is not None and new_rows:
            conn.exec_driver_sql(insert.sql, insert.rows(TASK_RUN_COLUMNS, new_rows))
        if bumps and conn.exec_driver_sql(bump.sql, bumps).rowcount != len(bumps):
            savepoint.rollback()
            return False
        conn.exec_driver_sql(append.sql, history)
    except IntegrityError:  # a run created here exists already (or its map index is taken)
        savepoint.rollback()
        return False
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return True


#: a task run's row, its values in :data:`TASK_RUN_COLUMNS` (a child created by its first
#: writes, ``creates`` above; a page of children; a new flow run's task runs)
NEW_RUNS_INSERT = models.task_runs.insert()
TASK_RUN_COLUMNS = (
    "id", "tenant_id", "flow_run_id", "task_slug", "map_index", "state", "state_type", "version", "heartbeat", "created", "updated"
)


#: the parameters of a chain's version-checked update and of a history row, in the order
#: :func:`write_states_at_once` builds them (see :meth:`DriverStatement.rows`)
_BUMP_COLUMNS = ("b_id", "b_tenant", "b_version", "b_new_version", "b_state", "b_type", "b_now", "b_parent", "b_guard", "b_swept")
_APPEND_COLUMNS = ("b_id", "b_new_version", "b_state", "b_type", "b_now")


class DriverStatement:
    """A statement compiled for one dialect, to run with the driver's executemany: rows are
    built in the driver's parameter style and values of typed parameters (datetimes on
    SQLite) are converted once by the caller (:meth:`process`), not once per row."""

    def __init__(self, sql: str, names: tuple[str, ...] | None, fixed: dict[str, Any], processors: dict[str, Any]) -> None:
        self.sql = sql
        #: values of parameters the statement binds itself (``version + 1``'s literal, say)
        self.fixed = fixed
        self.processors = processors
        #: the parameters' names in the statement's order (positional styles; None: named)
        self.names = names
        #: a row's parameters from its values: a tuple in order (positional parameter
        #: styles) or the dict itself (named styles)
        self._pick: Any = None if names is None else (lambda d, g=itemgetter(*names): (g(d),) if len(names) == 1 else g(d))
        self._shapers: dict[tuple[str, ...], Any] = {}

    def rows(self, columns: tuple[str, ...], values: Iterable[tuple[Any, ...]]) -> list[Any]:
        """The driver's rows of ``values``, tuples of the parameters named ``columns`` (in that
        order): what :meth:`row` makes of their dicts, without a dict per row on positional
        parameter styles (a tuple in ``columns``' order is the row itself when the statement
        binds its parameters in that order)."""
        shaper = self._shapers.get(columns)
        if shaper is None:
            shaper = self._shapers[columns] = self._shaper(columns)
        return list(values) if shaper is None else list(map(shaper, values))

    def _shaper(self, columns: tuple[str, ...]) -> Any:
        missing = set(self.names if self.names is not None else ()) - set(columns) - set(self.fixed)
        if missing:
            raise ValueError(f"no value for the parameters {sorted(missing)}")
        if self.names is None:  # named styles: a dict per row
            fixed = self.fixed
            return lambda row: {**fixed, **dict(zip(columns, row, strict=True))}
        if self.names == columns:
            return None
        # positions into the row, then into the fixed values that follow it
        extra = tuple(name for name in dict.fromkeys(self.names) if name not in columns)
        index = {name: i for i, name in enumerate(columns + extra)}
        pick = itemgetter(*(index[name] for name in self.names))
        tail = tuple(self.fixed[name] for name in extra)
        if len(self.names) == 1:
            return lambda row: (pick(row + tail),)
        return (lambda row: pick(row + tail)) if tail else pick

    def process(self, name: str, value: Any) -> Any:
        processor = self.processors.get(name)
        return value if processor is None else processor(value)

    def row(self, values: dict[str, Any]) -> Any:
        if self.fixed:
            values = {**self.fixed, **values}
        return values if self._pick is None else self._pick(values)


#: (id of a statement, dialect name, parameter style) -> (the statement, kept alive; its DriverStatement)
_driver_statements: dict[tuple[int, str, str], tuple[Any, DriverStatement]] = {}


def driver_statement(statement: Update | Insert, dialect: Any) -> DriverStatement:
    """``statement`` (a module-level constant) compiled once for ``dialect``, to run with
    ``conn.exec_driver_sql(s.sql, [s.row(values), ...])``: the batch paths skip SQLAlchemy's
    per-row parameter processing, which costs more than the database's work."""
    key = (id(statement), dialect.name, dialect.paramstyle)
    cached = _driver_statements.get(key)
    if cached is None:
        # an INSERT without RETURNING of the new ids (nobody reads them)
        compiled = (statement.inline() if isinstance(statement, Insert) else statement).compile(dialect=dialect)
        order = compiled.positiontup
        names = tuple(order) if order is not None and dialect.positional else None
        fixed = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        fixed = {name: processors[name](value) if name in processors else value for name, value in fixed.items()}
        cached = _driver_statements[key] = (statement, DriverStatement(compiled.string, names, fixed, processors))
    return cached[1]


def current(conn: Connection, kind: RunKind, run_id: str, tenant_id: str, parent_id: str | None = None) -> WriteOutcome:
    """A ``conflict`` outcome with the run's current version and state, or ``not_found``."""
    runs = kind.runs
    query = select(runs.c.version, runs.c.state).where(runs.c.id == run_id, runs.c.tenant_id == tenant_id)
    if parent_id is not None and kind.parent_fk:
        query = query.where(runs.c[kind.parent_fk] == parent_id)
    row = conn.execute(query).first()
    if row is None:
        return WriteOutcome("not_found")
    return WriteOutcome("conflict", int(row.version), json.loads(row.state))


def lease_of(conn: Connection, flow_run_id: str, tenant_id: str) -> str | object | None:
    """The flow run's current lease token (None: no lease), or :data:`NO_RUN`.

    Read ``FOR UPDATE`` (a no-op on SQLite, whose writers are serialized anyway).
    """
    fr = models.flow_runs
    row = conn.execute(
        select(fr.c.lease).where(fr.c.id == flow_run_id, fr.c.tenant_id == tenant_id).with_for_update()
    ).first()
    return NO_RUN if row is None else row.lease


def task_run_lease(conn: Connection, task_run_id: str, tenant_id: str) -> tuple[str, str | None] | None:
    """The flow run id and current lease of a task run's flow run (None: no such task run)."""
    fr, tr = models.flow_runs, models.task_runs
    row = conn.execute(
        select(fr.c.id, fr.c.lease)
        .select_from(tr.join(fr, fr.c.id == tr.c.flow_run_id))
        .where(tr.c.id == task_run_id, tr.c.tenant_id == tenant_id)
        .with_for_update()
    ).first()
    return None if row is None else (str(row.id), row.lease)


def set_lease(conn: Connection, flow_run_id: str, lease: str | None, holder: str | None = None) -> None:
    """Store the lease of the flow-run state write that just won, and who holds it (None
    clears them)."""
    fr = models.flow_runs
    conn.execute(update(fr).where(fr.c.id == flow_run_id).values(lease=lease, lease_holder=holder))
