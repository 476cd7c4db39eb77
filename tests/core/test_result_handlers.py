import pytest

from runwright import JSONResultHandler, ResultHandler
from runwright.engine.result_handlers import ResultHandlerError
from runwright.testing import ResultHandlerContract


class TestJSONResultHandler(ResultHandlerContract):
    """The contract, with JSON's own versions of the checks that assume pickled storage."""

    sample_values = [0, None, "ü", {"a": [1, 2.5, None]}, list(range(1000))]

    @pytest.fixture
    def handler(self):
        return JSONResultHandler()

    def test_corrupt_data_is_a_clear_error(self, handler):
        # the location *is* the stored JSON text: damaged text is a damaged result
        with pytest.raises(ResultHandlerError, match="could not parse"):
            handler.read('{"a": 1')

    def test_unpicklable_values_fail_clearly(self, handler):
        import threading

        with pytest.raises(ResultHandlerError, match="cannot store lock values"):
            handler.write(threading.Lock())

    def test_the_location_alone_is_enough_to_read(self, handler):
        # JSON locations are values, not URIs: a state carries the handler to read them with
        from runwright.engine.result import Result
        from runwright.engine.state import State, Success

        result = Result({"k": 1}, handler)
        result.store_safe_value()
        restored = State.deserialize(Success(result=result).serialize())
        assert handler.uri_schemes == () and restored._result.to_result().value == {"k": 1}


def test_json_handler_rejects_non_json_values_with_advice():
    with pytest.raises(ResultHandlerError, match="use a pickling handler such as 'local'"):
        JSONResultHandler().write(object())


def test_a_handler_must_implement_read_and_write():
    class Half(ResultHandler):
        def write(self, result):
            return ""

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_handlers_compare_by_type_and_public_fields():
    class WithDir(JSONResultHandler):
        def __init__(self, dir=None):
            self.dir = dir
            self._client = object()

    assert WithDir("a") == WithDir("a") and WithDir("a") != WithDir("b")
    assert WithDir("a").serialize_fields() == {"dir": "a"}


def test_unregistered_handler_classes_travel_by_import_path():
    from runwright.engine.serialization import deserialize_handler, serialize_handler

    data = serialize_handler(ImportableHandler(root="/tmp/x"))
    assert data == {"type": f"{__name__}:ImportableHandler", "root": "/tmp/x"}
    assert deserialize_handler(data) == ImportableHandler(root="/tmp/x")


def test_an_unknown_handler_type_names_the_plugin_to_install():
    from runwright.engine.serialization import SerializationError, deserialize_handler

    with pytest.raises(SerializationError, match="pip install runwright-s3"):
        deserialize_handler({"type": "s3"})


class ImportableHandler(ResultHandler):
    def __init__(self, root):
        self.root = root

    def write(self, result):
        return "x"

    def read(self, loc):
        return loc
