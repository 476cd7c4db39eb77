"""The scheduler: creates each deployment's scheduled flow runs ahead of time, once per start.

For every unpaused deployment with a schedule, the runs of its next ``schedule_ahead_runs``
starts within ``schedule_ahead_seconds`` exist as ``Scheduled`` flow runs (``start_time`` and
``scheduled_start_time`` the start, the deployment's parameters under the start's clock's
``parameter_defaults``, its queue) with ``idempotency_key = "schedule:<ISO start>"``. The
unique ``(deployment_id, idempotency_key)`` constraint makes "one run per deployment and
start" a database guarantee: several server processes on one PostgreSQL all try, one insert
wins, the others are refused and skip that start. On PostgreSQL a pass also locks the
deployment it works on (``FOR UPDATE SKIP LOCKED``), so two servers rarely do the same work.

``deployments.scheduled_until`` is the last start created. Starts missed while no server ran
(after ``scheduled_until``, at most ``schedule_ahead_seconds`` back, at most
``schedule_ahead_runs`` per pass) are created late and read ``late: true``. A deployment
that was just deployed (or whose schedule changed) starts with the first start at most
``late_after_seconds`` before that moment, so ``runwright deploy --interval 60`` runs at
once; a resumed one with the first start after the resume.

A background thread (:class:`Scheduler`) runs a pass every ``scheduler_interval`` seconds
and wakes the tenant's waiting agents when it created runs; ``POST /deployments`` schedules
its deployment in its own transaction, so the first runs exist when ``deploy`` returns.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, select, update
from sqlalchemy.exc import IntegrityError

from runwright.schedules import BaseSchedule, Schedule, ScheduledStart
from runwright_server import models
from runwright_server.auth import utcnow
from runwright_server.db import read_tx, write_tx
from runwright_server.periodic import Periodic
from runwright_server.run_rows import insert_flow_run, scheduled_state

log = logging.getLogger(__name__)

KEY_PREFIX = "schedule:"


@dataclass(frozen=True)
class SchedulingLimits:
    """How far ahead (and back) runs are created: the ``[server]`` settings of the same names."""

    ahead_runs: int = 10
    ahead_seconds: float = 3600.0
    late_after_seconds: float = 5.0

    @classmethod
    def of(cls, settings: Any) -> SchedulingLimits:
        return cls(settings.schedule_ahead_runs, settings.schedule_ahead_seconds, settings.late_after_seconds)


def idempotency_key(start: datetime) -> str:
    """``schedule:<ISO start in UTC>`` for a naive-UTC ``start``: the same in every process."""
    return KEY_PREFIX + start.replace(tzinfo=UTC).isoformat()


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _starts_after(schedule: BaseSchedule, after: datetime, n: int) -> list[ScheduledStart]:
    """Up to ``n`` starts strictly after ``after`` (naive UTC), as naive UTC, one at a time: a
    schedule that runs past the end of the calendar (year 9999) simply has no more starts."""
    try:  # the common case: all at once
        return [ScheduledStart(_naive_utc(e.start_time), e.parameter_defaults) for e in schedule.events(n, _aware(after))]
    except (OverflowError, ValueError, ArithmeticError):
        pass
    starts: list[ScheduledStart] = []
    cursor = _aware(after)
    while len(starts) < n:
        try:
            events = schedule.events(1, after=cursor)
        except (OverflowError, ValueError, ArithmeticError):
            break
        if not events:
            break
        cursor = events[0].start_time
        starts.append(ScheduledStart(_naive_utc(cursor), events[0].parameter_defaults))
    return starts


def starts_to_create(
    schedule: BaseSchedule,
    scheduled_until: datetime | None,
    fresh_since: datetime,
    now: datetime,
    limits: SchedulingLimits,
) -> list[ScheduledStart]:
    """The starts (naive UTC) whose runs should exist and were not created by an earlier pass.

    ``scheduled_until``: the last start created (None: none yet since ``fresh_since``, the
    moment the deployment was made or its schedule last changed). All times naive UTC.
    """
    if scheduled_until is not None:
        after = scheduled_until
    else:
        after = fresh_since - timedelta(seconds=limits.late_after_seconds, microseconds=1)
    after = max(after, now - timedelta(seconds=limits.ahead_seconds))  # older missed starts are skipped
    horizon = now + timedelta(seconds=limits.ahead_seconds)
    wanted: dict[datetime, ScheduledStart] = {}
    if after < now:  # missed starts (a server was down, or the deployment is new)
        for event in _starts_after(schedule, after, limits.ahead_runs):
            if event.start_time > now:
                break
            wanted[event.start_time] = event
        if len(wanted) == limits.ahead_runs:  # maybe more missed: the next pass goes on from these
            return [wanted[start] for start in sorted(wanted)]
    for event in _starts_after(schedule, now, limits.ahead_runs):
        if event.start_time > horizon:
            break
        if event.start_time > after:
            wanted.setdefault(event.start_time, event)
    return [wanted[start] for start in sorted(wanted)]


@functools.lru_cache(maxsize=4096)
def parsed_schedule(text: str) -> BaseSchedule:
    """The schedule stored as ``text`` (schedules are never changed once built: shared)."""
    return Schedule.deserialize(json.loads(text))


def _tasks_text(conn: Connection, flow_id: str) -> str | None:
    f = models.flows
    return conn.execute(select(f.c.tasks).where(f.c.id == flow_id)).scalar()


def schedule_deployment(conn: Connection, deployment: RowMapping, limits: SchedulingLimits, now: datetime) -> int:
    """Create the missing scheduled runs of ``deployment`` (a row of ``deployments``, locked
    or just written by the caller's transaction); return how many this call created."""
    if deployment["paused"] or deployment["schedule"] is None:
        return 0
    schedule = parsed_schedule(deployment["schedule"])
    starts = starts_to_create(schedule, deployment["scheduled_until"], deployment["updated"], now, limits)
    if not starts:
        return 0
    fr = models.flow_runs
    keys = {idempotency_key(start.start_time): start for start in starts}
    existing = set(
        conn.execute(
            select(fr.c.idempotency_key).where(
                fr.c.deployment_id == deployment["id"],
                fr.c.scheduled_start_time >= starts[0].start_time,
                fr.c.scheduled_start_time <= starts[-1].start_time,
            )
        ).scalars()
    )
    tasks_text = _tasks_text(conn, deployment["flow_id"])
    if tasks_text is None:  # cannot happen (foreign key); never crash the pass over it
        return 0
    parameters = json.loads(deployment["parameters"])
    created = 0
    for key, start in keys.items():
        if key in existing:
            continue
        try:
            with conn.begin_nested():
                insert_flow_run(
                    conn,
                    run_id=str(uuid.uuid4()),
                    tenant_id=deployment["tenant_id"],
                    flow_id=deployment["flow_id"],
                    tasks_text=tasks_text,
                    parameters={**parameters, **start.parameter_defaults},
                    context={},
                    scheduled_start_time=start.start_time,
                    state=scheduled_state(start.start_time),
                    now=now,
                    orchestration={"deployment_id": deployment["id"], "queue": deployment["queue"], "idempotency_key": key},
                )
            created += 1
        except IntegrityError:  # another server process created this start's run first
            continue
    d = models.deployments
    last = starts[-1].start_time
    conn.execute(
        update(d)
        .where(d.c.id == deployment["id"])
        .values(scheduled_until=last if deployment["scheduled_until"] is None else max(last, deployment["scheduled_until"]))
    )
    return created


def _candidates(engine: Engine) -> list[RowMapping]:
    d = models.deployments
    with read_tx(engine) as conn:
        columns = (d.c.id, d.c.tenant_id, d.c.schedule, d.c.scheduled_until, d.c.updated)
        return list(conn.execute(select(*columns).where(d.c.paused.is_(False), d.c.schedule.is_not(None))).mappings())


def schedule_once(engine: Engine, limits: SchedulingLimits, now: datetime | None = None) -> dict[str, int]:
    """One pass over every deployment; returns the runs created per tenant id."""
    now = now or utcnow()
    created: dict[str, int] = {}
    d = models.deployments
    for candidate in _candidates(engine):
        try:
            schedule = parsed_schedule(candidate["schedule"])
            if not starts_to_create(schedule, candidate["scheduled_until"], candidate["updated"], now, limits):
                continue  # the common case: nothing to do, and no write transaction taken
            with write_tx(engine) as conn:
                row = (
                    conn.execute(select(d).where(d.c.id == candidate["id"]).with_for_update(skip_locked=True))
                    .mappings()
                    .first()
                )
                if row is None:  # deleted, or another server process is scheduling it right now
                    continue
                count = schedule_deployment(conn, row, limits, now)
        except Exception:  # one broken deployment never stops the others
            log.exception("scheduling deployment %s failed", candidate["id"])
            continue
        if count:
            created[candidate["tenant_id"]] = created.get(candidate["tenant_id"], 0) + count
    return created


class Scheduler(Periodic):
    """Runs :func:`schedule_once` every ``interval`` seconds on a daemon thread until stopped;
    ``notify(tenant_id)`` is called for every tenant that got new runs."""

    thread_name = "runwright-scheduler"

    def __init__(
        self, engine: Engine, limits: SchedulingLimits, interval: float, notify: Callable[[str], None]
    ) -> None:
        super().__init__(interval)
        self.engine = engine
        self.limits = limits
        self.notify = notify

    def tick(self) -> None:
        for tenant_id in schedule_once(self.engine, self.limits):
            self.notify(tenant_id)
