"""``[plugins.local]`` is a registered table: a typo is an error naming the key, and
``runwright config`` shows its defaults (issue 13 item 13)."""

import os
import subprocess
import sys

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]


def runwright_config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(path)}
    return subprocess.run([*RUNWRIGHT, "config"], capture_output=True, text=True, env=env, timeout=120)


def test_a_typo_in_plugins_local_names_the_key_and_the_known_ones(tmp_path):
    result = runwright_config(tmp_path, '[plugins.local]\ndirr = "/tmp/x"\n')
    assert result.returncode != 0
    assert result.stderr.strip() == "Error: Unknown key 'dirr' in [plugins.local] (did you mean 'dir'?); known keys: dir, prefix"


def test_runwright_config_lists_the_local_defaults(tmp_path):
    result = runwright_config(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert '[plugins.local]\ndir = "~/.runwright/results"\nprefix = ""\n' in result.stdout
