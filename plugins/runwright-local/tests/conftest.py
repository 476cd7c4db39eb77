"""Fixtures for runwright-local's tests: a results directory (HOME and the config are isolated
by the runwright pytest plugin, ``runwright_isolated = true`` in tox.ini)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runwright.config import temporary_config
from runwright_local import LocalResultHandler


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
