"""Shared test setup: an isolated configuration and home directory for the whole run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="runwright-test-home-")
os.environ.setdefault("RUNWRIGHT_TEST_REAL_HOME", os.environ.get("HOME", ""))
os.environ["HOME"] = _HOME
_CONFIG = Path(_HOME) / "config.toml"
_CONFIG.write_text("")
os.environ["RUNWRIGHT_CONFIG"] = str(_CONFIG)

from runwright.config import reload_config  # noqa: E402

reload_config()


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user config file for one test; write to it, then call ``reload_config()``."""
    path = tmp_path / "config.toml"
    path.write_text("")
    monkeypatch.setenv("RUNWRIGHT_CONFIG", str(path))
    yield path
    monkeypatch.setenv("RUNWRIGHT_CONFIG", str(_CONFIG))
    reload_config()
