"""The built-in ``server`` storage: flow source stored content-addressed on the server,
fetched by an agent into its code cache once per digest, checked, never outside the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runwright.plugins import build_plugin_manager
from runwright.storage import StorageError
from runwright_cloud.client import Client
from runwright_cloud.server_storage import ServerStorage
from runwright_server.testing import TestServer, unique


@pytest.fixture
def client(server: TestServer) -> Client:
    return Client(api=server.url, api_token=server.token_a)


def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "deployed_flow.py"
    path.write_text(f"# {unique()}\nfrom runwright import Flow\nflow = Flow('x')\n")
    return path


def test_the_cloud_plugin_registers_the_server_storage() -> None:
    assert isinstance(build_plugin_manager().storage("server"), ServerStorage)


def test_store_then_fetch_gives_the_same_source_and_the_same_ref_twice(client: Client, tmp_path: Path) -> None:
    storage = ServerStorage()
    path = flow_file(tmp_path)
    ref = storage.store(path, client)
    assert ref == {"digest": hashlib.sha256(path.read_bytes()).hexdigest(), "filename": "deployed_flow.py"}
    assert storage.store(path, client) == ref  # re-deploying unchanged code changes nothing

    cache = tmp_path / "cache"
    fetched = storage.fetch(ref, client, cache)
    assert fetched == cache / "server" / ref["digest"] / "deployed_flow.py"
    assert fetched.read_bytes() == path.read_bytes()


def test_a_second_fetch_is_served_from_the_cache(client: Client, tmp_path: Path) -> None:
    storage = ServerStorage()
    ref = storage.store(flow_file(tmp_path), client)
    cache = tmp_path / "cache"
    first = storage.fetch(ref, client, cache)
    offline = Client(api="http://127.0.0.1:9", api_token="rw_unused", retries=0)
    assert storage.fetch(ref, offline, cache) == first  # no request: the server could be down


def test_a_corrupted_cache_entry_is_fetched_again(client: Client, tmp_path: Path) -> None:
    storage = ServerStorage()
    path = flow_file(tmp_path)
    ref = storage.store(path, client)
    cache = tmp_path / "cache"
    fetched = storage.fetch(ref, client, cache)
    fetched.write_text("tampered")
    assert storage.fetch(ref, client, cache).read_bytes() == path.read_bytes()


def test_code_of_another_tenant_or_never_stored_is_a_storage_error(server: TestServer, client: Client, tmp_path: Path) -> None:
    storage = ServerStorage()
    ref = storage.store(flow_file(tmp_path), client)
    other = Client(api=server.url, api_token=server.token_b)
    with pytest.raises(StorageError, match="has no stored code"):
        storage.fetch(ref, other, tmp_path / "cache-b")
    with pytest.raises(StorageError, match="names no sha256 digest"):
        storage.fetch({"digest": "../../etc"}, client, tmp_path / "cache")


def test_a_hostile_filename_stays_inside_the_cache(client: Client, tmp_path: Path) -> None:
    storage = ServerStorage()
    ref = storage.store(flow_file(tmp_path), client)
    cache = tmp_path / "cache"
    for filename in ("../../escape.py", "/etc/passwd", ".hidden", "", None):
        fetched = storage.fetch({**ref, "filename": filename}, client, cache)
        assert fetched.resolve().is_relative_to((cache / "server" / ref["digest"]).resolve())


def test_an_unreadable_flow_file_is_a_storage_error(client: Client, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="Cannot read the flow file"):
        ServerStorage().store(tmp_path / "missing.py", client)
