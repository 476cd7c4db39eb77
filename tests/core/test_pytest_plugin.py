"""The shipped pytest plugin: ``runwright_isolated`` and ``config_file``, as a plugin author's
test suite sees them (a separate pytest run in a directory of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CONFTEST = '''
import json, os, pathlib

# Module-level code of a conftest already runs in the isolated home.
AT_IMPORT = {"home": os.environ["HOME"], "config": os.environ.get("RUNWRIGHT_CONFIG")}
pathlib.Path(os.environ["REPORT"]).with_suffix(".import.json").write_text(json.dumps(AT_IMPORT))
'''

TESTS = '''
import json, os, pathlib

from runwright.config import get_config, reload_config


def test_report(config_file):
    before = {
        "home": os.environ["HOME"],
        "config": os.environ.get("RUNWRIGHT_CONFIG"),
        "real_home": os.environ.get("RUNWRIGHT_TEST_REAL_HOME"),
        "override": os.environ.get("RUNWRIGHT__ENGINE__EXECUTOR"),
        "executor": get_config().get_nested("engine.executor"),
        "config_file": str(config_file),
    }
    config_file.write_text('[engine]\\nexecutor = "threads"\\n')
    before["executor_in_test"] = reload_config().get_nested("engine.executor")
    pathlib.Path(os.environ["REPORT"]).write_text(json.dumps(before))


def test_after_config_file(config_file):
    pass


def test_config_file_is_gone_afterwards():
    assert get_config().get_nested("engine.executor") != "threads"
'''


def run_suite(tmp_path: Path, ini: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str], dict[str, str]]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "tox.ini").write_text(f"[pytest]\n{ini}\n")
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_isolation.py").write_text(textwrap.dedent(TESTS))
    real_home = tmp_path / "real-home"
    (real_home / ".runwright").mkdir(parents=True)
    (real_home / ".runwright" / "config.toml").write_text('[engine]\nexecutor = "from-the-real-home"\n')
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    env.update(HOME=str(real_home), REPORT=str(report), RUNWRIGHT__ENGINE__EXECUTOR="from-the-shell")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(report.read_text()), json.loads(report.with_suffix(".import.json").read_text())


def test_isolated_runs_get_a_temporary_home_and_an_empty_config_before_any_conftest(tmp_path: Path) -> None:
    _done, seen, at_import = run_suite(tmp_path, "runwright_isolated = true")
    real_home = str(tmp_path / "real-home")
    assert at_import["home"] != real_home and Path(at_import["home"]).name.startswith("runwright-test-home-")
    assert at_import["config"] == str(Path(at_import["home"]) / "config.toml")
    assert seen["home"] == at_import["home"]
    assert seen["real_home"] == real_home
    assert seen["override"] is None  # the shell's RUNWRIGHT__ overrides are dropped
    assert seen["executor"] == "local"  # the packaged default, not the shell's or the real home's
    assert seen["config"] == seen["config_file"] and seen["executor_in_test"] == "threads"
    assert not Path(at_import["home"]).exists()  # removed when the run ended


def test_without_the_option_the_home_is_left_alone(tmp_path: Path) -> None:
    _done, seen, at_import = run_suite(tmp_path, "")
    assert at_import["home"] == seen["home"] == str(tmp_path / "real-home")
    assert seen["override"] == "from-the-shell" and seen["executor"] == "from-the-shell"


@pytest.mark.parametrize("name", ["HOME", "RUNWRIGHT_CONFIG"])
def test_this_suite_runs_isolated(name: str) -> None:
    """tox.ini sets ``runwright_isolated = true`` for every dist's tests."""
    assert os.environ["HOME"] != os.environ["RUNWRIGHT_TEST_REAL_HOME"]
    assert "runwright-test-home-" in os.environ[name]
