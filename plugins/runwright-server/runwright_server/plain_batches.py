"""The usual batch of task-run state writes, validated in one pass.

A runner's batch (``POST /task_run_states``) holds thousands of writes, each a small object of
ASCII ids, a version and a state, and as many inline results. Validated by the pydantic
models of :mod:`runwright_server.schemas`, each write and result costs a model instance and
several validator calls: at a million-child map, about a third of the server's work.

:func:`plain_batch` checks such a batch in one loop, by the same rules, and builds the same
model (:class:`runwright_server.schemas.BatchWriteIn`, its writes and results as light
objects with the models' attributes). It takes only the plain shape: every string ASCII,
every number an ``int``, no key beyond the model's, no write breaking a rule. For anything
else it answers None, and the pydantic models validate the body as before, so every error
(its message and its location) is theirs. A test compares both on valid and invalid bodies.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any, TypeGuard

#: the bounds of the API's integers (shared with :mod:`runwright_server.schemas`)
MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1
#: a new task run id named by the client: a lowercase UUID with hyphens (shared with the schemas)
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_WRITE_KEYS = frozenset({"task_run_id", "version", "state", "task_slug", "map_index"})
_BATCH_KEYS = frozenset({"writes", "lease", "results"})
_RESULT_KEY = re.compile(r"[0-9a-f]{32}")
_LEASE_TOKEN = re.compile(r"[0-9A-Za-z_-]{16,64}")


class PlainWrite:
    """A validated write (the attributes of ``schemas.BatchWriteItem``)."""

    __slots__ = ("map_index", "state", "task_run_id", "task_slug", "version")

    def __init__(self, task_run_id: str, version: int, state: Any, task_slug: str | None, map_index: int | None) -> None:
        self.task_run_id = task_run_id
        self.version = version
        self.state = state
        self.task_slug = task_slug
        self.map_index = map_index

    @property
    def state_text(self) -> str:
        return self.state.text  # type: ignore[no-any-return]


class PlainResult:
    """A validated inline result (the attributes of ``schemas.InlineResult``)."""

    __slots__ = ("data", "key")

    def __init__(self, key: str, data: str) -> None:
        self.key = key
        self.data = data


def _plain_id(value: Any, longest: int) -> TypeGuard[str]:
    return type(value) is str and 0 < len(value) <= longest and value.isascii() and "\x00" not in value


def plain_batch(
    data: Any, max_items: int, max_result_chars: int, encode_state: Callable[[dict[str, Any]], Any]
) -> dict[str, Any] | None:
    """The fields of a ``BatchWriteIn`` for ``data`` (its lease a dict of its fields), or
    None when it is not a plain batch that the models would accept (they then decide, and
    explain). ``encode_state`` is the models' check and encoding of a state."""
    if type(data) is not dict or not data.keys() <= _BATCH_KEYS:
        return None
    raw_writes, raw_lease, raw_results = data.get("writes"), data.get("lease"), data.get("results", [])
    if type(raw_writes) is not list or type(raw_results) is not list:
        return None
    if len(raw_writes) > max_items or len(raw_results) > max_items:
        return None
    lease = None
    if raw_lease is not None:
        if (
            type(raw_lease) is not dict
            or raw_lease.keys() != {"flow_run_id", "token"}
            or not _plain_id(raw_lease["flow_run_id"], 64)
            or type(raw_lease["token"]) is not str
            or not _LEASE_TOKEN.fullmatch(raw_lease["token"])
        ):
            return None
        lease = raw_lease
    writes: list[PlainWrite] = []
    append = writes.append
    last_state: Any = None  # consecutive equal states (a map's children start alike) are encoded once
    last_encoded: Any = None
    for item in raw_writes:
        if type(item) is not dict or not item.keys() <= _WRITE_KEYS:
            return None
        run_id, version, state = item.get("task_run_id"), item.get("version"), item.get("state")
        slug, index = item.get("task_slug"), item.get("map_index")
        if not _plain_id(run_id, 64) or type(version) is not int or not 0 <= version <= MAX_INT64 or type(state) is not dict:
            return None
        if slug is not None or index is not None:
            # a write that creates its run: both fields, version 0, a new UUID, under the lease
            if (
                lease is None
                or not _plain_id(slug, 500)
                or type(index) is not int
                or not 0 <= index <= MAX_INT32
                or version != 0
                or not UUID_TEXT.fullmatch(run_id)
            ):
                return None
        if state == last_state:
            encoded = last_encoded
        else:
            try:
                encoded = encode_state(state)  # the model's own check (type, message, length)
            except ValueError:
                return None
            last_state, last_encoded = state, encoded
        append(PlainWrite(run_id, version, encoded, slug, index))
    results: list[PlainResult] = []
    for item in raw_results:
        if type(item) is not dict or len(item) != 2:
            return None
        key, blob = item.get("key"), item.get("data")
        if type(key) is not str or not _RESULT_KEY.fullmatch(key) or type(blob) is not str or len(blob) > max_result_chars:
            return None
        try:
            base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            return None
        results.append(PlainResult(key, blob))
    return {"writes": writes, "lease": lease, "results": results}
