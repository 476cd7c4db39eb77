"""A result the cache could not keep is never reported Cached (issue 13 item 8): the task
ends Success with a message saying why, through the CLI, in a new process each run."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]

FLOW = textwrap.dedent(
    """
    from datetime import timedelta
    from pathlib import Path

    from runwright import Flow, task

    @task(cache_for=timedelta(hours=1), cache_validator="all_inputs")
    def expensive(x):
        marker = Path(__file__).with_name("runs.txt")
        marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
        return x * 2

    with Flow("cached") as flow:
        expensive(21)
    """
)


def run(tmp_path, config):
    (tmp_path / "config.toml").write_text(config)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(tmp_path / "config.toml")}
    result = subprocess.run([*RUNWRIGHT, "run", str(tmp_path / "flow.py"), "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return next(row for row in json.loads(result.stdout)["tasks"] if row["task"] == "expensive"), result.stderr


@pytest.fixture
def flow_dir(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    return tmp_path


def test_without_the_default_result_handler_the_task_runs_and_says_it_was_not_cached(flow_dir):
    config = f'[plugins]\ndisable = ["local"]\n[plugins.cache]\npath = "{flow_dir / "cache.db"}"\n'
    for attempt in (1, 2):
        row, stderr = run(flow_dir, config)
        assert row["state"] == "Success", row
        assert "its result was not cached" in row["message"] and "'local'" in row["message"]
        assert (flow_dir / "runs.txt").read_text() == "x" * attempt
        assert "its result was not cached" in stderr


def test_a_cache_store_that_cannot_be_written_is_not_reported_cached(flow_dir):
    (flow_dir / "not-a-dir").write_text("")
    config = f'[plugins.local]\ndir = "{flow_dir / "results"}"\n[plugins.cache]\npath = "{flow_dir / "not-a-dir" / "cache.db"}"\n'
    row, _ = run(flow_dir, config)
    assert row["state"] == "Success", row
    assert "its result was not cached" in row["message"]


def test_with_the_default_result_handler_the_second_run_is_cached(flow_dir):
    config = f'[plugins.local]\ndir = "{flow_dir / "results"}"\n[plugins.cache]\npath = "{flow_dir / "cache.db"}"\n'
    first, _ = run(flow_dir, config)
    second, _ = run(flow_dir, config)
    assert (first["state"], second["state"]) == ("Cached", "Cached")
    assert (flow_dir / "runs.txt").read_text() == "x"
