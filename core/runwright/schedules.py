"""Schedules: when a flow starts, unattended.

``IntervalSchedule`` and ``CronSchedule`` are clocks; ``Schedule(clocks=[...])`` merges
several of them (sorted, a start shared by two clocks given once). Every schedule answers
``next(n, after=None)`` with its next ``n`` start times, and ``events(n, after=None)`` with
the same starts plus each clock's ``parameter_defaults``.

Semantics, the same for every clock:

* Dates are timezone-aware. A naive ``datetime`` is refused with an error that says how to
  fix it: a schedule is evaluated far from the code that wrote it, and "9:00 in which zone?"
  must never be guessed. Without dates, a schedule works in UTC.
* ``start_date`` and ``end_date`` are inclusive: a start exactly on either is a start.
* ``after`` is exclusive: ``next(n, after=t)`` gives starts strictly later than ``t``
  (default: now). An ended schedule gives ``[]``.
* An interval is an exact duration in absolute time (``timedelta(days=1)`` is 24 hours,
  also across a DST change); "every day at 9:00 in Berlin" is a cron schedule.
* A cron expression is evaluated in the schedule's timezone (``timezone=``, else the
  ``start_date``'s, else UTC) with cronsim, which follows Debian cron across DST changes: a
  job due in the skipped spring hour runs right after the jump, a daily job in the repeated
  autumn hour runs once, and jobs that run every hour or more often run at every matching
  wall-clock time (so "30 * * * *" runs twice in the repeated hour, an hour apart).

``serialize()`` gives a plain JSON-compatible dict; ``Schedule.deserialize(data)`` rebuilds
any schedule from one and names the bad field when it cannot.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "BaseSchedule",
    "Clock",
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "ScheduleError",
    "ScheduledStart",
]

UTC = datetime.UTC
_EPSILON = datetime.timedelta(microseconds=1)


class ScheduleError(ValueError):
    """A schedule's arguments or serialized data are invalid; the message names the field."""


class ScheduledStart(NamedTuple):
    """One start of a schedule: when, and the parameter defaults of the clock that gave it."""

    start_time: datetime.datetime
    parameter_defaults: dict[str, Any]


def _aware(value: Any, field: str) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise ScheduleError(f"{field} must be a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(
            f"{field} must be timezone-aware, got the naive {value.isoformat()}: pass "
            "tzinfo=datetime.timezone.utc or tzinfo=zoneinfo.ZoneInfo('Europe/Berlin')"
        )
    return value


def _timezone_name(tz: datetime.tzinfo, field: str) -> str:
    """A name that rebuilds ``tz``: an IANA key, "UTC", or a fixed offset like "+02:00"."""
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is UTC:
        return "UTC"
    if isinstance(tz, datetime.timezone):
        offset = tz.utcoffset(None)
        sign = "-" if offset < datetime.timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    raise ScheduleError(
        f"{field}: the timezone {tz!r} cannot be serialized; use zoneinfo.ZoneInfo('Area/City') "
        "or datetime.timezone"
    )


