"""The ``runwright`` pytest plugin: fixtures for testing flows and plugins, and isolation.

Registered as the ``pytest11`` entry point ``runwright``, so it is active wherever runwright
is installed. What it provides:

* ``runwright_isolated = true`` (an ini option, off by default): for the whole test run,
  ``HOME`` is a new temporary directory and ``RUNWRIGHT_CONFIG`` an empty file in it, and
  the ``RUNWRIGHT__SECTION__KEY`` overrides of the calling shell are dropped, so neither the
  developer's ``~/.runwright`` (config, results, the embedded server's database and token)
  nor their environment leaks into a test, nor a test into them. It is applied before any
  conftest is imported (``pytest_load_initial_conftests``), so module-level code of conftests
  and test modules already sees the isolated home; child processes inherit it. The real home
  stays available as ``RUNWRIGHT_TEST_REAL_HOME``. Everything is restored, and the directory
  removed, when the run ends.
* ``config_file``: a user config file of one test's own (write it, then ``reload_config()``).
* ``plugin_manager``, ``hook_recorder``, ``run_flow``: a fresh plugin manager for a test,
  the hook calls it made, and a flow run that uses it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ISOLATED_INI = "runwright_isolated"
_CONFIG_OVERRIDE_PREFIX = "RUNWRIGHT__"
_saved_environ: dict[str, str | None] | None = None
_isolated_home: str | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        ISOLATED_INI,
        type="bool",
        default=False,
        help="runwright: run the tests with a temporary HOME and an empty runwright config",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    if early_config.getini(ISOLATED_INI):
        isolate_home()


def pytest_unconfigure(config: pytest.Config) -> None:
    restore_home()


def isolate_home() -> Path:
    """Point HOME at a new temporary directory with an empty config file (see the module
    docstring); idempotent. Returns the directory."""
    global _saved_environ, _isolated_home
    if _isolated_home is not None:
        return Path(_isolated_home)
    home = tempfile.mkdtemp(prefix="runwright-test-home-")
    config = Path(home) / "config.toml"
    config.write_text("")
    names = ["HOME", "RUNWRIGHT_CONFIG", "RUNWRIGHT_TEST_REAL_HOME"]
    names += [name for name in os.environ if name.startswith(_CONFIG_OVERRIDE_PREFIX)]
    _saved_environ = {name: os.environ.get(name) for name in names}
    os.environ.setdefault("RUNWRIGHT_TEST_REAL_HOME", os.environ.get("HOME", ""))
    for name in names:
        if name.startswith(_CONFIG_OVERRIDE_PREFIX):
            del os.environ[name]
    os.environ["HOME"] = home
    os.environ["RUNWRIGHT_CONFIG"] = str(config)
    _isolated_home = home
    _reload_config_if_loaded()
    return Path(home)


def restore_home() -> None:
    """Undo :func:`isolate_home`: restore the environment, remove the temporary home."""
    global _saved_environ, _isolated_home
    if _saved_environ is None or _isolated_home is None:
        return
    for name, value in _saved_environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_isolated_home, ignore_errors=True)
    _saved_environ = _isolated_home = None
    _reload_config_if_loaded()


def _reload_config_if_loaded() -> None:
    import sys

    config_module = sys.modules.get("runwright.config")
    if config_module is not None:
        config_module.reload_config()


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Path]:
    """An empty user config file for this test, named by ``RUNWRIGHT_CONFIG`` while it runs.

    Write settings to it, then call ``runwright.config.reload_config()``; afterwards the
    previous config file is named again and reloaded.
    """
    from runwright.config import reload_config

    path = tmp_path / "config.toml"
    path.write_text("")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNWRIGHT_CONFIG", str(path))
        yield path
    reload_config()


@pytest.fixture
def plugin_manager() -> Iterator[Any]:
    """A freshly built plugin manager, used as the process-wide one during the test."""
    from runwright.plugins import build_plugin_manager, use_plugin_manager

    pm = build_plugin_manager()
    with use_plugin_manager(pm):
        yield pm


@pytest.fixture
def hook_recorder(plugin_manager: Any) -> Iterator[Any]:
    """Records the hook calls made during the test."""
    from runwright.testing.recorder import HookRecorder

    recorder = HookRecorder(plugin_manager)
    yield recorder
    recorder.close()


@pytest.fixture
def run_flow(plugin_manager: Any) -> Callable[..., Any]:
    """``run_flow(flow, **kwargs)``: run a flow with the test's plugin manager."""

    def run(flow: Any, **kwargs: Any) -> Any:
        return flow.run(**kwargs)

    return run
