"""The scheduler: each deployment's scheduled runs created ahead, exactly once per start, also
with several server processes (and racing transactions) on one database; missed starts
created late after an outage; waiting agents woken."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select

from runwright.schedules import IntervalSchedule
from runwright_server import migrate, models
from runwright_server.auth import create_token
from runwright_server.db import make_engine, write_tx
from runwright_server.scheduler import Scheduler, SchedulingLimits, schedule_deployment, schedule_once, starts_to_create
from runwright_server.testing import ServerProcess, unique
from runwright_server.testing.fixtures import PG_URL, _pg_database

LIMITS = SchedulingLimits(ahead_runs=10, ahead_seconds=3600, late_after_seconds=5)
T0 = datetime(2026, 1, 1, 12, 0, 0)  # naive UTC, as the database stores it


def every(seconds: float, start: datetime) -> IntervalSchedule:
    return IntervalSchedule(start.replace(tzinfo=UTC), timedelta(seconds=seconds))


# ----------------------------------------------------------------------------- which starts


def test_a_new_deployment_gets_the_start_due_now_and_the_next_ones() -> None:
    starts = starts_to_create(every(60, T0), None, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), LIMITS)
    assert [s.start_time for s in starts] == [T0 + timedelta(seconds=60 * i) for i in range(11)]


def test_nothing_is_created_twice_and_the_window_moves_on() -> None:
    now = T0 + timedelta(seconds=1)
    first = starts_to_create(every(60, T0), None, now, now, LIMITS)
    until = first[-1].start_time
    assert starts_to_create(every(60, T0), until, now, now + timedelta(seconds=30), LIMITS) == []
    later = starts_to_create(every(60, T0), until, now, now + timedelta(seconds=125), LIMITS)
    assert [s.start_time for s in later] == [until + timedelta(seconds=60), until + timedelta(seconds=120)]


def test_starts_beyond_the_horizon_wait() -> None:
    limits = SchedulingLimits(ahead_runs=10, ahead_seconds=600, late_after_seconds=5)
    starts = starts_to_create(every(3600, T0 + timedelta(seconds=30)), None, T0, T0, limits)
    assert [s.start_time for s in starts] == [T0 + timedelta(seconds=30)]  # the next is an hour away


def test_missed_starts_are_caught_up_a_batch_at_a_time_and_never_skipped() -> None:
    limits = SchedulingLimits(ahead_runs=5, ahead_seconds=3600, late_after_seconds=5)
    schedule = every(60, T0)
    until = T0
    now = T0 + timedelta(minutes=20)  # the server was down for 20 minutes
    created: list[datetime] = []
    while batch := starts_to_create(schedule, until, T0, now, limits):
        created += [s.start_time for s in batch]
        until = batch[-1].start_time
    assert created == [T0 + timedelta(minutes=i) for i in range(1, 21 + 5)]


def test_missed_starts_older_than_the_look_back_are_skipped() -> None:
    now = T0 + timedelta(days=3)
    starts = starts_to_create(every(60, T0), T0, T0, now, SchedulingLimits(ahead_runs=10, ahead_seconds=120))
    assert starts[0].start_time == now - timedelta(seconds=60)


def test_clock_parameter_defaults_travel_with_their_starts() -> None:
    clock = IntervalSchedule(T0.replace(tzinfo=UTC), timedelta(hours=1), parameter_defaults={"n": 7})
    assert starts_to_create(clock, None, T0, T0, LIMITS)[0].parameter_defaults == {"n": 7}


# ----------------------------------------------------------------------------- on a database


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(not PG_URL, reason="set RUNWRIGHT_TEST_POSTGRES_URL"))]
)
def fresh_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A migrated database of this test alone (one per backend)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'server.db'}"
        _migrate(url)
        yield url
    else:
        assert PG_URL
        for url in _pg_database(PG_URL):
            _migrate(url)
            yield url


def _migrate(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()


def _token(url: str, tenant: str = "a") -> str:
    engine = make_engine(url)
    try:
        return create_token(engine, unique("t"), tenant=tenant)
    finally:
        engine.dispose()


def _deploy(api: str, session: requests.Session, schedule: dict[str, Any] | None) -> dict[str, Any]:
    tasks = [{"slug": "a", "name": "a"}]
    flow = session.post(f"{api}/flows", json={"name": unique(), "tasks": tasks, "edges": []}).json()
    body = {
        "name": unique("dep"),
        "flow_id": flow["id"],
        "flow_name": flow["name"],
        "storage": "server",
        "storage_ref": {"digest": "0" * 64},
        "schedule": schedule,
    }
    r = session.post(f"{api}/deployments", json=body)
    assert r.status_code == 201, r.text
    deployment: dict[str, Any] = r.json()
    return deployment


def _starts(engine: Engine, deployment_id: str) -> list[datetime]:
    fr = models.flow_runs
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(fr.c.scheduled_start_time).where(fr.c.deployment_id == deployment_id).order_by(fr.c.scheduled_start_time)
            ).scalars()
        )


def test_two_server_processes_create_each_start_exactly_once(fresh_db: str) -> None:
    token = _token(fresh_db)
    env = {
        "RUNWRIGHT__SERVER__SCHEDULER_INTERVAL": "0.1",
        "RUNWRIGHT__SERVER__SCHEDULE_AHEAD_RUNS": "3",
    }
    servers = [ServerProcess(fresh_db, env=env).start(), ServerProcess(fresh_db, env=env).start()]
    engine = make_engine(fresh_db)
    try:
        api = servers[0].url + "/api/v1"
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            deployment = _deploy(api, session, IntervalSchedule(start, timedelta(seconds=0.25)).serialize())
            time.sleep(3)  # both schedulers keep topping the runs up, racing for every new start
        starts = _starts(engine, deployment["id"])
        expected = [start.replace(tzinfo=None) + timedelta(seconds=0.25 * i) for i in range(len(starts))]
        assert starts == expected  # one run per start, none missing
        assert len(starts) >= 3 + 8  # the schedulers kept three ahead while the starts passed
    finally:
        for server in servers:
            server.stop()
        engine.dispose()
    for server in servers:
        assert server.proc is None


def test_racing_transactions_are_refused_by_the_unique_constraint(fresh_db: str) -> None:
    """Schedulers that do not see each other's work (no row lock) still create one run per start."""
    token = _token(fresh_db)
    server = ServerProcess(fresh_db, env={"RUNWRIGHT__SERVER__SCHEDULER_INTERVAL": "3600"}).start()
    engine = make_engine(fresh_db)
    try:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            deployment = _deploy(server.url + "/api/v1", session, None)  # unscheduled: nothing created yet
        d = models.deployments
        schedule = every(60, datetime.now(UTC).replace(tzinfo=None))
        with write_tx(engine) as conn:
            conn.execute(d.update().where(d.c.id == deployment["id"]).values(schedule=_json(schedule.serialize())))
            row = conn.execute(select(d).where(d.c.id == deployment["id"])).mappings().one()
        now = row["updated"]
        expected = len(starts_to_create(schedule, None, now, now, LIMITS))
        results: list[int] = []
        errors: list[BaseException] = []

        def other_server() -> None:  # sees no runs yet: the first transaction has not committed
            try:
                with write_tx(engine) as conn:
                    results.append(schedule_deployment(conn, row, LIMITS, now))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        with write_tx(engine) as conn:
            results.append(schedule_deployment(conn, row, LIMITS, now))
            racer = threading.Thread(target=other_server)
            racer.start()
            time.sleep(0.5)  # PostgreSQL: its inserts wait on ours; SQLite: its transaction waits to begin
        racer.join(60)
        assert errors == []
        assert results == [expected, 0]
        fr = models.flow_runs
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).where(fr.c.deployment_id == deployment["id"])).scalar()
            distinct = conn.execute(
                select(func.count(func.distinct(fr.c.scheduled_start_time))).where(fr.c.deployment_id == deployment["id"])
            ).scalar()
        assert total == distinct == expected == 10
    finally:
        server.stop()
        engine.dispose()


