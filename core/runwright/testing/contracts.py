"""Contract tests every result handler must pass.

    from runwright.testing import ResultHandlerContract

    class TestMyHandler(ResultHandlerContract):
        @pytest.fixture
        def handler(self, tmp_path):
            return MyHandler(root=tmp_path)

        @pytest.fixture
        def corrupt(self):           # optional: damage what is stored at a location
            def corrupt(handler, location): ...
            return corrupt
"""

from __future__ import annotations

import datetime
import pickle
from typing import Any

import pytest

from runwright.engine.result_handlers import ResultHandler, ResultHandlerError

SAMPLE_VALUES: list[Any] = [
    0,
    None,
    "text with ünïcode",
    {"nested": [1, 2.5, {"k": (1, 2)}]},
    b"\x00\x01 binary",
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    list(range(10_000)),
]


class ResultHandlerContract:
    """Subclass and provide a ``handler`` fixture (override ``sample_values`` for a handler
    that stores only some types, as JSON does)."""

    sample_values: list[Any] = SAMPLE_VALUES

    @pytest.fixture
    def handler(self) -> ResultHandler:
        raise NotImplementedError("provide a `handler` fixture returning the handler under test")

    @pytest.fixture
    def corrupt(self) -> Any:
        return None

    def test_written_values_read_back_equal(self, handler: ResultHandler) -> None:
        for value in self.sample_values:
            location = handler.write(value)
            assert isinstance(location, str) and location
            assert handler.read(location) == value, f"{type(value).__name__} did not round-trip"

    def test_each_write_gets_its_own_location(self, handler: ResultHandler) -> None:
        first, second = handler.write(1), handler.write(2)
        assert first != second
        assert (handler.read(first), handler.read(second)) == (1, 2)

    def test_reading_a_missing_location_is_a_clear_error(self, handler: ResultHandler) -> None:
        location = handler.write("x")
        missing = location[:-4] + ("zzzz" if not location.endswith("zzzz") else "yyyy")
        with pytest.raises(ResultHandlerError) as info:
            handler.read(missing)
        assert missing in str(info.value)

    def test_corrupt_data_is_a_clear_error(self, handler: ResultHandler, corrupt: Any) -> None:
        if corrupt is None:
            pytest.skip("this backend cannot be corrupted from a test (no `corrupt` fixture)")
        location = handler.write({"a": 1})
        corrupt(handler, location)
        with pytest.raises(ResultHandlerError) as info:
            handler.read(location)
        assert location in str(info.value)

    def test_unpicklable_values_fail_clearly(self, handler: ResultHandler) -> None:
        import threading

        if handler.handler_name == "json":
            pytest.skip("JSON handlers reject non-JSON values instead")
        with pytest.raises(ResultHandlerError):
            handler.write(threading.Lock())

    def test_handler_survives_serialization(self, handler: ResultHandler) -> None:
        from runwright.engine.serialization import deserialize_handler, serialize_handler

        location = handler.write([1, 2, 3])
        data = serialize_handler(handler)
        assert data is not None and isinstance(data["type"], str)
        import json

        restored = deserialize_handler(json.loads(json.dumps(data)))
        assert restored == handler
        assert restored is not None and restored.read(location) == [1, 2, 3]

    def test_handler_survives_pickling(self, handler: ResultHandler) -> None:
        location = handler.write("pickled")
        restored = pickle.loads(pickle.dumps(handler))
        assert restored.read(location) == "pickled"

    def test_the_location_alone_is_enough_to_read(self, handler: ResultHandler) -> None:
        if not handler.uri_schemes:
            pytest.skip("this handler's locations are not URIs")
        import runwright

        location = handler.write({"only": "uri"})
        assert location.split("://", 1)[0] in handler.uri_schemes
        assert runwright.read_uri(location) == {"only": "uri"}

    def test_a_checkpointed_task_result_travels_in_its_state(self, handler: ResultHandler) -> None:
        from runwright import Flow, task
        from runwright.engine.state import State

        @task(checkpoint=True, result_handler=handler)
        def produce() -> dict[str, int]:
            return {"answer": 42}

        with Flow("contract") as flow:
            produced = produce()
        state = flow.run().result[produced]
        assert state.is_successful()
        data = state.serialize()
        assert data["_result"]["type"] == "SafeResult"
        restored = State.deserialize(data)
        assert restored._result.to_result().value == {"answer": 42}
