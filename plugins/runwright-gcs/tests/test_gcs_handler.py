"""GCSResultHandler on its own: keys, laziness, credentials, write-once and every failure."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import runwright
from runwright.config import ConfigError, temporary_config
from runwright.engine.result_framing import MAGIC
from runwright.engine.result_handlers import ResultHandlerError
from runwright_gcs import GCSResultHandler
from runwright_gcs import handler as handler_module
from runwright_gcs.client import forget_clients
from runwright_gcs.handler import parse_gs_uri


def test_a_result_is_a_uuid_named_object_under_the_prefix(
    gcs_handler: GCSResultHandler, bucket: str, prefix: str, storage_client: Any
) -> None:
    uri = gcs_handler.write({"rows": 3})
    found_bucket, key = parse_gs_uri(uri)
    assert found_bucket == bucket
    directory, _, name = key.rpartition("/")
    assert directory == prefix and name.endswith(".rwr") and len(name) == 32 + 4
    blob = storage_client.bucket(bucket).get_blob(key)
    assert blob.content_type == "application/octet-stream"
    assert blob.download_as_bytes().startswith(MAGIC)
    assert gcs_handler.read(uri) == {"rows": 3}


def test_bucket_prefix_and_project_default_from_config(bucket: str, emulator_env: str, prefix: str) -> None:
    with temporary_config({"plugins.gcs.bucket": bucket, "plugins.gcs.prefix": prefix}):
        uri = GCSResultHandler().write("configured")
    assert uri.startswith(f"gs://{bucket}/{prefix}/")
    assert runwright.read_uri(uri) == "configured"


def test_an_empty_prefix_writes_at_the_bucket_root(bucket: str, emulator_env: str) -> None:
    uri = GCSResultHandler(bucket=bucket, prefix="").write(1)
    assert parse_gs_uri(uri)[1].count("/") == 0


def test_no_bucket_at_all_is_a_clear_error(emulator_env: str) -> None:
    with pytest.raises(ResultHandlerError, match=r"no bucket.*\[plugins.gcs\] bucket"):
        GCSResultHandler().write(1)


def test_an_unknown_config_key_is_a_clear_error(emulator_env: str) -> None:
    with (
        temporary_config({"plugins.gcs.buckett": "x"}),
        pytest.raises(ConfigError, match=r"buckett.*accepted keys: bucket, credentials, prefix, project, timeout"),
    ):
        GCSResultHandler(bucket="abc").write(1)


@pytest.mark.parametrize("prefix", ["../escape", "/abs", "a//b", ".hidden", "a/../b", "a b"])
def test_an_unsafe_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="Invalid result prefix"):
        GCSResultHandler(bucket="abc", prefix=prefix)


@pytest.mark.parametrize("bucket", ["gs://abc", "ab", "Upper", "a/b", ""])
def test_an_invalid_bucket_name_is_rejected(bucket: str) -> None:
    with pytest.raises(ValueError, match="Invalid GCS bucket name"):
        GCSResultHandler(bucket=bucket)


def test_constructing_pickling_and_deserializing_touch_no_network_and_no_google_library() -> None:
    code = """
        import json, pickle, sys
        from runwright.engine.serialization import deserialize_handler, serialize_handler
        from runwright.engine.state import State
        from runwright_gcs import GCSResultHandler
        handler = GCSResultHandler(bucket="some-bucket", prefix="p", project="proj")
        handler = pickle.loads(pickle.dumps(handler))
        handler = deserialize_handler(json.loads(json.dumps(serialize_handler(handler))))
        state = State.deserialize({"type": "Success", "_result": {"type": "SafeResult",
            "value": "gs://some-bucket/p/x.rwr", "result_handler": {"type": "gcs", "bucket": "some-bucket",
            "prefix": "p", "project": "proj"}}})
        loaded = sorted(m for m in sys.modules if m.startswith(("google", "requests", "urllib3")))
        print(json.dumps({"loaded": loaded, "same": state._result.result_handler == handler}))
    """
    env = dict(os.environ, STORAGE_EMULATOR_HOST="http://127.0.0.1:9")  # nothing listens there
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"loaded": [], "same": True}


def test_the_emulator_is_used_with_anonymous_credentials_and_no_default_lookup(
    gcs_handler: GCSResultHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.auth

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("google.auth.default() must not run when STORAGE_EMULATOR_HOST is set")

    monkeypatch.setattr(google.auth, "default", forbidden)
    forget_clients()
    uri = gcs_handler.write("anonymous")
    assert gcs_handler.read(uri) == "anonymous"
    from google.auth.credentials import AnonymousCredentials

    from runwright_gcs.client import current_settings, get_client

    assert isinstance(get_client(current_settings(None, None))._credentials, AnonymousCredentials)


def test_an_emulator_host_without_scheme_is_accepted(gcs_emulator: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.removeprefix("http://"))
    forget_clients()
    handler = GCSResultHandler(bucket=bucket, prefix="no-scheme")
    assert handler.read(handler.write(5)) == 5


def test_clients_are_built_once_per_process_and_settings(gcs_handler: GCSResultHandler) -> None:
    from runwright_gcs.client import current_settings, get_client

    gcs_handler.write(1)
    assert get_client(current_settings(None, None)) is get_client(current_settings(None, None))


def test_an_unpicklable_value_uploads_nothing(gcs_handler: GCSResultHandler, storage_client: Any, bucket: str, prefix: str) -> None:
    with pytest.raises(ResultHandlerError, match="not picklable.*Nothing was written"):
        gcs_handler.write(threading.Lock())
    assert list(storage_client.list_blobs(bucket, prefix=prefix)) == []


def test_a_missing_object_names_the_uri(gcs_handler: GCSResultHandler, storage_client: Any) -> None:
    uri = gcs_handler.write(1)
    bucket, key = parse_gs_uri(uri)
    storage_client.bucket(bucket).blob(key).delete()
    with pytest.raises(ResultHandlerError, match="the object does not exist") as info:
        gcs_handler.read(uri)
    assert f"No result at {uri}" in str(info.value)


def test_a_missing_bucket_is_named_when_writing(emulator_env: str) -> None:
    handler = GCSResultHandler(bucket="no-such-bucket-here")
    with pytest.raises(ResultHandlerError, match=r"gs://no-such-bucket-here/.*bucket 'no-such-bucket-here' does not exist"):
        handler.write(1)


def test_a_missing_bucket_is_named_when_reading(emulator_env: str) -> None:
    uri = "gs://no-such-bucket-here/x/y.rwr"
    with pytest.raises(ResultHandlerError, match="bucket 'no-such-bucket-here' does not exist") as info:
        GCSResultHandler.from_uri(uri).read(uri)
    assert uri in str(info.value)


def test_a_foreign_object_is_reported_never_unpickled(gcs_handler: GCSResultHandler, storage_client: Any, bucket: str, prefix: str) -> None:
    storage_client.bucket(bucket).blob(f"{prefix}/foreign.rwr").upload_from_string(pickle.dumps("a plain pickle"))
    uri = f"gs://{bucket}/{prefix}/foreign.rwr"
    with pytest.raises(ResultHandlerError, match="not a valid result.*runwright result header") as info:
        gcs_handler.read(uri)
    assert uri in str(info.value)


@pytest.mark.parametrize("location", ["s3://bucket/key", "gs://", "gs://bucket-only", "gs://bucket/"])
def test_locations_that_are_not_gs_uris_are_refused(gcs_handler: GCSResultHandler, location: str) -> None:
    with pytest.raises(ResultHandlerError) as info:
        gcs_handler.read(location)
    assert location in str(info.value)


def test_results_are_write_once(gcs_handler: GCSResultHandler, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    fixed = uuid.uuid4()
    monkeypatch.setattr(handler_module.uuid, "uuid4", lambda: fixed)  # force a key collision
    uri = gcs_handler.write("first")
    assert gcs_handler.write("first") == uri, "re-sending identical bytes (a retried upload) is not an error"
    with pytest.raises(ResultHandlerError, match="already exists there and results are write-once") as info:
        gcs_handler.write("second")
    assert uri in str(info.value)
    assert gcs_handler.read(uri) == "first"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"type": "service_account", "client_email": "x"}', "not a valid service_account key"),
        ('{"type": "external_account", "audience": "x"}', "has type 'external_account'"),
        ("not json", "cannot load the key file"),
        (None, "cannot load the key file"),
    ],
    ids=["incomplete-key", "refused-type", "not-json", "missing-file"],
)
def test_invalid_configured_credentials_are_a_clear_error(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, reason: str
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    forget_clients()
    key_file = tmp_path / "key.json"
    if content is not None:
        key_file.write_text(content)
    with (
        temporary_config({"plugins.gcs.credentials": str(key_file)}),
        pytest.raises(ResultHandlerError, match=rf"Cannot write gs://{bucket}/.*no usable Google credentials") as info,
    ):
        GCSResultHandler(bucket=bucket).write(1)
    assert reason in str(info.value) and str(key_file) in str(info.value)


def test_a_missing_application_credentials_file_is_a_clear_error(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    forget_clients()
    uri = f"gs://{bucket}/some/result.rwr"
    with pytest.raises(ResultHandlerError, match="GOOGLE_APPLICATION_CREDENTIALS") as info:
        GCSResultHandler.from_uri(uri).read(uri)
    assert uri in str(info.value) and "/nonexistent/key.json" in str(info.value)


def test_credentials_refused_by_google_are_a_clear_error(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A revoked key cannot be produced by the emulator (it accepts anyone): inject the
    refusal google.auth raises when it refreshes a token (before any request is sent)."""
    import google.auth
    from google.auth.credentials import Credentials
    from google.auth.exceptions import RefreshError

    class RevokedCredentials(Credentials):  # type: ignore[misc]
        def refresh(self, request: Any) -> None:
            raise RefreshError("invalid_grant: Invalid JWT Signature.")

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (RevokedCredentials(), "project"))
    forget_clients()
    with pytest.raises(ResultHandlerError, match=r"credentials were refused.*Invalid JWT Signature") as info:
        GCSResultHandler(bucket=bucket).write(1)
    assert f"gs://{bucket}/" in str(info.value)
    forget_clients()
