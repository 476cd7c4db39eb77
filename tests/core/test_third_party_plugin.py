"""The plugin from docs/writing-plugins.md, really pip-installed, takes effect."""

import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture
def installed_plugin(tmp_path):
    source = tmp_path / "runwright-shout"
    source.mkdir()
    (source / "runwright_shout.py").write_text(
        textwrap.dedent(
            '''
            """Print every task state change."""

            from runwright import hookimpl


            @hookimpl
            def runwright_task_state_change(task, old_state, new_state):
                print(f"{task.name}: {type(old_state).__name__} -> {type(new_state).__name__}")
            '''
        )
    )
    (source / "setup.py").write_text(
        textwrap.dedent(
            """
            from setuptools import setup

            setup(
                name="runwright-shout",
                version="0.1",
                py_modules=["runwright_shout"],
                install_requires=["runwright>=0.1"],
                entry_points={"runwright": ["shout = runwright_shout"]},
            )
            """
        )
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # without build isolation when the venv can build wheels itself (fast, offline), else isolated
    offline = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(source)], timeout=180)
    if offline.returncode != 0:
        subprocess.run([*pip, "install", "--no-deps", str(source)], check=True, timeout=300)
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "runwright-shout"], check=True, timeout=180)


def test_an_installed_plugin_is_listed_and_fires(installed_plugin, tmp_path):
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(
        "from runwright import Flow, task\n"
        "@task\ndef hello():\n    return 'hi'\n"
        "with Flow('shouting') as flow:\n    hello()\n"
    )
    cli = [sys.executable, "-m", "runwright.cli"]
    listing = subprocess.run([*cli, "plugins"], capture_output=True, text=True, check=True).stdout
    assert "shout 0.1 (runwright-shout)" in listing and "runwright_task_state_change" in listing
    out = subprocess.run([*cli, "run", str(flow_file)], capture_output=True, text=True, check=True).stdout
    assert "hello: Pending -> Running" in out and "hello: Running -> Success" in out
    env = dict(os.environ, RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD="1")
    quiet = subprocess.run([*cli, "run", str(flow_file)], capture_output=True, text=True, env=env, check=True).stdout
    assert "Pending -> Running" not in quiet
