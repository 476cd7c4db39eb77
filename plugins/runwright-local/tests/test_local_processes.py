"""Results and handlers crossing process boundaries, including a writer killed mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import runwright
from runwright import Flow, task
from runwright.engine.result_handlers import ResultHandlerError
from runwright.engine.serialization import deserialize_handler, serialize_handler
from runwright.engine.state import State
from runwright.plugins import PluginError, RunwrightPluginManager
from runwright_local import LocalResultHandler
from runwright_local.handler import TEMP_PREFIX, TEMP_SUFFIX, path_from_location


def run_python(code: str, *args: str, timeout: float = 30) -> str:
    """Run ``code`` in a fresh interpreter (same environment); return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_handler_serializes_by_registered_name_without_touching_disk(tmp_path: Path) -> None:
    handler = LocalResultHandler(dir=tmp_path / "never-created", prefix="a/b")
    data = serialize_handler(handler)
    assert data == {"type": "local", "dir": str(tmp_path / "never-created"), "prefix": "a/b"}
    assert deserialize_handler(data) == handler
    assert not (tmp_path / "never-created").exists()


def test_a_serialized_state_is_read_in_another_process(local_handler: LocalResultHandler, tmp_path: Path) -> None:
    @task(checkpoint=True, result_handler=local_handler)
    def produce() -> dict[str, object]:
        return {"answer": 42, "items": [1, 2, 3]}

    with Flow("cross-process") as flow:
        produced = produce()
    serialized = json.dumps(flow.run().result[produced].serialize())
    state_file = tmp_path / "state.json"
    state_file.write_text(serialized)
    out = run_python(
        """
        import json, sys
        from runwright.engine.state import State
        state = State.deserialize(json.load(open(sys.argv[1])))
        print(json.dumps({"handler": type(state._result.result_handler).__name__,
                          "value": state._result.to_result().value}))
        """,
        str(state_file),
    )
    assert json.loads(out) == {"handler": "LocalResultHandler", "value": {"answer": 42, "items": [1, 2, 3]}}


def test_a_process_that_knows_only_the_uri_reads_the_value(local_handler: LocalResultHandler) -> None:
    uri = local_handler.write(["only", "the", "uri"])
    out = run_python("import sys, json, runwright; print(json.dumps(runwright.read_uri(sys.argv[1])))", uri)
    assert json.loads(out) == ["only", "the", "uri"]


def test_a_value_whose_class_is_missing_in_the_reader_fails_clearly(local_handler: LocalResultHandler, tmp_path: Path) -> None:
    module_dir = tmp_path / "writer_only"
    module_dir.mkdir()
    (module_dir / "writer_only_types.py").write_text("class Point:\n    def __init__(self, x):\n        self.x = x\n")
    sys.path.insert(0, str(module_dir))
    try:
        import writer_only_types  # type: ignore[import-not-found]

        uri = local_handler.write(writer_only_types.Point(3))
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("writer_only_types", None)
    out = run_python(
        """
        import sys
        from runwright_local import LocalResultHandler
        from runwright.engine.result_handlers import ResultHandlerError
        try:
            LocalResultHandler.from_uri(sys.argv[1]).read(sys.argv[1])
        except ResultHandlerError as exc:
            print(exc)
        """,
        uri,
    )
    assert uri in out and "could not be unpickled" in out and "writer_only_types" in out


THIRD_PARTY_MODULE = '''
"""A handler that is not part of runwright: JSON files in a directory."""
import json, os, uuid
from runwright import ResultHandler, hookimpl


class JsonFileResultHandler(ResultHandler):
    uri_schemes = ("jsonfile",)

    def __init__(self, root):
        self.root = root

    def write(self, result):
        name = uuid.uuid4().hex
        with open(os.path.join(self.root, name), "w") as fh:
            json.dump(result, fh)
        return "jsonfile://" + name

    def read(self, loc):
        with open(os.path.join(self.root, loc.split("://", 1)[1])) as fh:
            return json.load(fh)


@hookimpl
def runwright_register_result_handlers(register):
    register(JsonFileResultHandler, name="jsonfile")
'''


def test_a_third_party_handler_round_trips_through_serialization(
    plugin_manager: RunwrightPluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "third_party_handlers.py").write_text(THIRD_PARTY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    import third_party_handlers  # type: ignore[import-not-found]

    plugin_manager.register(third_party_handlers, name="third-party")
    handler = third_party_handlers.JsonFileResultHandler(root=str(tmp_path))

    @task(checkpoint=True, result_handler=handler)
    def produce() -> dict[str, int]:
        return {"third": 3}

    with Flow("third-party") as flow:
        produced = produce()
    data = flow.run().result[produced].serialize()
    assert data["_result"]["result_handler"] == {"type": "jsonfile", "root": str(tmp_path)}
    restored = State.deserialize(json.loads(json.dumps(data)))
    assert restored._result.result_handler == handler
    assert restored._result.to_result().value == {"third": 3}

    out = run_python(
        """
        import json, sys
        import third_party_handlers
        from runwright.engine.state import State
        from runwright.plugins import get_plugin_manager
        get_plugin_manager().register(third_party_handlers, name="third-party")
        state = State.deserialize(json.loads(sys.argv[1]))
        print(json.dumps(state._result.to_result().value))
        """,
        json.dumps(data),
    )
    assert json.loads(out) == {"third": 3}


WRITER = """
import os, sys
from runwright_local import LocalResultHandler
handler = LocalResultHandler(dir=sys.argv[1])
value = os.urandom(50 * 2**20)
while True:
    print(handler.write(value), flush=True)
"""


def test_a_writer_killed_mid_write_leaves_nothing_that_reads_as_a_result(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(results)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        deadline = time.monotonic() + 20
        caught_mid_write = False
        while time.monotonic() < deadline and not caught_mid_write:
            with os.scandir(results) as entries:
                caught_mid_write = any(e.name.startswith(TEMP_PREFIX) and e.stat().st_size > 0 for e in entries)
        os.kill(writer.pid, signal.SIGKILL)
        reported, _ = writer.communicate(timeout=10)
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
    assert caught_mid_write, "the writer was never observed in the middle of a write"
    handler = LocalResultHandler(dir=results)
    completed = {path_from_location(uri) for uri in reported.split()}
    for path in sorted(results.iterdir()):
        if path.name.startswith(TEMP_PREFIX):
            assert path.name.endswith(TEMP_SUFFIX)
            with pytest.raises(ResultHandlerError):
                handler.read(path.as_uri())
        else:
            # a finished file is whole, whether or not the writer lived to report it
            value = handler.read(path.as_uri())
            assert isinstance(value, bytes) and len(value) == 50 * 2**20
    assert completed <= set(results.iterdir())


def test_reading_the_uri_of_an_unfinished_write_is_a_clear_error(tmp_path: Path) -> None:
    handler = LocalResultHandler(dir=tmp_path / "results")
    uri = handler.write(b"x" * 1000)
    path = path_from_location(uri)
    path.rename(path.with_name(TEMP_PREFIX + "x" + TEMP_SUFFIX))  # as if the rename never happened
    with pytest.raises((ResultHandlerError, PluginError)) as info:
        runwright.read_uri(uri)
    assert f"No result at {uri}: the file does not exist" in str(info.value)
