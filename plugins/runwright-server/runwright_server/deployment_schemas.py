"""Request and response bodies of deployments and stored code (pydantic), bounded like the
rest (:mod:`runwright_server.schemas`): bad input is a 422, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from runwright.schedules import BaseSchedule, Schedule, ScheduleError
from runwright_server.schemas import MAX_INT32, Id, JsonObject, Name, _In, to_json_text

#: a deployment's or a queue's name: what a URL path and a shell take without quoting
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_SCHEDULE_CHARS = 64 * 1024
MAX_STORAGE_REF_CHARS = 16 * 1024
#: how many start times a deployment read shows
NEXT_STARTS = 3

DeploymentName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN),
    Field(description="Letters, digits, '.', '_' and '-', starting with a letter or digit."),
]
QueueName = DeploymentName
StorageName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NAME_PATTERN)]
ExecutorName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NAME_PATTERN)]


def parse_schedule(data: Any) -> BaseSchedule:
    """The schedule of ``serialize()``'s dict, checked to give start times (ValueError else)."""
    try:
        schedule = Schedule.deserialize(data)
        schedule.events(NEXT_STARTS, after=datetime.now(UTC))
    except ScheduleError as exc:
        raise ValueError(f"not a valid schedule: {exc}") from None
    except (OverflowError, ValueError, TypeError, ArithmeticError) as exc:
        raise ValueError(f"the schedule cannot give start times: {exc}") from None
    return schedule


def _schedule(value: dict[str, Any]) -> dict[str, Any]:
    if len(to_json_text(value)) > MAX_SCHEDULE_CHARS:
        raise ValueError(f"a schedule must encode to at most {MAX_SCHEDULE_CHARS:,} characters of JSON")
    parse_schedule(value)
    return value


def _storage_ref(value: dict[str, Any]) -> dict[str, Any]:
    if len(to_json_text(value)) > MAX_STORAGE_REF_CHARS:
        raise ValueError(f"a storage reference must encode to at most {MAX_STORAGE_REF_CHARS:,} characters of JSON")
    return value


ScheduleDict = Annotated[
    dict[str, Any],
    AfterValidator(_schedule),
    Field(description="runwright.schedules' serialize() dict (IntervalSchedule, CronSchedule or Schedule)."),
]
StorageRef = Annotated[
    JsonObject,
    AfterValidator(_storage_ref),
    Field(description="What the storage needs to find the code again (server storage: digest and filename)."),
]
Limit = Annotated[int, Field(ge=0, le=MAX_INT32)]


class StoredOut(BaseModel):
    digest: str
    size: int
    created: bool


class DeploymentIn(_In):
    name: DeploymentName
    flow_id: Id
    flow_name: Name
    storage: StorageName
    storage_ref: StorageRef
    schedule: ScheduleDict | None = None
    parameters: JsonObject = Field(default_factory=dict)
    queue: QueueName = "default"
    executor: ExecutorName | None = None
    concurrency_limit: Limit | None = None


class DeploymentOut(BaseModel):
    id: str
    name: str
    flow_id: str
    flow_name: str
    storage: str
    storage_ref: dict[str, Any]
    schedule: dict[str, Any] | None
    parameters: dict[str, Any]
    queue: str
    executor: str | None
    concurrency_limit: int | None
    paused: bool
    version: int
    next_starts: list[datetime] = Field(description="The schedule's next start times (none while paused).")
    created: datetime
    updated: datetime


class DeploymentWriteOut(DeploymentOut):
    changed: bool = Field(description="False when the same deployment was already registered (nothing changed).")


class DeploymentDeletedOut(BaseModel):
    name: str
    dropped_runs: int = Field(description="Its runs that never started, deleted with it.")
    cancelled_runs: int = Field(description="Its Scheduled runs that had been released or retried, now Cancelled.")


class DeploymentRunIn(_In):
    parameters: JsonObject = Field(default_factory=dict)


__all__ = [
    "DeploymentDeletedOut",
    "DeploymentIn",
    "DeploymentName",
    "DeploymentOut",
    "DeploymentRunIn",
    "DeploymentWriteOut",
    "StoredOut",
    "parse_schedule",
]
