"""Request and response bodies (pydantic). Every field is bounded, so that bad input is a 422.

Strings reject NUL characters and anything that is not encodable as UTF-8 (PostgreSQL refuses
both), integers stay inside a signed 64-bit range, and free-form JSON objects (parameters,
context, states) must be re-encodable as strict JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticSerializationError, to_json

from runwright_server.plain_batches import MAX_INT32, MAX_INT64, UUID_TEXT, plain_batch
from runwright_server.state_rules import MAX_STATE_CHARS, check_state

MAX_BATCH = 10_000
#: most bytes of one inline result (base64 text); larger results use POST /results
MAX_INLINE_RESULT_CHARS = 64 * 1024 * 1024


def _clean_str(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 (no lone surrogates)") from exc
    return value


_Clean = AfterValidator(_clean_str)
Id = Annotated[str, StringConstraints(min_length=1, max_length=64), _Clean]
Name = Annotated[str, StringConstraints(min_length=1, max_length=500), _Clean]
Label = Annotated[str, StringConstraints(max_length=500), _Clean]
ShortLabel = Annotated[str, StringConstraints(max_length=200), _Clean]
Level = Annotated[str, StringConstraints(min_length=1, max_length=20), _Clean]
Message = Annotated[str, StringConstraints(max_length=1_000_000), _Clean]


def _utc_naive(value: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken as UTC. Stored naive."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError as exc:
        raise ValueError("datetime out of range") from exc


def to_json_text(value: Any) -> str:
    """Strict, compact JSON text of JSON data (no NaN/Infinity, no lone surrogates), raising
    ValueError for anything unencodable.

    pydantic-core's encoder writes it (a few times faster than ``json.dumps`` without
    ``ensure_ascii``: every state the server stores goes through here); text that it could
    not write, or that may hold a NaN or an infinity (which it writes as bare words), is
    written, or refused, by ``json.dumps``.
    """
    try:
        text = to_json(value).decode("utf-8")
        if "NaN" not in text and "Infinity" not in text:
            return _no_nul(text)
    except (PydanticSerializationError, ValueError, RecursionError):
        pass
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise ValueError(f"not encodable as JSON: {exc}") from exc
    return _no_nul(text)


def _no_nul(text: str) -> str:
    if "\x00" in text:  # only possible inside strings, which json.dumps escapes; belt and braces
        raise ValueError("must not contain NUL characters")
    return text


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    to_json_text(value)
    return value


def state_text(value: dict[str, Any]) -> str:
    """The state as strict JSON text, at most ``MAX_STATE_CHARS`` long (else ValueError)."""
    if type(value) is EncodedState:
        return value.text
    text = to_json_text(value)
    if len(text) > MAX_STATE_CHARS:
        raise ValueError(f"a state must encode to at most {MAX_STATE_CHARS:,} characters of JSON, not {len(text):,}")
    return text


class EncodedState(dict[str, Any]):
    """A validated state (a body's ``state``) that carries its JSON text (``text``), encoded
    once while the body is validated: what the database stores, and what
    :func:`state_text` returns without encoding it again."""

    __slots__ = ("text",)
    text: str


def encode_state(value: dict[str, Any]) -> EncodedState:
    """The state checked (its type; a long message cut) and encoded: an :class:`EncodedState`
    (ValueError: not a state, or longer than ``MAX_STATE_CHARS`` as JSON)."""
    check_state(value)
    encoded = EncodedState(value)
    encoded.text = state_text(value)
    return encoded


UtcDatetime = Annotated[datetime, AfterValidator(_utc_naive)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
#: the state is checked (its type, a long message cut) and encoded once: the validated value
#: is an :class:`EncodedState`
StateDict = Annotated[
    dict[str, Any],
    AfterValidator(encode_state),
    Field(description='A serialized runwright state: a JSON object whose "type" names a state class (e.g. "Running").'),
]
Version = Annotated[int, Field(ge=0, le=MAX_INT64)]
LeaseToken = Annotated[
    str,
    StringConstraints(min_length=16, max_length=64, pattern=r"^[0-9A-Za-z_-]+$"),
    Field(description="A runner's lease token (random, chosen by the runner)."),
]
ResultKey = Annotated[
    str,
    StringConstraints(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$"),
    Field(description="32 lowercase hex digits chosen by the client; the result's URI is rwcloud://results/<key>."),
]


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not valid base64: {exc}") from exc
    return value


Base64Data = Annotated[str, StringConstraints(max_length=MAX_INLINE_RESULT_CHARS), AfterValidator(_base64)]
MapIndex = Annotated[int, Field(ge=-1, le=MAX_INT32)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- flows


class TaskIn(_In):
    slug: Name
    name: Label = ""


class EdgeIn(_In):
    upstream: Name
    downstream: Name
    key: Label | None = None
    mapped: bool = False


class FlowRefOut(BaseModel):
    """A registered flow without its structure (``GET /flows/by_hash/{content_hash}``)."""

    id: str
    name: str
    version: str | None = None


class FlowIn(_In):
    name: Name
    version: ShortLabel | None = None
    tasks: list[TaskIn] = Field(default_factory=list, max_length=100_000)
    edges: list[EdgeIn] = Field(default_factory=list, max_length=200_000)

    @model_validator(mode="after")
    def _check_graph(self) -> FlowIn:
        slugs = [t.slug for t in self.tasks]
        if len(set(slugs)) != len(slugs):
            raise ValueError("task slugs must be unique within a flow")
        known = set(slugs)
        for edge in self.edges:
            for end in (edge.upstream, edge.downstream):
                if end not in known:
                    raise ValueError(f"edge names unknown task slug {end!r}")
        return self


class TaskOut(BaseModel):
    slug: str
    name: str


class EdgeOut(BaseModel):
    upstream: str
    downstream: str
    key: str | None = None
    mapped: bool = False


class FlowOut(BaseModel):
    id: str
    name: str
    version: str | None
    tasks: list[TaskOut]
    edges: list[EdgeOut]
    created: datetime


# ----------------------------------------------------------------------------- runs


class FlowVersionOut(BaseModel):
    id: str
    version: str | None
    created: datetime


class LastRunOut(BaseModel):
    id: str
    state_type: str
    created: datetime


class FlowSummaryOut(BaseModel):
    """A flow by name (``GET /flows/summary``): its registered versions, runs, last run."""

    name: str
    versions: list[FlowVersionOut]
    run_count: int
    last_run: LastRunOut | None


class FlowRunIn(_In):
    """A new flow run of the flow ``flow_id``, or of the flow registered with the structure
    whose content hash is ``flow_hash`` (see ``GET /flows/by_hash``): exactly one of them."""

    flow_id: Id | None = None
    flow_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    parameters: JsonObject = Field(default_factory=dict)
    context: JsonObject = Field(default_factory=dict)
    scheduled_start_time: UtcDatetime | None = None
    state: StateDict | None = None

    @model_validator(mode="after")
    def _one_flow(self) -> FlowRunIn:
        if (self.flow_id is None) == (self.flow_hash is None):
            raise ValueError("give exactly one of flow_id and flow_hash")
        return self


class TaskRunSummary(BaseModel):
    id: str
    task_slug: str
    map_index: int
    state: dict[str, Any]
    version: int
    heartbeat: datetime | None


class TaskRunOut(TaskRunSummary):
    flow_run_id: str
    created: datetime
    updated: datetime


class FlowRunSummary(BaseModel):
    id: str
    flow_id: str
    flow_name: str
    parameters: dict[str, Any]
    context: dict[str, Any]
    scheduled_start_time: datetime
    state: dict[str, Any]
    version: int
    heartbeat: datetime | None
    created: datetime
    updated: datetime
    leased: bool = Field(default=False, description="A runner holds the flow run's lease.")
    lease_holder: str | None = Field(
        default=None, description='Who holds the lease, as its runner said ("host:pid"), while leased.'
    )
    agent_id: str | None = Field(default=None, description="The agent that claimed the run, if one did.")
    late: bool = Field(
        default=False, description="Scheduled, and its start passed more than [server] late_after_seconds ago."
    )


class FlowRunOut(FlowRunSummary):
    task_runs: list[TaskRunSummary]


class TaskRunIn(_In):
    flow_run_id: Id
    task_slug: Name
    map_index: MapIndex = -1


ChildIndex = Annotated[int, Field(ge=0, le=MAX_INT32)]


class TaskRunsBatchIn(_In):
    flow_run_id: Id
    task_slug: Name
    map_indexes: list[ChildIndex] = Field(max_length=MAX_BATCH)
    fresh_ok: bool = Field(
        default=False,
        description="When no child run of the task exists in the flow run yet, create none and answer "
        '``"fresh": true`` with no task runs: the caller names its children\'s ids itself and each child is '
        "created by its first state write (``task_slug`` and ``map_index`` on a batch write).",
    )


class TaskRunsBatchOut(BaseModel):
    task_runs: list[TaskRunOut]
    fresh: bool = Field(default=False, description="``fresh_ok`` was asked and the task has no child runs yet")


# ----------------------------------------------------------------------------- states


class StateWriteIn(_In):
    state: StateDict
    version: Version = Field(description="The version the writer believes is current.")
    lease: LeaseToken | None = Field(
        default=None,
        description="Flow runs: the writer's lease token, stored with a winning write (none clears the lease). "
        "Task runs: apply only while this token is the flow run's lease.",
    )
    lease_holder: ShortLabel | None = Field(
        default=None,
        description='Flow runs: who holds ``lease`` ("host:pid"), stored with it, so a runner on the same host '
        "can tell that the holder's process is gone.",
    )


class LeaseReleaseIn(_In):
    lease: LeaseToken


class LeaseReleaseOut(BaseModel):
    released: bool


class StateWriteOut(BaseModel):
    id: str
    version: int


class ConflictOut(BaseModel):
    detail: str
    current_version: int
    current_state: dict[str, Any]


class StateHistoryItem(BaseModel):
    version: int
    state: dict[str, Any]
    timestamp: datetime




class ChildCreatingWrite(_In):
    """A task-run write that may create its run, a mapped child (see
    :mod:`runwright_server.child_runs`)."""

    task_run_id: Id
    version: Version
    task_slug: Name | None = Field(
        default=None,
        description="With ``map_index``: the write creates its task run, a child of that task in the batch's "
        "flow run (the lease's), unless a run of that id exists already; it expects version 0.",
    )
    map_index: ChildIndex | None = None

    @model_validator(mode="after")
    def _creates_a_child(self) -> ChildCreatingWrite:
        if (self.task_slug is None) != (self.map_index is None):
            raise ValueError("task_slug and map_index go together: both name the child run this write creates")
        if self.task_slug is not None and self.version != 0:
            raise ValueError("a write that creates its task run (task_slug, map_index) expects version 0")
        if self.task_slug is not None and not UUID_TEXT.fullmatch(self.task_run_id):
            raise ValueError("a write that creates its task run names it by a new UUID (lowercase, with hyphens)")
        return self


def check_creates_under_lease(writes: list[Any], lease: Any) -> None:
    """A batch whose writes create child runs must name the lease (their flow run)."""
    if lease is None and any(item.task_slug is not None for item in writes):
        raise ValueError("writes that create their task runs (task_slug, map_index) need the batch's lease")


class BatchWriteItem(ChildCreatingWrite):
    state: StateDict

    @property
    def state_text(self) -> str:
        """The state as strict JSON text (what the database stores), encoded while validated."""
        return state_text(self.state)


class BatchLease(_In):
    flow_run_id: Id
    token: LeaseToken


class InlineResult(_In):
    key: ResultKey
    data: Base64Data


class BatchWriteIn(_In):
    writes: list[BatchWriteItem] = Field(max_length=MAX_BATCH)
    lease: BatchLease | None = Field(
        default=None,
        description="Apply the batch only while this is the flow run's lease (else 409 for all), "
        "and only to task runs of that flow run.",
    )
    results: list[InlineResult] = Field(
        default_factory=list,
        max_length=MAX_BATCH,
        description="Results stored in the same transaction, before the writes; a key that already exists "
        'is not stored and the writes whose state names it are "rejected".',
    )

    @model_validator(mode="after")
    def _creates_under_a_lease(self) -> BatchWriteIn:
        check_creates_under_lease(self.writes, self.lease)
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _plain_first(
        cls, data: Any, handler: ModelWrapValidatorHandler[BatchWriteIn], info: ValidationInfo
    ) -> BatchWriteIn:
        """The usual batch is checked in one pass (:mod:`runwright_server.plain_batches`),
        by the same rules; any other body by the models, whose errors it gets (and every
        body, with the validation context ``{"models_only": True}``)."""
        if info.context is not None and info.context.get("models_only"):
            return handler(data)
        fields = plain_batch(data, MAX_BATCH, MAX_INLINE_RESULT_CHARS, encode_state)
        if fields is None:
            return handler(data)
        lease = fields["lease"]
        if lease is not None:
            fields["lease"] = BatchLease.model_construct(**lease)
        return cls.model_construct(**fields)


class BatchWriteResult(BaseModel):
    task_run_id: str
    status: Literal["ok", "conflict", "not_found", "rejected"]
    version: int | None
    current_state: dict[str, Any] | None = None


class BatchWriteOut(BaseModel):
    results: list[BatchWriteResult] | None = Field(
        default=None, description="One outcome per write, in order (absent in a brief answer)."
    )
    applied: int | None = Field(
        default=None,
        description="A brief answer (the request preferred `return=minimal`): every write applied, and how many.",
    )


class CachedStateOut(BaseModel):
    #: the history row of the state (a hit on it: ``POST /cached_states/hits``)
    state_id: int
    task_run_id: str
    flow_run_id: str
    task_slug: str
    map_index: int
    state: dict[str, Any]
    #: the cache key the client stored with the state (``state["cache_key"]``), if any
    cache_key: str | None = None
    #: the state's result bytes, base64 (``inline_results``, small results only)
    result: str | None = None
    created: datetime


class HeartbeatOut(BaseModel):
    id: str
    heartbeat: datetime
    cancel: bool = Field(default=False, description="Flow runs: a cancel was requested; the runner stops and records Cancelled.")


# ----------------------------------------------------------------------------- results, logs


class ResultOut(BaseModel):
    uri: str


class LogIn(_In):
    flow_run_id: Id
    task_run_id: Id | None = None
    timestamp: UtcDatetime
    level: Level
    name: Label = ""
    message: Message = ""


class LogsIn(_In):
    logs: list[LogIn] = Field(max_length=MAX_BATCH)


class LogsOut(BaseModel):
    count: int


class LogOut(BaseModel):
    id: int
    flow_run_id: str
    task_run_id: str | None
    timestamp: datetime
    level: str
    name: str
    message: str


class HealthOut(BaseModel):
    status: str


class ErrorOut(BaseModel):
    detail: str


