"""States to and from JSON-compatible dicts.

The wire form is ``{"type": "<StateClass>", "message": ..., "_result": <result>, ...fields}``.
A result is always sent in its *safe* form: a value that was never stored by a handler goes
out as ``{"type": "NoResultType"}``, so raw values never leave the process. Result handlers
serialize as ``{"type": "<registered name>", ...constructor fields}``; a class that was never
registered travels as ``{"type": "module:QualName", ...}`` and is imported on the other side.
Handler names resolve through a result store (default: the process-wide one).
"""

from __future__ import annotations

import datetime
import importlib
from typing import TYPE_CHECKING, Any

from runwright.engine import state as st
from runwright.engine.result import NoResult, Result, ResultInterface, SafeResult, default_result_store
from runwright.engine.result_handlers import ResultHandler

if TYPE_CHECKING:
    from runwright.plugins.results import ResultStore


class SerializationError(ValueError):
    """The data does not describe a state, a result or a handler this process knows."""


def _dt(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(value) if value else None


# -- handlers ------------------------------------------------------------------------------
def serialize_handler(handler: ResultHandler | None, store: ResultStore | None = None) -> dict[str, Any] | None:
    if handler is None:
        return None
    name = (store or default_result_store()).handler_name(type(handler))
    if name is None:
        cls = type(handler)
        name = f"{cls.__module__}:{cls.__qualname__}"
    return {"type": name, **handler.serialize_fields()}


def deserialize_handler(data: dict[str, Any] | None, store: ResultStore | None = None) -> ResultHandler | None:
    if data is None:
        return None
    data = dict(data)
    kind = data.pop("type", None)
    if not isinstance(kind, str):
        raise SerializationError(f"A result handler needs a string 'type'; got {kind!r}")
    cls = (store or default_result_store()).handler_class(kind)
    if cls is None and ":" in kind:
        module, _, qualname = kind.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise SerializationError(
                f"Result handler class {kind} cannot be imported here ({exc}); install the package "
                "that provides it, or register it with the runwright_register_result_handlers hook"
            ) from exc
        cls = obj
    if cls is None:
        raise SerializationError(
            f"Unknown result handler {kind!r}; install the plugin that provides it "
            f"(e.g. pip install runwright-{kind})"
        )
    return cls(**data)


# -- results -------------------------------------------------------------------------------
def serialize_result(result: ResultInterface | None) -> dict[str, Any]:
    if result is None or result is NoResult:
        return {"type": "NoResultType"}
    safe = result.safe_value if isinstance(result, Result) else result
    if safe is NoResult or not isinstance(safe, SafeResult):
        return {"type": "NoResultType"}
    return {"type": "SafeResult", "value": safe.value, "result_handler": serialize_handler(safe.result_handler)}


def deserialize_result(data: dict[str, Any] | None) -> ResultInterface:
    if not data or data.get("type") in (None, "NoResultType"):
        return NoResult
    if data.get("type") != "SafeResult":
        raise SerializationError(f"Unknown result type {data.get('type')!r}")
    return SafeResult(data.get("value"), deserialize_handler(data.get("result_handler")))


def _serialize_inputs(inputs: dict[str, Any] | None) -> dict[str, Any] | None:
    if inputs is None:
        return None
    return {k: serialize_result(v if isinstance(v, ResultInterface) else Result(v)) for k, v in inputs.items()}


def _deserialize_inputs(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {k: deserialize_result(v) for k, v in data.items()}


# -- states --------------------------------------------------------------------------------
def serialize_state(state: st.State) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(state).__name__, "message": state.message}
    if isinstance(state, st.Mapped):
        out["n_map_states"] = len(state.map_states)
    else:
        out["_result"] = serialize_result(state._result)
    if isinstance(state, (st.Pending, st.TimedOut)):
        out["cached_inputs"] = _serialize_inputs(state.cached_inputs)
    if isinstance(state, st.Scheduled):
        out["start_time"] = _dt(state.start_time)
    if isinstance(state, st.Retrying):
        out["run_count"] = state.run_count
    if isinstance(state, st._MetaState):
        out["state"] = serialize_state(state.state) if state.state is not None else None
    if isinstance(state, st.Queued):
        out["start_time"] = _dt(state.start_time)
    if isinstance(state, st.Cached):
        out["cached_inputs"] = _serialize_inputs(state.cached_inputs)
        out["cached_parameters"] = state.cached_parameters
        out["cached_result_expiration"] = _dt(state.cached_result_expiration)
    return out


def deserialize_state(data: dict[str, Any]) -> st.State:
    if not isinstance(data, dict):
        raise SerializationError(f"A serialized state must be a dict, got {type(data).__name__}")
    kind = data.get("type")
    cls = st.ALL_STATES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SerializationError(f"Unknown state type {kind!r}; expected one of {', '.join(st.ALL_STATES)}")
    kwargs: dict[str, Any] = {"message": data.get("message")}
    if issubclass(cls, st.Mapped):
        kwargs["map_states"] = [None] * int(data.get("n_map_states") or 0)
    else:
        kwargs["result"] = deserialize_result(data.get("_result"))
    if issubclass(cls, (st.Pending, st.TimedOut, st.Cached)):
        kwargs["cached_inputs"] = _deserialize_inputs(data.get("cached_inputs"))
    if issubclass(cls, (st.Scheduled, st.Queued)):
        kwargs["start_time"] = _parse_dt(data.get("start_time"))
    if issubclass(cls, st.Retrying):
        kwargs["run_count"] = data.get("run_count") or 1
    if issubclass(cls, st._MetaState):
        inner = data.get("state")
        kwargs["state"] = deserialize_state(inner) if inner else None
    if issubclass(cls, st.Cached):
        kwargs["cached_parameters"] = data.get("cached_parameters")
        kwargs["cached_result_expiration"] = _parse_dt(data.get("cached_result_expiration"))
    return cls(**kwargs)
