"""Storages: a registry filled by ``runwright_register_storages``, looked up by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runwright import hookimpl
from runwright.plugins import UnknownNameError
from runwright.storage import Storage, code_cache_dir


class SharedDirectory(Storage):
    """A third-party storage: copies the flow file into a directory every machine sees."""

    name = "shared-dir"

    def __init__(self, root: Path) -> None:
        self.root = root

    def store(self, path, client):
        target = self.root / path.name
        shutil.copyfile(path, target)
        return {"path": str(target)}

    def fetch(self, ref, client, cache_dir):
        return Path(ref["path"])


class Registers:
    def __init__(self, *storages: object) -> None:
        self.storages = storages

    @hookimpl
    def runwright_register_storages(self, register):
        for storage in self.storages:
            register(storage)


def test_a_plugin_storage_is_found_by_name_and_round_trips_a_flow_file(plugin_manager, tmp_path: Path) -> None:
    storage = SharedDirectory(tmp_path)
    plugin_manager.register(Registers(storage), name="shared-dir-plugin")
    flow_file = tmp_path / "src" / "flow.py"
    flow_file.parent.mkdir()
    flow_file.write_text("print('hi')\n")

    found = plugin_manager.storage("shared-dir")
    ref = found.store(flow_file, None)
    assert found is storage
    assert found.fetch(ref, None, tmp_path / "cache").read_text() == "print('hi')\n"
    assert "shared-dir" in plugin_manager.registry.storages


def test_an_unknown_storage_names_the_installed_ones(plugin_manager, tmp_path: Path) -> None:
    plugin_manager.register(Registers(SharedDirectory(tmp_path)), name="shared-dir-plugin")
    with pytest.raises(UnknownNameError) as info:
        plugin_manager.storage("git")
    message = str(info.value)
    assert "Storage 'git' is not installed" in message
    assert "shared-dir" in message


def test_a_storage_name_registered_twice_is_an_error_naming_both(plugin_manager, tmp_path: Path) -> None:
    plugin_manager.register(Registers(SharedDirectory(tmp_path), SharedDirectory(tmp_path)), name="twice")
    with pytest.raises(Exception, match="Storage name 'shared-dir' is registered twice"):
        plugin_manager.storage("shared-dir")


def test_register_takes_only_named_storage_instances(plugin_manager) -> None:
    plugin_manager.register(Registers(object()), name="not-a-storage")
    with pytest.raises(Exception, match="runwright.storage.Storage instance"):
        plugin_manager.storage("anything")


def test_fetched_code_is_cached_under_the_home_directory(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert code_cache_dir() == tmp_path / ".runwright" / "code"
