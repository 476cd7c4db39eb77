"""``[plugins.cache]`` is a registered table (issue 13 item 13)."""

import os
import subprocess
import sys

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]


def runwright_config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(path)}
    return subprocess.run([*RUNWRIGHT, "config"], capture_output=True, text=True, env=env, timeout=120)


def test_a_typo_in_plugins_cache_names_the_key_and_the_known_ones(tmp_path):
    result = runwright_config(tmp_path, "[plugins.cache]\nbusy_timout = 5\n")
    assert result.returncode != 0
    assert "Unknown key 'busy_timout' in [plugins.cache] (did you mean 'busy_timeout'?); known keys: busy_timeout, max_entries_per_task, path" in result.stderr


def test_runwright_config_lists_the_cache_defaults(tmp_path):
    result = runwright_config(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert '[plugins.cache]\npath = "~/.runwright/cache.db"\nbusy_timeout = 30.0\nmax_entries_per_task = 10\n' in result.stdout
