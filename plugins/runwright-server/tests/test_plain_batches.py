"""The one-pass check of the usual batch (runwright_server.plain_batches) takes exactly what
the pydantic models take, with the same values, and leaves everything else to them."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from runwright_server.plain_batches import plain_batch
from runwright_server.schemas import MAX_BATCH, MAX_INLINE_RESULT_CHARS, BatchLease, BatchWriteIn, encode_state
from runwright_server.state_rules import MAX_MESSAGE_CHARS, MAX_STATE_CHARS

RUN_ID = "01a23afc-25a2-7000-8000-006231e4e0f2"
KEY = "01a23afc25bbf432281a7d6c5fcffbad"
RUNNING = {"type": "Running", "message": "Starting task run.", "_result": {"type": "NoResultType"}}


def usual_batch() -> dict[str, Any]:
    """A fresh map's child (its Running and Success, creating its run), a write to an
    existing run, and an inline result: what a runner sends."""
    success = {
        "type": "Success",
        "message": "Task run succeeded.",
        "_result": {"type": "SafeResult", "value": "rwcloud://results/" + KEY, "result_handler": {"type": "cloud"}},
    }
    return {
        "writes": [
            {"task_run_id": RUN_ID, "version": 0, "state": dict(RUNNING), "task_slug": "child-1", "map_index": 7},
            {"task_run_id": RUN_ID, "version": 1, "state": success},
            {"task_run_id": "a-run-of-any-id", "version": 3, "state": dict(RUNNING)},
        ],
        "lease": {"flow_run_id": "flow-run-1", "token": "a-lease-token-of-32-characters--"},
        "results": [{"key": KEY, "data": base64.b64encode(b"\x80\x05K\x07.").decode()}],
    }


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target: Any = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target: Any = body
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


ODD_STRINGS = ["", "é-non-ascii", "nul\x00inside", "lone\ud800surrogate", "x" * 65, "x" * 501, 7, None, 1.5, True]
ODD_INTS = [-1, 2**31, 2**63, 1.0, "1", True, None, 2**31 - 1, 0]


def variants() -> Iterator[tuple[str, Callable[[dict[str, Any]], None]]]:
    yield "unchanged", lambda body: None
    for field in ("task_run_id", "task_slug"):
        for value in ODD_STRINGS:
            yield f"writes[0].{field}={value!r:.20}", _set(("writes", 0, field), value)
    for value in ODD_STRINGS:
        yield f"lease.flow_run_id={value!r:.20}", _set(("lease", "flow_run_id"), value)
    for value in ["short", "with space in the token ....", "x" * 65, "é" * 20, None]:
        yield f"lease.token={value!r:.20}", _set(("lease", "token"), value)
    for field in ("version", "map_index"):
        for value in ODD_INTS:
            yield f"writes[0].{field}={value!r}", _set(("writes", 0, field), value)
            yield f"writes[2].{field}={value!r}", _set(("writes", 2, field), value)
    yield "a creating write not at version 0", _set(("writes", 0, "version"), 1)
    yield "a creating write's id not a UUID", _set(("writes", 0, "task_run_id"), "not-a-uuid")
    yield "an upper-case UUID", _set(("writes", 0, "task_run_id"), RUN_ID.upper())
    yield "slug without index", _drop(("writes", 0, "map_index"))
    yield "index without slug", _drop(("writes", 0, "task_slug"))
    yield "explicit nulls", lambda body: body["writes"][2].update(task_slug=None, map_index=None)
    yield "creating writes without a lease", _drop(("lease",))
    yield "a null lease", _set(("lease",), None)
    yield "a null lease of plain writes", lambda body: (body.update(lease=None), body["writes"].pop(0), body["writes"].pop(0))
    yield "no results key", _drop(("results",))
    yield "null results", _set(("results",), None)
    yield "an unknown batch key", _set(("extra",), 1)
    yield "an unknown write key", _set(("writes", 1, "extra"), 1)
    yield "an unknown lease key", _set(("lease", "extra"), 1)
    yield "an unknown result key", _set(("results", 0, "extra"), 1)
    yield "a missing state", _drop(("writes", 1, "state"))
    yield "a missing version", _drop(("writes", 1, "version"))
    yield "a state that is a list", _set(("writes", 1, "state"), [1])
    yield "an unknown state type", _set(("writes", 1, "state", "type"), "Bogus")
    yield "a meta state of an unknown inner type", _set(("writes", 1, "state"), {"type": "Submitted", "state": {"type": "Bogus"}})
    yield "a long message (cut)", _set(("writes", 1, "state", "message"), "m" * (MAX_MESSAGE_CHARS + 10))
    yield "a state too long", _set(("writes", 1, "state", "blob"), "b" * MAX_STATE_CHARS)
    yield "a lone surrogate in a state", _set(("writes", 1, "state", "message"), "\ud800")
    yield "a NaN in a state", _set(("writes", 1, "state", "x"), float("nan"))
    yield "non-ASCII in a state", _set(("writes", 1, "state", "message"), "Aufgabe erledigt: grün")
    yield "writes not a list", _set(("writes",), {"0": 1})
    yield "a write not an object", _set(("writes", 1), "w")
    yield "no writes", _set(("writes",), [])
    for value in ["NOTHEX" * 5 + "ab", KEY.upper(), KEY[:-1], KEY + "0", 32]:
        yield f"result key {value!r:.20}", _set(("results", 0, "key"), value)
    for value in ["not base64!", "QQ=", "Q===", "", "é", 5]:
        yield f"result data {value!r:.20}", _set(("results", 0, "data"), value)
    yield "too many writes", lambda body: body.update(writes=body["writes"][1:2] * (MAX_BATCH + 1))
    yield "not an object", lambda body: body.clear()


def _models(body: dict[str, Any]) -> BatchWriteIn | None:
    try:
        return BatchWriteIn.model_validate(body, context={"models_only": True})
    except ValidationError:
        return None


def _as_plain(model: BatchWriteIn) -> tuple[Any, ...]:
    writes = [(w.task_run_id, w.version, dict(w.state), w.state_text, w.task_slug, w.map_index) for w in model.writes]
    results = [(r.key, r.data) for r in model.results]
    lease = None if model.lease is None else (model.lease.flow_run_id, model.lease.token)
    return writes, results, lease


@pytest.mark.parametrize(("name", "change"), list(variants()), ids=[name for name, _ in variants()])
def test_the_one_pass_check_takes_what_the_models_take_with_the_same_values(
    name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    body = usual_batch()
    change(body)
    by_models = _models(copy.deepcopy(body))
    fields = plain_batch(copy.deepcopy(body), MAX_BATCH, MAX_INLINE_RESULT_CHARS, encode_state)
    if fields is None:
        # the models decide (and explain); the plain check must not be stricter on the usual batch
        assert name not in ("unchanged", "explicit nulls", "a null lease of plain writes", "no results key"), name
        return
    assert by_models is not None, f"{name}: taken by the one-pass check, refused by the models"
    if fields["lease"] is not None:
        fields["lease"] = BatchLease.model_construct(**fields["lease"])
    assert _as_plain(BatchWriteIn.model_construct(**fields)) == _as_plain(by_models)
    # and the route's validation takes the one-pass result
    assert _as_plain(BatchWriteIn.model_validate(copy.deepcopy(body))) == _as_plain(by_models)


def test_equal_states_in_a_row_are_encoded_once_and_keep_their_text() -> None:
    body = usual_batch()
    body["writes"] = [
        {"task_run_id": f"run-{i}", "version": 0, "state": dict(RUNNING)} for i in range(3)
    ]
    fields = plain_batch(body, MAX_BATCH, MAX_INLINE_RESULT_CHARS, encode_state)
    assert fields is not None
    texts = {w.state_text for w in fields["writes"]}
    assert texts == {'{"type":"Running","message":"Starting task run.","_result":{"type":"NoResultType"}}'}
