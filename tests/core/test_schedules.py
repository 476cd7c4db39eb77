"""Schedules: next starts of interval and cron clocks, merged schedules, serialization."""

import datetime
import json
from zoneinfo import ZoneInfo

import pytest

from runwright.schedules import CronSchedule, IntervalSchedule, Schedule, ScheduledStart, ScheduleError

UTC = datetime.UTC
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = datetime.timedelta(hours=1)


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


# -- interval ------------------------------------------------------------------------------------
def test_interval_next_starts_at_start_date_inclusive():
    schedule = IntervalSchedule(utc(2026, 1, 1), HOUR)
    assert schedule.next(3, after=utc(2025, 6, 1)) == [utc(2026, 1, 1, 0), utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]


def test_interval_next_is_strictly_after_after():
    schedule = IntervalSchedule(utc(2026, 1, 1), HOUR)
    assert schedule.next(2, after=utc(2026, 1, 1, 1)) == [utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]
    assert schedule.next(1, after=utc(2026, 1, 1, 1, 0, 0, 1)) == [utc(2026, 1, 1, 2)]


def test_interval_end_date_is_inclusive_and_an_ended_schedule_gives_nothing():
    schedule = IntervalSchedule(utc(2026, 1, 1), HOUR, end_date=utc(2026, 1, 1, 2))
    assert schedule.next(10, after=utc(2025, 1, 1)) == [utc(2026, 1, 1, 0), utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]
    assert schedule.next(10, after=utc(2026, 1, 1, 2)) == []
    assert IntervalSchedule(utc(2000, 1, 1), HOUR, end_date=utc(2000, 1, 2)).next(1) == []


def test_interval_without_after_starts_from_now():
    now = datetime.datetime.now(UTC)
    schedule = IntervalSchedule(now - datetime.timedelta(seconds=10), datetime.timedelta(seconds=3))
    starts = schedule.next(2)
    assert now < starts[0] <= now + datetime.timedelta(seconds=3)
    assert starts[1] - starts[0] == datetime.timedelta(seconds=3)


def test_interval_is_an_exact_duration_across_dst_in_the_start_dates_zone():
    schedule = IntervalSchedule(datetime.datetime(2026, 3, 28, 12, tzinfo=BERLIN), datetime.timedelta(days=1))
    first, second = schedule.next(2, after=utc(2026, 3, 1))
    assert second.astimezone(UTC) - first.astimezone(UTC) == datetime.timedelta(hours=24)
    assert (first.hour, second.hour) == (12, 13)  # the wall clock moved, the interval did not
    assert second.tzinfo == BERLIN


# -- cron ----------------------------------------------------------------------------------------
def test_cron_next_in_utc_by_default():
    schedule = CronSchedule("0 9 * * MON-FRI")
    starts = schedule.next(3, after=utc(2026, 12, 4, 10))  # a Friday, after 9:00
    assert starts == [utc(2026, 12, 7, 9), utc(2026, 12, 8, 9), utc(2026, 12, 9, 9)]
    assert all(s.utcoffset() == datetime.timedelta(0) for s in starts)


def test_cron_start_and_end_dates_are_inclusive():
    schedule = CronSchedule("0 9 * * *", start_date=utc(2026, 1, 1, 9), end_date=utc(2026, 1, 3, 9))
    assert schedule.next(10, after=utc(2025, 1, 1)) == [utc(2026, 1, 1, 9), utc(2026, 1, 2, 9), utc(2026, 1, 3, 9)]
    assert schedule.next(10, after=utc(2026, 1, 3, 9)) == []


def test_cron_runs_in_the_start_dates_timezone():
    schedule = CronSchedule("0 9 * * *", start_date=datetime.datetime(2026, 1, 1, tzinfo=BERLIN))
    (start,) = schedule.next(1, after=utc(2026, 1, 1))
    assert start == datetime.datetime(2026, 1, 1, 9, tzinfo=BERLIN) == utc(2026, 1, 1, 8)


