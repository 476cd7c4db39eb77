import pytest

from runwright import JSONResultHandler, ResultHandler
from runwright.engine.result_handlers import ResultHandlerError
from runwright.testing import ResultHandlerContract


class TestJSONResultHandler(ResultHandlerContract):
    sample_values = [0, None, "ü", {"a": [1, 2.5, None]}, list(range(1000))]

    @pytest.fixture
    def handler(self):
        return JSONResultHandler()


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
