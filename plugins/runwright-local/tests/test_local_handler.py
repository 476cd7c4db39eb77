"""LocalResultHandler on its own: where files go, what they look like, and every failure."""

from __future__ import annotations

import os
import pickle
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import runwright
from runwright.config import ConfigError, temporary_config
from runwright.engine.result_framing import HEADER_SIZE, MAGIC
from runwright.engine.result_handlers import ResultHandlerError
from runwright_local import LocalResultHandler
from runwright_local.handler import path_from_location


def test_a_result_is_a_private_uuid_named_file_under_dir(local_handler: LocalResultHandler, results_dir: Path) -> None:
    uri = local_handler.write({"rows": 3})
    assert uri.startswith("file:///")
    path = path_from_location(uri)
    assert path.parent == results_dir
    assert len(path.stem) == 32 and int(path.stem, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(MAGIC)
    assert local_handler.read(uri) == {"rows": 3}
    assert os.listdir(results_dir) == [path.name], "no temporary file may be left behind"


def test_constructing_a_handler_touches_no_file(tmp_path: Path) -> None:
    LocalResultHandler(dir=tmp_path / "not-yet")
    assert not (tmp_path / "not-yet").exists()


def test_the_directory_is_created_on_first_write(tmp_path: Path) -> None:
    handler = LocalResultHandler(dir=tmp_path / "a" / "b")
    assert handler.read(handler.write(5)) == 5


def test_dir_defaults_to_the_configured_directory(configured_dir: Path) -> None:
    uri = LocalResultHandler().write("configured")
    assert path_from_location(uri).parent == configured_dir


def test_home_in_dir_is_expanded() -> None:
    assert LocalResultHandler(dir="~/results").dir == os.path.join(os.path.expanduser("~"), "results")


def test_the_packaged_default_directory_is_under_home() -> None:
    uri = LocalResultHandler().write(1)
    assert path_from_location(uri).parent == Path(os.path.expanduser("~/.runwright/results"))


def test_an_unknown_config_key_is_a_clear_error() -> None:
    with (
        temporary_config({"plugins.local.directory": "/tmp/x"}),
        pytest.raises(ConfigError, match=r"directory.*\[plugins.local\].*accepted keys: dir, prefix"),
    ):
        LocalResultHandler().write(1)


def test_a_valid_prefix_nests_results_under_dir(local_handler: LocalResultHandler, results_dir: Path) -> None:
    handler = LocalResultHandler(dir=results_dir, prefix="etl/daily_v2/")
    assert handler.prefix == "etl/daily_v2"
    assert path_from_location(handler.write(1)).parent == results_dir / "etl" / "daily_v2"


@pytest.mark.parametrize("prefix", ["../escape", "a/../../b", "/etc", ".hidden", "a//b", "a\\b", "a/./b", "~", "a b"])
def test_a_prefix_that_could_escape_dir_is_rejected(results_dir: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="Invalid result prefix"):
        LocalResultHandler(dir=results_dir, prefix=prefix)


def test_a_configured_prefix_is_validated_too(configured_dir: Path) -> None:
    with (
        temporary_config({"plugins.local.prefix": "../../etc"}),
        pytest.raises(ConfigError, match=r"\[plugins.local\] prefix"),
    ):
        LocalResultHandler().write(1)
    with temporary_config({"plugins.local.prefix": "team-a"}):
        assert path_from_location(LocalResultHandler().write(1)).parent == configured_dir / "team-a"


def test_an_empty_prefix_overrides_the_configured_one(configured_dir: Path) -> None:
    with temporary_config({"plugins.local.prefix": "team-a"}):
        assert path_from_location(LocalResultHandler(prefix="").write(1)).parent == configured_dir


def test_an_unpicklable_value_writes_nothing(local_handler: LocalResultHandler, results_dir: Path) -> None:
    with pytest.raises(ResultHandlerError, match="not picklable.*Nothing was written"):
        local_handler.write(threading.Lock())
    assert os.listdir(results_dir) == []


def test_a_missing_file_names_the_uri(local_handler: LocalResultHandler) -> None:
    uri = local_handler.write(1)
    os.remove(path_from_location(uri))
    with pytest.raises(ResultHandlerError, match="does not exist") as info:
        local_handler.read(uri)
    assert uri in str(info.value)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[: HEADER_SIZE - 1], "shorter than the 24-byte header"),
        (lambda data: data[:-1], "truncated"),
        (lambda data: b"", "0 bytes long"),
        (lambda data: data[:HEADER_SIZE] + b"\x00" * (len(data) - HEADER_SIZE), "checksum"),
        (lambda data: pickle.dumps("a plain pickle"), "header"),
        (lambda data: data[:8] + b"\x00\x09" + data[10:], "format version 9"),
    ],
    ids=["short-header", "truncated-payload", "empty", "zeroed-payload", "bare-pickle", "future-version"],
)
def test_a_damaged_file_is_reported_never_unpickled(
    local_handler: LocalResultHandler, damage: Callable[[bytes], bytes], reason: str
) -> None:
    uri = local_handler.write(list(range(100)))
    path = path_from_location(uri)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ResultHandlerError, match="not a valid result") as info:
        local_handler.read(uri)
    assert uri in str(info.value) and reason in str(info.value)


