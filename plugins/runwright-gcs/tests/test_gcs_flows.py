"""GCSResultHandler in flows and across processes, against the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import runwright
from runwright import Flow, SafeResult, task
from runwright.config import temporary_config
from runwright.engine.state import Failed, State, Success
from runwright_gcs import GCSResultHandler
from runwright_gcs.handler import parse_gs_uri


def _location(state: State) -> str:
    safe = state._result.safe_value
    assert isinstance(safe, SafeResult) and safe is not runwright.NoResult, f"{state} was not checkpointed"
    return str(safe.value)


def run_python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_checkpointed_task_uploads_its_result_and_its_state_carries_the_uri(
    gcs_handler: GCSResultHandler, storage_client: Any
) -> None:
    @task(checkpoint=True, result_handler=gcs_handler)
    def extract() -> dict[str, int]:
        return {"rows": 3}

    uploaded_before_downstream: list[bool] = []

    @task
    def check(rows: dict[str, int]) -> None:
        listed = list(storage_client.list_blobs(gcs_handler.bucket, prefix=gcs_handler.prefix))
        uploaded_before_downstream.append(len(listed) == 1)

    with Flow("gcs-etl") as flow:
        extracted = extract()
        check(extracted)
    state = flow.run()
    assert state.is_successful() and uploaded_before_downstream == [True]
    uri = _location(state.result[extracted])
    assert uri.startswith(f"gs://{gcs_handler.bucket}/{gcs_handler.prefix}/")
    assert runwright.read_uri(uri) == {"rows": 3}


def test_config_selects_gcs_and_checkpoints_every_task(bucket: str, prefix: str, emulator_env: str) -> None:
    @task
    def one() -> int:
        return 1

    @task
    def plus_one(x: int) -> int:
        return x + 1

    with Flow("configured") as flow:
        first = one()
        second = plus_one(first)
    settings = {
        "engine.result_handler": "gcs",
        "engine.checkpointing": True,
        "plugins.gcs.bucket": bucket,
        "plugins.gcs.prefix": prefix,
    }
    with temporary_config(settings):
        state = flow.run()
    uris = [_location(state.result[t]) for t in (first, second)]
    assert all(u.startswith(f"gs://{bucket}/{prefix}/") for u in uris)
    assert [runwright.read_uri(u) for u in uris] == [1, 2]


def test_handler_precedence_is_task_then_flow_then_config(bucket: str, prefix: str, emulator_env: str) -> None:
    @task(result_handler=GCSResultHandler(bucket=bucket, prefix=f"{prefix}/task"))
    def own_handler() -> str:
        return "task"

    @task
    def inherits() -> str:
        return "inherited"

    settings = {
        "engine.result_handler": "gcs",
        "engine.checkpointing": True,
        "plugins.gcs.bucket": bucket,
        "plugins.gcs.prefix": f"{prefix}/config",
    }
    with temporary_config(settings):
        with Flow("flow-handler", result_handler=GCSResultHandler(bucket=bucket, prefix=f"{prefix}/flow")) as flow:
            a, b = own_handler(), inherits()
        state = flow.run()
        with Flow("no-flow-handler") as bare:
            c = inherits()
        bare_state = bare.run()
    key_of = {name: parse_gs_uri(_location(s))[1] for name, s in
              {"a": state.result[a], "b": state.result[b], "c": bare_state.result[c]}.items()}
    assert key_of["a"].startswith(f"{prefix}/task/")
    assert key_of["b"].startswith(f"{prefix}/flow/")
    assert key_of["c"].startswith(f"{prefix}/config/")


def test_a_missing_bucket_fails_the_task_naming_the_uri(emulator_env: str) -> None:
    @task(checkpoint=True, result_handler=GCSResultHandler(bucket="bucket-that-was-never-made"))
    def produce() -> int:
        return 1

    with Flow("no-bucket") as flow:
        produced = produce()
    task_state = flow.run().result[produced]
    assert isinstance(task_state, Failed)
    assert "Cannot write gs://bucket-that-was-never-made/" in task_state.message
    assert "does not exist" in task_state.message


def test_a_wrong_credential_fails_the_task_naming_the_uri(bucket: str, monkeypatch: Any, tmp_path: Any) -> None:
    from runwright_gcs.client import forget_clients

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    forget_clients()

    @task(checkpoint=True, result_handler=GCSResultHandler(bucket=bucket))
    def produce() -> int:
        return 1

    with Flow("bad-credentials") as flow:
        produced = produce()
    task_state = flow.run().result[produced]
    forget_clients()
    assert isinstance(task_state, Failed)
    assert f"Cannot write gs://{bucket}/" in task_state.message and "no usable Google credentials" in task_state.message


def _flow_reading(location: str, handler: GCSResultHandler) -> tuple[Flow, Any, dict[Any, State]]:
    @task
    def upstream() -> int:
        raise AssertionError("must not run: its state is given")

    @task
    def downstream(x: int) -> int:
        return x + 1

    with Flow("resume-from-gcs") as flow:
        up = upstream()
        down = downstream(up)
    return flow, down, {up: Success(result=SafeResult(location, handler))}


def test_a_stored_result_feeds_a_later_run(gcs_handler: GCSResultHandler) -> None:
    flow, down, given = _flow_reading(gcs_handler.write(41), gcs_handler)
    assert flow.run(task_states=given).result[down].result == 42


def test_a_missing_object_fails_the_reading_task_naming_the_uri(gcs_handler: GCSResultHandler, storage_client: Any) -> None:
    uri = gcs_handler.write(41)
    bucket, key = parse_gs_uri(uri)
    storage_client.bucket(bucket).blob(key).delete()
    flow, down, given = _flow_reading(uri, gcs_handler)
    task_state = flow.run(task_states=given).result[down]
    assert isinstance(task_state, Failed)
    assert f"No result at {uri}: the object does not exist" in task_state.message


def test_a_serialized_state_is_read_in_another_process(gcs_handler: GCSResultHandler) -> None:
    @task(checkpoint=True, result_handler=gcs_handler)
    def produce() -> dict[str, Any]:
        return {"answer": 42}

    with Flow("gcs-cross-process") as flow:
        produced = produce()
    data = flow.run().result[produced].serialize()
    assert data["_result"]["result_handler"] == {
        "type": "gcs", "bucket": gcs_handler.bucket, "prefix": gcs_handler.prefix, "project": None
    }
    out = run_python(
        """
        import json, sys
        from runwright.engine.state import State
        state = State.deserialize(json.loads(sys.argv[1]))
        print(json.dumps(state._result.to_result().value))
        """,
        json.dumps(data),
    )
    assert json.loads(out) == {"answer": 42}


def test_a_process_that_knows_only_the_uri_reads_the_value(gcs_handler: GCSResultHandler) -> None:
    uri = gcs_handler.write([1, "two"])
    out = run_python("import json, sys, runwright; print(json.dumps(runwright.read_uri(sys.argv[1])))", uri)
    assert json.loads(out) == [1, "two"]


WRITER = """
import os, sys
from runwright_gcs import GCSResultHandler
handler = GCSResultHandler(bucket=sys.argv[1], prefix=sys.argv[2])
value = os.urandom(50 * 2**20)
while True:
    print(handler.write(value), flush=True)
"""


def test_a_writer_killed_mid_upload_leaves_no_partial_object(
    bucket: str, prefix: str, emulator_env: str, storage_client: Any
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, bucket, prefix], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert writer.stdout is not None
        first = writer.stdout.readline().strip()  # one upload done: the next one is under way
        time.sleep(0.15)
        os.kill(writer.pid, signal.SIGKILL)
        rest, _ = writer.communicate(timeout=10)
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
    reported = {first, *rest.split()}
    handler = GCSResultHandler(bucket=bucket)
    stored = {f"gs://{bucket}/{blob.name}" for blob in storage_client.list_blobs(bucket, prefix=prefix)}
    assert reported <= stored
    for uri in stored:
        value = handler.read(uri)
        assert isinstance(value, bytes) and len(value) == 50 * 2**20
