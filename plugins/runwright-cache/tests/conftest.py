"""Fixtures: an isolated cache database and result directory per test, in this process
(``cache_config``) and for flow files run in fresh Python processes (``run_script``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runwright.config import temporary_config


@pytest.fixture
def cache_db(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "cache.db"


@pytest.fixture
def cache_config(tmp_path: Path, cache_db: Path, plugin_manager: Any) -> Iterator[dict[str, Any]]:
    """This process uses a fresh cache database and results directory for the test."""
    settings = {
        "plugins.cache.path": str(cache_db),
        "plugins.local.dir": str(tmp_path / "results"),
        "engine.result_handler": "local",
    }
    with temporary_config(settings):
        yield settings


@pytest.fixture
def subprocess_env(tmp_path: Path, cache_db: Path, config_file: Path) -> dict[str, str]:
    """Environment for child processes: the same database and results directory, and the
    test's own empty user config (the runwright pytest plugin's ``config_file``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    env.update(
        RUNWRIGHT_CONFIG=str(config_file),
        RUNWRIGHT__PLUGINS__CACHE__PATH=str(cache_db),
        RUNWRIGHT__PLUGINS__LOCAL__DIR=str(tmp_path / "results"),
        RUNWRIGHT__ENGINE__RESULT_HANDLER="local",
    )
    return env


@pytest.fixture
def run_script(tmp_path: Path, subprocess_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_script(source, *args)``: write ``source`` to a file and run it in a new Python
    process (fails the test with the process's output if it exits non-zero)."""

    def run(source: str, *args: str, name: str = "flow_file.py", check: bool = True) -> subprocess.CompletedProcess[str]:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        done = subprocess.run(
            [sys.executable, str(path), *args], env=subprocess_env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"{name} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        return done

    return run