def _tenant_id(engine: Engine, name: str) -> str:
    t = models.tenants
    with engine.connect() as conn:
        return str(conn.execute(select(t.c.id).where(t.c.name == name)).scalar_one())


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_starts_missed_while_no_server_ran_are_created_late(fresh_db: str) -> None:
    token = _token(fresh_db)
    server = ServerProcess(fresh_db, env={"RUNWRIGHT__SERVER__SCHEDULER_INTERVAL": "3600"}).start()
    engine = make_engine(fresh_db)
    try:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            api = server.url + "/api/v1"
            now = datetime.now(UTC).replace(microsecond=0)
            start = now - timedelta(minutes=20)
            deployment = _deploy(api, session, IntervalSchedule(start, timedelta(seconds=60)).serialize())
            d = models.deployments
            with write_tx(engine) as conn:  # its runs were created up to `start`, then no server ran
                conn.execute(d.update().where(d.c.id == deployment["id"]).values(scheduled_until=start.replace(tzinfo=None)))
            passes = 0
            while schedule_once(engine, LIMITS) and passes < 10:
                passes += 1
            assert passes >= 2  # at most ten missed starts a pass, then the ones ahead
            starts = _starts(engine, deployment["id"])
            base = start.replace(tzinfo=None)
            assert starts == [base + timedelta(seconds=60 * i) for i in range(1, len(starts) + 1)]
            assert starts[-1] - datetime.now(UTC).replace(tzinfo=None) > timedelta(minutes=8)  # ten ahead again
            runs = session.get(f"{api}/flow_runs", params={"flow_id": deployment["flow_id"], "limit": 100}).json()
            late = sorted(datetime.fromisoformat(run["scheduled_start_time"]) for run in runs if run["late"])
            assert len(late) >= 19 and late[0] == start + timedelta(seconds=60)
    finally:
        server.stop()
        engine.dispose()


def test_the_scheduler_wakes_the_tenants_that_got_runs(fresh_db: str) -> None:
    token = _token(fresh_db, tenant="woken")
    server = ServerProcess(fresh_db, env={"RUNWRIGHT__SERVER__SCHEDULER_INTERVAL": "3600"}).start()
    engine = make_engine(fresh_db)
    notified: list[str] = []
    scheduler = Scheduler(engine, SchedulingLimits(ahead_runs=2, ahead_seconds=3600), 0.05, notified.append)
    try:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            start = datetime.now(UTC).replace(microsecond=0)
            _deploy(server.url + "/api/v1", session, IntervalSchedule(start, timedelta(seconds=0.2)).serialize())
        scheduler.start()
        deadline = time.monotonic() + 10
        while not notified and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(notified) == {_tenant_id(engine, "woken")}
    finally:
        scheduler.stop()
        server.stop()
        engine.dispose()