def test_daily_cron_in_berlin_across_spring_forward_runs_once_right_after_the_jump():
    schedule = CronSchedule("30 2 * * *", timezone="Europe/Berlin")
    starts = schedule.next(3, after=utc(2026, 3, 28))
    # 2026-03-29 02:30 does not exist in Berlin: cron runs the job at 03:00 instead, once
    assert [s.astimezone(UTC) for s in starts] == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    assert [(s.hour, s.minute) for s in starts] == [(2, 30), (3, 0), (2, 30)]


def test_daily_cron_in_berlin_across_fall_back_runs_once_in_the_repeated_hour():
    schedule = CronSchedule("30 2 * * *", timezone="Europe/Berlin")
    starts = [s.astimezone(UTC) for s in schedule.next(3, after=utc(2026, 10, 24))]
    assert starts == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_hourly_cron_in_berlin_follows_the_wall_clock_through_both_changes():
    schedule = CronSchedule("30 * * * *", timezone="Europe/Berlin")
    spring = [s.astimezone(UTC) for s in schedule.next(3, after=utc(2026, 3, 29, 0))]
    assert spring == [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30)]  # 01:30, 03:30, 04:30 local
    autumn = [s.astimezone(UTC) for s in schedule.next(3, after=utc(2026, 10, 24, 23, 45))]
    # 02:30 CEST and 02:30 CET are two instants an hour apart: each hour runs once
    assert autumn == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30)]
    assert len(set(autumn)) == 3


def test_a_bad_cron_expression_is_refused_with_its_text():
    with pytest.raises(ScheduleError, match=r"cron '61 \* \* \* \*' is not a valid cron expression"):
        CronSchedule("61 * * * *")


# -- dates ---------------------------------------------------------------------------------------
def test_naive_dates_are_refused_with_the_fix():
    with pytest.raises(ScheduleError, match="start_date must be timezone-aware.*tzinfo="):
        IntervalSchedule(datetime.datetime(2026, 1, 1), HOUR)
    with pytest.raises(ScheduleError, match="end_date must be timezone-aware"):
        CronSchedule("* * * * *", end_date=datetime.datetime(2026, 1, 1))
    with pytest.raises(ScheduleError, match="after must be timezone-aware"):
        CronSchedule("* * * * *").next(1, after=datetime.datetime(2026, 1, 1))


def test_bad_interval_arguments_are_refused():
    with pytest.raises(ScheduleError, match="interval must be positive"):
        IntervalSchedule(utc(2026, 1, 1), datetime.timedelta(0))
    with pytest.raises(ScheduleError, match="end_date .* is before start_date"):
        IntervalSchedule(utc(2026, 1, 2), HOUR, end_date=utc(2026, 1, 1))


# -- merged schedules and parameter defaults ------------------------------------------------------
def test_a_schedule_merges_its_clocks_sorted_and_deduplicated():
    schedule = Schedule(
        [
            IntervalSchedule(utc(2026, 1, 1), datetime.timedelta(hours=2)),
            CronSchedule("0 * * * *", start_date=utc(2026, 1, 1)),
            CronSchedule("30 0 * * *", start_date=utc(2026, 1, 1)),
        ]
    )
    assert schedule.next(5, after=utc(2025, 12, 31, 23, 59)) == [
        utc(2026, 1, 1, 0),
        utc(2026, 1, 1, 0, 30),
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]


def test_a_schedule_ends_when_all_its_clocks_ended():
    schedule = Schedule(
        [
            IntervalSchedule(utc(2026, 1, 1), HOUR, end_date=utc(2026, 1, 1, 1)),
            CronSchedule("30 * * * *", start_date=utc(2026, 1, 1), end_date=utc(2026, 1, 1, 0, 30)),
        ]
    )
    assert schedule.next(10, after=utc(2025, 1, 1)) == [utc(2026, 1, 1, 0), utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 1)]
    assert schedule.next(10, after=utc(2026, 1, 1, 1)) == []