def _timezone(name: Any, field: str) -> datetime.tzinfo:
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"{field} must be a timezone name such as 'Europe/Berlin' or 'UTC', got {name!r}")
    if name.upper() == "UTC":
        return UTC
    if name[0] in "+-" and len(name) == 6 and name[3] == ":":
        try:
            hours, minutes = int(name[1:3]), int(name[4:6])
        except ValueError:
            pass
        else:
            offset = datetime.timedelta(hours=hours, minutes=minutes)
            return datetime.timezone(-offset if name[0] == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{field}: unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin'") from None


def _parameter_defaults(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ScheduleError(f"{field} must be a dict from parameter name to value, got {value!r}")
    return dict(value)


def _to_utc(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(UTC)


class BaseSchedule:
    """What every schedule answers: its next starts, and its plain-data form."""

    def events(self, n: int, after: datetime.datetime | None = None) -> list[ScheduledStart]:
        """The next ``n`` starts strictly after ``after`` (default: now), earliest first."""
        if n <= 0:
            return []
        after_utc = _to_utc(_aware(after, "after")) if after is not None else datetime.datetime.now(UTC)
        return list(itertools.islice(self._iter_events(after_utc), n))

    def next(self, n: int, after: datetime.datetime | None = None) -> list[datetime.datetime]:
        """The next ``n`` start times strictly after ``after`` (default: now); ``[]`` once ended."""
        return [event.start_time for event in self.events(n, after)]

    def _iter_events(self, after: datetime.datetime) -> Iterator[ScheduledStart]:
        raise NotImplementedError

    def serialize(self) -> dict[str, Any]:
        """A JSON-compatible dict; ``Schedule.deserialize`` turns it back into this schedule."""
        raise NotImplementedError

    @staticmethod
    def deserialize(data: Any) -> BaseSchedule:
        """Rebuild a schedule from ``serialize()``'s dict; a ScheduleError names a bad field."""
        return _deserialize(data, "schedule")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.serialize() == self.serialize()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(repr(self.serialize()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.serialize().items() if k != "type" and v not in (None, {}))
        return f"{type(self).__name__}({fields})"


class Clock(BaseSchedule):
    """One source of starts, between an inclusive ``start_date`` and ``end_date``."""

    def __init__(
        self,
        start_date: datetime.datetime | None,
        end_date: datetime.datetime | None,
        parameter_defaults: Mapping[str, Any] | None,
    ) -> None:
        self.start_date = _aware(start_date, "start_date") if start_date is not None else None
        self.end_date = _aware(end_date, "end_date") if end_date is not None else None
        if self.start_date is not None and self.end_date is not None and self.end_date < self.start_date:
            raise ScheduleError(
                f"end_date {self.end_date.isoformat()} is before start_date {self.start_date.isoformat()}"
            )
        self.parameter_defaults = _parameter_defaults(parameter_defaults, "parameter_defaults")

    def _iter_events(self, after: datetime.datetime) -> Iterator[ScheduledStart]:
        end = _to_utc(self.end_date) if self.end_date is not None else None
        for start in self._iter_times(after):
            if end is not None and _to_utc(start) > end:
                return
            yield ScheduledStart(start, dict(self.parameter_defaults))

    def _iter_times(self, after: datetime.datetime) -> Iterator[datetime.datetime]:
        """Start times strictly after ``after`` (UTC), from ``start_date`` on, in order."""
        raise NotImplementedError

    def _common_fields(self, tz: datetime.tzinfo) -> dict[str, Any]:
        return {
            "start_date": self.start_date.isoformat() if self.start_date is not None else None,
            "end_date": self.end_date.isoformat() if self.end_date is not None else None,
            "timezone": _timezone_name(tz, "timezone"),
            "parameter_defaults": dict(self.parameter_defaults),
        }


class IntervalSchedule(Clock):
    """A start every ``interval`` from ``start_date`` on (its timezone is that of the starts)."""

    def __init__(
        self,
        start_date: datetime.datetime,
        interval: datetime.timedelta,
        end_date: datetime.datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
    ) -> None:
        if start_date is None:
            raise ScheduleError("start_date is required: IntervalSchedule(start_date=..., interval=...)")
        super().__init__(start_date, end_date, parameter_defaults)
        assert self.start_date is not None and self.start_date.tzinfo is not None
        _timezone_name(self.start_date.tzinfo, "start_date")  # fail now, not when the server stores it
        if not isinstance(interval, datetime.timedelta):
            raise ScheduleError(f"interval must be a datetime.timedelta, got {type(interval).__name__}: {interval!r}")
        if interval <= datetime.timedelta(0):
            raise ScheduleError(f"interval must be positive, got {interval}")
        self.interval = interval

    def _iter_times(self, after: datetime.datetime) -> Iterator[datetime.datetime]:
        assert self.start_date is not None
        start = _to_utc(self.start_date)
        tz = self.start_date.tzinfo
        # exact integer arithmetic on microseconds: the first start strictly after `after`
        k = 0 if after < start else (after - start) // self.interval + 1
        while True:
            yield (start + k * self.interval).astimezone(tz)
            k += 1

    def serialize(self) -> dict[str, Any]:
        assert self.start_date is not None and self.start_date.tzinfo is not None
        seconds = self.interval.total_seconds()
        return {
            "type": "IntervalSchedule",
            "interval": int(seconds) if seconds.is_integer() else seconds,
            **self._common_fields(self.start_date.tzinfo),
        }


class CronSchedule(Clock):
    """Starts at the times a cron expression matches, in the schedule's timezone.

    The timezone is ``timezone`` (an IANA name such as ``"Europe/Berlin"``), else the
    ``start_date``'s, else UTC.
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime.datetime | None = None,
        end_date: datetime.datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        timezone: str | None = None,
    ) -> None:
        super().__init__(start_date, end_date, parameter_defaults)
        if not isinstance(cron, str):
            raise ScheduleError(f"cron must be a string such as '0 9 * * MON-FRI', got {cron!r}")
        try:
            CronSim(cron, datetime.datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ScheduleError(f"cron {cron!r} is not a valid cron expression: {exc}") from None
        self.cron = cron
        if timezone is not None:
            self.timezone = _timezone(timezone, "timezone")
        elif self.start_date is not None and self.start_date.tzinfo is not None:
            self.timezone = self.start_date.tzinfo
        else:
            self.timezone = UTC
        _timezone_name(self.timezone, "timezone")  # fail now, not when the server stores it

    def _iter_times(self, after: datetime.datetime) -> Iterator[datetime.datetime]:
        # cronsim yields matches strictly after its start: one microsecond before the
        # start_date makes start_date itself a possible match (inclusive)
        origin = after
        if self.start_date is not None:
            origin = max(origin, _to_utc(self.start_date) - _EPSILON)
        # cronsim stops when nothing matches within 50 years of the last match
        yield from CronSim(self.cron, origin.astimezone(self.timezone))

    def serialize(self) -> dict[str, Any]:
        return {"type": "CronSchedule", "cron": self.cron, **self._common_fields(self.timezone)}


class Schedule(BaseSchedule):
    """Several clocks merged: their starts in order, a time shared by clocks given once.

    When two clocks start at the same instant, the first clock in ``clocks`` gives the
    parameter defaults of that start.
    """

    def __init__(self, clocks: Iterable[Clock]) -> None:
        self.clocks = list(clocks)
        for index, clock in enumerate(self.clocks):
            if not isinstance(clock, Clock):
                raise ScheduleError(
                    f"clocks[{index}] must be an IntervalSchedule or CronSchedule, got {type(clock).__name__}"
                )

    def _iter_events(self, after: datetime.datetime) -> Iterator[ScheduledStart]:
        streams = [clock._iter_events(after) for clock in self.clocks]
        heads: list[ScheduledStart | None] = [next(stream, None) for stream in streams]
        last: datetime.datetime | None = None
        while True:
            live = [(_to_utc(head.start_time), index) for index, head in enumerate(heads) if head is not None]
            if not live:
                return
            when, index = min(live)
            head = heads[index]
            assert head is not None
            heads[index] = next(streams[index], None)
            if when != last:
                last = when
                yield head

    def serialize(self) -> dict[str, Any]:
        return {"type": "Schedule", "clocks": [clock.serialize() for clock in self.clocks]}


# -- deserialization ---------------------------------------------------------------------------
_CLOCK_TYPES = ("IntervalSchedule", "CronSchedule")


def _field(data: Mapping[str, Any], key: str, where: str, required: bool = False) -> Any:
    if required and data.get(key) is None:
        raise ScheduleError(f"{where}.{key} is required")
    return data.get(key)


def _datetime(value: Any, field: str, tz: datetime.tzinfo | None) -> datetime.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScheduleError(f"{field} must be an ISO 8601 datetime string, got {value!r}")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{field}: {value!r} is not an ISO 8601 datetime such as '2026-01-01T09:00:00+01:00'") from None
    if parsed.tzinfo is None:
        raise ScheduleError(f"{field}: {value!r} has no UTC offset; write it like '2026-01-01T09:00:00+00:00'")
    return parsed.astimezone(tz) if tz is not None else parsed


def _deserialize(data: Any, where: str) -> BaseSchedule:
    if not isinstance(data, Mapping):
        raise ScheduleError(f"{where} must be a dict with a 'type', got {type(data).__name__}: {data!r}")
    kind = data.get("type")
    if kind == "Schedule":
        clocks = data.get("clocks")
        if not isinstance(clocks, list):
            raise ScheduleError(f"{where}.clocks must be a list of IntervalSchedule/CronSchedule dicts, got {clocks!r}")
        built = []
        for index, clock_data in enumerate(clocks):
            clock = _deserialize(clock_data, f"{where}.clocks[{index}]")
            if not isinstance(clock, Clock):
                raise ScheduleError(f"{where}.clocks[{index}] must be an IntervalSchedule or CronSchedule")
            built.append(clock)
        return Schedule(built)
    if kind not in _CLOCK_TYPES:
        raise ScheduleError(
            f"{where}.type must be one of Schedule, {', '.join(_CLOCK_TYPES)}; got {kind!r}"
        )
    tz_name = data.get("timezone")
    tz = _timezone(tz_name, f"{where}.timezone") if tz_name is not None else None
    start_date = _datetime(data.get("start_date"), f"{where}.start_date", tz)
    end_date = _datetime(data.get("end_date"), f"{where}.end_date", tz)
    defaults = _parameter_defaults(data.get("parameter_defaults"), f"{where}.parameter_defaults")
    try:
        if kind == "IntervalSchedule":
            seconds = _field(data, "interval", where, required=True)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ScheduleError(f"{where}.interval must be a number of seconds, got {seconds!r}")
            if start_date is None:
                raise ScheduleError(f"{where}.start_date is required")
            return IntervalSchedule(start_date, datetime.timedelta(seconds=seconds), end_date, defaults)
        cron = _field(data, "cron", where, required=True)
        return CronSchedule(cron, start_date, end_date, defaults, timezone=tz_name)
    except ScheduleError as exc:
        message = str(exc)
        raise ScheduleError(message if message.startswith(where) else f"{where}.{message}") from None
