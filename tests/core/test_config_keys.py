"""Unknown configuration keys are errors naming the key and the known ones, through the CLI;
``runwright config`` shows the registered defaults of every table (issue 13 item 13)."""

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from runwright import hookimpl
from runwright.cli import build_cli
from runwright.config import reload_config
from runwright.plugins import build_plugin_manager, use_plugin_manager

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]


def run_with_config(tmp_path, text, *args):
    path = tmp_path / "config.toml"
    path.write_text(text)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(path)}
    return subprocess.run([*RUNWRIGHT, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "flow.py"
    path.write_text("from runwright import Flow, task\n\n@task\ndef one():\n    return 1\n\nwith Flow('f') as flow:\n    one()\n")
    return path


@pytest.mark.parametrize(
    ("text", "key", "table", "known"),
    [
        ('[engine]\nexecutr = "local"\n', "'executr'", "[engine]", "executor"),
        ('[logging]\nlevl = "DEBUG"\n', "'levl'", "[logging]", "level, format"),
        ("[tasks.defaults]\nmax_retrys = 2\n", "'max_retrys'", "[tasks.defaults]", "max_retries"),
        ("[plugins]\ndisabled = []\n", "'disabled'", "[plugins]", "disable"),
        ("debugg = true\n", "'debugg'", "the top level", "debug"),
    ],
)
def test_a_typo_in_a_core_table_is_a_one_line_error_naming_the_key_and_the_known_ones(tmp_path, flow_file, text, key, table, known):
    for command in (["run", str(flow_file)], ["config"]):
        result = run_with_config(tmp_path, text, *command)
        assert result.returncode != 0
        error = result.stderr.strip()
        assert len(error.splitlines()) == 1 and "Traceback" not in error, error
        assert f"Unknown key {key} in {table}" in error and "known keys:" in error
        for name in known.split(", "):
            assert name in error


def test_an_unknown_key_from_the_environment_is_an_error_too(tmp_path, flow_file):
    path = tmp_path / "empty.toml"
    path.write_text("")
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(path), "RUNWRIGHT__ENGINE__BAKEND": "local"}
    result = subprocess.run([*RUNWRIGHT, "run", str(flow_file)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "Unknown key 'bakend' in [engine] (did you mean 'backend'?)" in result.stderr


def test_a_table_of_a_plugin_that_is_not_installed_is_a_warning_and_the_run_goes_on(tmp_path, flow_file):
    result = run_with_config(tmp_path, '[plugins.notinstalled]\nzone = "eu"\n', "run", str(flow_file))
    assert result.returncode == 0, result.stderr
    assert "[plugins.notinstalled] is read by no installed plugin, so it is ignored" in result.stderr
    assert "Success" in result.stdout


def test_the_context_table_takes_any_key(tmp_path, flow_file):
    result = run_with_config(tmp_path, '[context]\nanything = "goes"\n', "run", str(flow_file))
    assert result.returncode == 0, result.stderr


class TablePlugin:
    """A third-party plugin reading ``[plugins.sample]``."""

    @hookimpl
    def runwright_register_config(self, register: Callable[..., None]) -> None:
        register("plugins.sample", {"zone": "eu", "retries": 3})


def run_in_process(tmp_path, monkeypatch, text, *args):
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("RUNWRIGHT_CONFIG", str(path))
    reload_config()
    pm = build_plugin_manager(autoload=False)
    pm.register(TablePlugin(), name="sample")
    try:
        with use_plugin_manager(pm):
            return CliRunner().invoke(build_cli(), list(args))
    finally:
        monkeypatch.delenv("RUNWRIGHT_CONFIG")
        reload_config()


def test_runwright_config_shows_the_defaults_a_plugin_registers(tmp_path, monkeypatch):
    result = run_in_process(tmp_path, monkeypatch, "", "config")
    assert result.exit_code == 0, result.output
    assert '[plugins.sample]\nzone = "eu"\nretries = 3\n' in result.output
    assert '[engine]\nexecutor = "local"' in result.output


def test_runwright_config_shows_a_set_value_over_the_plugin_default(tmp_path, monkeypatch):
    result = run_in_process(tmp_path, monkeypatch, '[plugins.sample]\nzone = "us"\n', "config")
    assert result.exit_code == 0, result.output
    assert '[plugins.sample]\nzone = "us"\nretries = 3\n' in result.output


def test_a_typo_in_a_plugin_table_names_the_key_and_the_plugin_keys(tmp_path, monkeypatch):
    result = run_in_process(tmp_path, monkeypatch, '[plugins.sample]\nzon = "us"\n', "config")
    assert result.exit_code != 0
    assert "Unknown key 'zon' in [plugins.sample] (did you mean 'zone'?); known keys: retries, zone" in result.output


def test_a_misspelt_plugin_table_is_an_error_not_a_warning(tmp_path, monkeypatch):
    result = run_in_process(tmp_path, monkeypatch, '[plugins.sampel]\nzone = "us"\n', "config")
    assert result.exit_code != 0
    assert "Unknown table [plugins.sampel] in [plugins]; did you mean [plugins.sample]?" in result.output


def test_flow_run_with_an_unknown_key_fails_before_any_task_runs():
    from runwright import Flow, task
    from runwright.config import temporary_config

    ran = []

    @task
    def one():
        ran.append(1)

    with Flow("typo") as flow:
        one()
    with temporary_config({"engine.chekpointing": True}):
        state = flow.run()
    assert state.is_failed() and ran == []
    assert "Unknown key 'chekpointing' in [engine] (did you mean 'checkpointing'?)" in state.message