def test_each_start_carries_its_clocks_parameter_defaults_first_clock_wins_a_tie():
    schedule = Schedule(
        [
            CronSchedule("0 9 * * *", start_date=utc(2026, 1, 1), parameter_defaults={"region": "eu"}),
            CronSchedule("0 9,21 * * *", start_date=utc(2026, 1, 1), parameter_defaults={"region": "us"}),
        ]
    )
    assert schedule.events(3, after=utc(2026, 1, 1)) == [
        ScheduledStart(utc(2026, 1, 1, 9), {"region": "eu"}),
        ScheduledStart(utc(2026, 1, 1, 21), {"region": "us"}),
        ScheduledStart(utc(2026, 1, 2, 9), {"region": "eu"}),
    ]


# -- serialization -------------------------------------------------------------------------------
ROUND_TRIP = [
    IntervalSchedule(utc(2026, 1, 1), datetime.timedelta(seconds=90.5), end_date=utc(2026, 2, 1), parameter_defaults={"n": 1}),
    IntervalSchedule(datetime.datetime(2026, 1, 1, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))), HOUR),
    CronSchedule("30 2 * * *", start_date=datetime.datetime(2026, 3, 1, tzinfo=BERLIN)),
    CronSchedule("*/5 * * * *", timezone="America/New_York", parameter_defaults={"x": [1, 2]}),
    Schedule([IntervalSchedule(utc(2026, 1, 1), HOUR), CronSchedule("0 0 * * 0", timezone="Asia/Tokyo")]),
]


@pytest.mark.parametrize("schedule", ROUND_TRIP, ids=repr)
def test_serialization_round_trips_through_json(schedule):
    data = json.loads(json.dumps(schedule.serialize()))
    loaded = Schedule.deserialize(data)
    assert loaded == schedule and type(loaded) is type(schedule)
    after = utc(2026, 3, 28)
    assert loaded.events(5, after=after) == schedule.events(5, after=after)
    assert [s.utcoffset() for s in loaded.next(5, after=after)] == [s.utcoffset() for s in schedule.next(5, after=after)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1], "schedule must be a dict"),
        ({"type": "Weekly"}, "schedule.type must be one of"),
        ({"type": "IntervalSchedule", "interval": 60}, r"schedule.start_date is required"),
        ({"type": "IntervalSchedule", "start_date": "2026-01-01T00:00:00+00:00"}, r"schedule.interval is required"),
        ({"type": "IntervalSchedule", "start_date": "2026-01-01T00:00:00+00:00", "interval": "1h"}, r"schedule.interval must be a number"),
        ({"type": "IntervalSchedule", "start_date": "2026-01-01", "interval": 60}, r"schedule.start_date: '2026-01-01' has no UTC offset"),
        ({"type": "IntervalSchedule", "start_date": "soon", "interval": 60}, r"schedule.start_date: 'soon' is not an ISO 8601"),
        ({"type": "CronSchedule", "cron": "* * * * *", "timezone": "Mars/Olympus"}, r"schedule.timezone: unknown timezone"),
        ({"type": "CronSchedule", "cron": "* * *"}, r"schedule.cron '\* \* \*' is not a valid cron expression"),
        ({"type": "CronSchedule", "cron": "* * * * *", "parameter_defaults": [1]}, r"schedule.parameter_defaults must be a dict"),
        ({"type": "Schedule", "clocks": {}}, r"schedule.clocks must be a list"),
        ({"type": "Schedule", "clocks": [{"type": "CronSchedule"}]}, r"schedule.clocks\[0\].cron is required"),
        ({"type": "Schedule", "clocks": [{"type": "Schedule", "clocks": []}]}, r"schedule.clocks\[0\] must be an IntervalSchedule or CronSchedule"),
    ],
)
def test_bad_serialized_data_names_the_field(data, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule.deserialize(data)