def test_a_temporary_file_is_never_read_as_a_result(local_handler: LocalResultHandler, results_dir: Path) -> None:
    complete = path_from_location(local_handler.write("whole")).read_bytes()
    leftover = results_dir / ".rw-tmp-abc123.partial"
    leftover.write_bytes(complete)  # even a complete-looking leftover is not a result
    with pytest.raises(ResultHandlerError, match="interrupted write"):
        local_handler.read(leftover.as_uri())


def test_a_directory_is_not_a_result(local_handler: LocalResultHandler, results_dir: Path) -> None:
    with pytest.raises(ResultHandlerError, match=str(results_dir)):
        local_handler.read(results_dir.as_uri())


def test_an_unwritable_directory_names_the_uri(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ResultHandlerError, match=r"Could not write the result to file://.*a-file/") as info:
        LocalResultHandler(dir=blocker).write(1)
    assert "[plugins.local] dir" in str(info.value)


def test_uris_with_special_characters_round_trip(tmp_path: Path) -> None:
    handler = LocalResultHandler(dir=tmp_path / "with space & %25")
    uri = handler.write("odd")
    assert " " not in uri
    assert runwright.read_uri(uri) == "odd"


def test_a_bare_absolute_path_is_also_accepted(local_handler: LocalResultHandler) -> None:
    uri = local_handler.write("seed style")
    assert local_handler.read(str(path_from_location(uri))) == "seed style"


@pytest.mark.parametrize("location", ["relative/path.rwr", "file://otherhost/x.rwr"])
def test_locations_that_are_not_local_files_are_refused(local_handler: LocalResultHandler, location: str) -> None:
    with pytest.raises(ResultHandlerError) as info:
        local_handler.read(location)
    assert location in str(info.value)


def test_from_uri_builds_a_handler_for_the_files_directory(local_handler: LocalResultHandler, results_dir: Path) -> None:
    uri = local_handler.write(7)
    reader = LocalResultHandler.from_uri(uri)
    assert reader.dir == str(results_dir)
    assert reader.read(uri) == 7


def test_a_large_value_round_trips(local_handler: LocalResultHandler) -> None:
    value = os.urandom(8 * 2**20)
    assert local_handler.read(local_handler.write(value)) == value


@pytest.mark.parametrize("file_size", [2**16 - 1, 2**16, 2**16 + 1, 3 * 2**16])
def test_values_around_the_first_read_size_round_trip(local_handler: LocalResultHandler, file_size: int) -> None:
    # bytes pickle as a small opcode header + the data: search the length giving this file size
    value = b"x" * (file_size - 64)
    uri = local_handler.write(value)
    path = path_from_location(uri)
    value += b"x" * (file_size - path.stat().st_size)
    uri = local_handler.write(value)
    assert path_from_location(uri).stat().st_size == file_size
    assert local_handler.read(uri) == value


@pytest.mark.parametrize("size", [100, 2**16, 2**17])
def test_bytes_appended_to_a_result_are_reported(local_handler: LocalResultHandler, size: int) -> None:
    uri = local_handler.write(b"v" * size)
    path = path_from_location(uri)
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(ResultHandlerError, match="payload bytes but"):
        local_handler.read(uri)


def test_a_location_outside_dir_is_refused_naming_both(local_handler: LocalResultHandler, results_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside_uri = LocalResultHandler(dir=elsewhere).write("not yours")
    sneaky = f"file://{results_dir}/../elsewhere/{os.path.basename(outside_uri)}"
    with pytest.raises(ResultHandlerError, match="outside this handler's directory") as info:
        local_handler.read(sneaky)
    assert str(results_dir) in str(info.value) and str(elsewhere) in str(info.value)


def test_a_directory_link_out_of_dir_is_refused(local_handler: LocalResultHandler, results_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside_uri = LocalResultHandler(dir=elsewhere).write("not yours")
    (results_dir / "link").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ResultHandlerError, match="outside this handler's directory"):
        local_handler.read(f"file://{results_dir}/link/{os.path.basename(outside_uri)}")


def test_a_result_file_that_is_a_link_is_refused(local_handler: LocalResultHandler, results_dir: Path) -> None:
    real = path_from_location(local_handler.write("real"))
    link = results_dir / "link.rwr"
    link.symlink_to(real)
    with pytest.raises(ResultHandlerError, match="symbolic link"):
        local_handler.read(link.as_uri())


def test_a_handler_without_dir_reads_only_under_the_configured_directory(configured_dir: Path, tmp_path: Path) -> None:
    handler = LocalResultHandler()
    assert handler.read(handler.write("mine")) == "mine"
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ResultHandlerError, match="outside"):
        handler.read(LocalResultHandler(dir=other).write("theirs"))


def test_the_results_directory_is_private_to_its_owner(tmp_path: Path) -> None:
    handler = LocalResultHandler(dir=tmp_path / "new-results")
    path = path_from_location(handler.write(1))
    assert stat.S_IMODE(os.stat(tmp_path / "new-results").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
