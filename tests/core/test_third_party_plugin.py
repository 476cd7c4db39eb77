"""The plugin from docs/writing-plugins.md, really pip-installed, takes effect.

It is installed into a throwaway venv, never into the venv running the tests: the venv sees
this venv's packages (the core from the repo, pip, setuptools) through a ``.pth`` file that
adds this venv's site-packages as a site directory, and its own site-packages holds only the
plugin. The checks run with that venv's python.
"""

import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest


def throwaway_venv(path):
    """A venv at ``path`` that sees this venv's packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    (path / purelib / "zz-parent-venv.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The python of a throwaway venv with the plugin installed (shared by this module)."""
    tmp_path = tmp_path_factory.mktemp("third-party")
    venv_python = throwaway_venv(tmp_path / "venv")
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
    pip = [str(venv_python), "-m", "pip", "--disable-pip-version-check", "-q"]
    # without build isolation when the venv can build wheels itself (fast, offline), else isolated
    offline = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(source)], timeout=180)
    if offline.returncode != 0:
        subprocess.run([*pip, "install", "--no-deps", str(source)], check=True, timeout=300)
    return venv_python


def test_the_plugin_is_installed_in_the_throwaway_venv_only(installed_plugin):
    where = "import importlib.metadata as m; print(m.distribution('runwright-shout').locate_file(''))"
    done = subprocess.run([str(installed_plugin), "-c", where], capture_output=True, text=True, check=True)
    assert done.stdout.strip().startswith(str(installed_plugin.parent.parent))
    missing = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True)
    assert missing.returncode != 0 and "PackageNotFoundError" in missing.stderr


def test_an_installed_plugin_is_listed_and_fires(installed_plugin, tmp_path):
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(
        "from runwright import Flow, task\n"
        "@task\ndef hello():\n    return 'hi'\n"
        "with Flow('shouting') as flow:\n    hello()\n"
    )
    cli = [str(installed_plugin), "-m", "runwright.cli"]
    listing = subprocess.run([*cli, "plugins"], capture_output=True, text=True, check=True).stdout
    assert "shout 0.1 (runwright-shout)" in listing and "runwright_task_state_change" in listing
    out = subprocess.run([*cli, "run", str(flow_file)], capture_output=True, text=True, check=True).stdout
    assert "hello: Pending -> Running" in out and "hello: Running -> Success" in out
    env = dict(os.environ, RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD="1")
    quiet = subprocess.run([*cli, "run", str(flow_file)], capture_output=True, text=True, env=env, check=True).stdout
    assert "Pending -> Running" not in quiet
