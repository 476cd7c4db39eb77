"""Fixtures for runwright-local's tests: an isolated config and home, a results directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Never read the developer's ~/.runwright/config.toml or write to ~/.runwright/results.
_HOME = tempfile.mkdtemp(prefix="runwright-local-test-home-")
os.environ["HOME"] = _HOME
_CONFIG = Path(_HOME) / "config.toml"
_CONFIG.write_text("")
os.environ["RUNWRIGHT_CONFIG"] = str(_CONFIG)

from runwright.config import reload_config, temporary_config
from runwright_local import LocalResultHandler

reload_config()


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """An empty directory that the test's handlers write to."""
    path = tmp_path / "results"
    path.mkdir()
    return path


@pytest.fixture
def local_handler(results_dir: Path) -> LocalResultHandler:
    return LocalResultHandler(dir=results_dir)


@pytest.fixture
def configured_dir(tmp_path: Path) -> Iterator[Path]:
    """``[plugins.local] dir`` points here (and ``result_handler = "local"``) for the test."""
    path = tmp_path / "configured"
    with temporary_config({"plugins.local.dir": str(path), "engine.result_handler": "local"}):
        yield path


@pytest.fixture
def result_files() -> Callable[[Path], list[Path]]:
    """``result_files(directory)``: finished result files (not temporary ones) under it."""

    def find(directory: Path) -> list[Path]:
        return sorted(p for p in directory.rglob("*.rwr") if p.is_file())

    return find
