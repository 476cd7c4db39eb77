"""``[cloud]`` and ``[server]`` are registered tables (issue 13 item 13)."""

import os
import subprocess
import sys

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]


def runwright_config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(path)}
    return subprocess.run([*RUNWRIGHT, "config"], capture_output=True, text=True, env=env, timeout=120)


def test_a_typo_in_cloud_names_the_key_and_the_known_ones(tmp_path):
    result = runwright_config(tmp_path, '[cloud]\napi_tokn = "x"\n')
    assert result.returncode != 0
    assert "Unknown key 'api_tokn' in [cloud] (did you mean 'api_token'?); known keys: api, api_token, auto_start" in result.stderr


def test_a_typo_in_server_names_the_key_and_the_known_ones(tmp_path):
    result = runwright_config(tmp_path, "[server]\nprot = 4300\n")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: Unknown key 'prot' in [server] (did you mean 'port'?); known keys: ")
    known = line.split("known keys: ", 1)[1].split(", ")
    assert known == sorted(known) and {"db", "host", "port", "max_body_bytes"} <= set(known)


def test_runwright_config_lists_the_cloud_and_server_defaults(tmp_path):
    result = runwright_config(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert '[cloud]\napi = ""\napi_token = ""\nresult_handler = "cloud"\n' in result.stdout
    assert "\n[server]\nport = 4200\n" in result.stdout and 'host = "127.0.0.1"' in result.stdout


def test_a_batch_size_over_the_servers_limit_is_refused_before_anything_runs(tmp_path):
    """The server takes at most 10,000 writes a request: a larger [cloud] batch_size would
    have every batch refused, so the run stops at once with one line naming the limit."""
    flow_file = tmp_path / "flow.py"
    marker = tmp_path / "ran"
    flow_file.write_text(
        "from runwright import Flow, task\n"
        "@task\n"
        f"def touch():\n    open({str(marker)!r}, 'w').close()\n"
        "with Flow('f') as flow:\n    touch()\n"
    )
    path = tmp_path / "config.toml"
    path.write_text('[cloud]\nbatch_size = 20000\napi = "http://127.0.0.1:9"\napi_token = "x"\n')
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(path), "HOME": str(tmp_path)}
    result = subprocess.run(
        [*RUNWRIGHT, "run", str(flow_file), "--backend", "cloud"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode != 0
    assert "Invalid [cloud] batch_size 20000: a runwright server takes at most 10,000" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
