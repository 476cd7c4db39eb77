"""States as the server stores them: their results stored first (the writer's batches, the
flow run's writes and the client's ``State`` arguments all go through here)."""

from __future__ import annotations

import json
import logging
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright.engine.state import State

logger = logging.getLogger("runwright.cloud.writer")

class _Engine:
    """The engine's names this module needs, imported on first use (not with the module:
    the client imports it, and the plugin host must not load with the client)."""

    loaded = False

    def load(self) -> _Engine:
        from runwright.engine import result, serialization, state
        from runwright.plugins import get_plugin_manager

        self.result_cls, self.safe_result_cls, self.no_result = result.Result, result.SafeResult, result.NoResult
        self.cached, self.mapped, self.success, self.running = state.Cached, state.Mapped, state.Success, state.Running
        self.serialize_handler = serialization.serialize_handler
        self.plugin_manager = get_plugin_manager
        self.loaded = True
        return self


_engine = _Engine()


def store_results(state: State, checkpoint: bool) -> None:
    """Store what a state needs on the server before it is serialized.

    A Cached state's result and the ``cached_inputs`` of Pending, Retrying, TimedOut and
    Cached states are always stored; a Success's result when ``checkpoint`` is set. Only the
    :class:`~runwright.engine.result.Result` objects gain their stored location: the state
    itself is never replaced or changed (unlike the seed's ``prepare_state_for_cloud``).
    """
    engine = _engine if _engine.loaded else _engine.load()
    result = state._result
    if isinstance(result, engine.result_cls) and (
        isinstance(state, engine.cached)
        or (checkpoint and isinstance(state, engine.success) and not isinstance(state, engine.mapped))
    ):
        engine.plugin_manager().results.store(result)
    inputs = getattr(state, "cached_inputs", None)
    if inputs:
        results = engine.plugin_manager().results
        for value in inputs.values():
            if isinstance(value, engine.result_cls):
                results.store(value)


class EncodedState(dict):  # type: ignore[type-arg]
    """A state's dict that also carries its compact JSON text (``text``, exactly what
    ``json.dumps(state, separators=(",", ":"))`` gives), made by :class:`StateForms`, so a
    batch body is joined from texts instead of encoding every dict again. Not to be
    changed once made (a changed copy is a plain dict)."""

    __slots__ = ("text",)
    text: str


#: JSON strings of the messages seen (the engine's messages are a handful of constants)
_message_texts: dict[str | None, str] = {}


def _json_string(value: str | None) -> str:
    if value is None:
        return "null"
    return encode_basestring_ascii(value)  # type: ignore[no-any-return]


class StateForms:
    """Serializes states as ``State.serialize`` does, building the dicts of the states every
    task run writes (Running, Success; their result none, or stored) directly, with their
    JSON text (:class:`EncodedState`), and each result handler's form once. One per batch
    of the writer (a handler's registered name is read again for the next one); every other
    state goes through ``State.serialize``."""

    __slots__ = ("_handler", "_handler_form", "_handler_text")

    def __init__(self) -> None:
        self._handler: Any = None
        self._handler_form: dict[str, Any] | None = None
        self._handler_text = "null"

    def serialize(self, state: State) -> dict[str, Any]:
        engine = _engine if _engine.loaded else _engine.load()
        cls = type(state)
        if cls is engine.running or cls is engine.success:  # exactly these: a subclass has more fields
            result = self._result_form(state._result, engine)
            if result is not None:
                form, result_text = result
                message = state.message
                message_text = _message_texts.get(message)
                if message_text is None:
                    message_text = _json_string(message)
                    if len(_message_texts) < 256:
                        _message_texts[message] = message_text
                out = EncodedState(type=cls.__name__, message=message, _result=form)
                out.text = f'{{"type":"{cls.__name__}","message":{message_text},"_result":{result_text}}}'
                return out
        return state.serialize()

    def _result_form(self, result: Any, engine: _Engine) -> tuple[dict[str, Any], str] | None:
        if type(result) is engine.result_cls:
            result = result.safe_value
        if result is engine.no_result:
            return {"type": "NoResultType"}, '{"type":"NoResultType"}'
        if type(result) is not engine.safe_result_cls:
            return None  # a result class of its own: the engine serializes it
        value = result.value
        if type(value) is not str:
            return None  # a location that is not text: the engine serializes it
        handler = result.result_handler
        if handler is None:
            form, form_text = None, "null"
        elif handler is self._handler:
            form, form_text = self._handler_form, self._handler_text
        else:
            form = self._handler_form = engine.serialize_handler(handler)
            form_text = self._handler_text = json.dumps(form, separators=(",", ":"))
            self._handler = handler
        return (
            {"type": "SafeResult", "value": value, "result_handler": form},
            f'{{"type":"SafeResult","value":{encode_basestring_ascii(value)},"result_handler":{form_text}}}',
        )


def serialize_for_server(state: State, checkpoint: bool, what: Any, forms: StateForms | None = None) -> dict[str, Any]:
    """The state as the server stores it, its results stored first; a result that cannot be
    stored is logged (``what``, a string or an object with ``describe()``, names the run)
    and the state goes without it (resume then re-runs the task). ``forms``: the writer's
    serializer of the batch (see :class:`StateForms`)."""
    try:
        store_results(state, checkpoint)
    except Exception as exc:  # noqa: BLE001 - reporting must not break the run
        name = what if isinstance(what, str) else what.describe()
        logger.warning("Could not store the result of %s (%s); its %s state is recorded without it", name, exc, type(state).__name__)
    return state.serialize() if forms is None else forms.serialize(state)
