"""Result keys cannot escape their storage root, end to end through ``runwright run``.

Unit-level checks of the prefix rule live with the handlers:
plugins/runwright-local/tests/test_local_handler.py::test_a_prefix_that_could_escape_dir_is_rejected
and plugins/runwright-gcs/tests/test_gcs_handler.py (the same rule for GCS prefixes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Processes, json_summary, no_traceback

FLOW = '''
from runwright import Flow, Parameter, task


@task(name="../../escaped", checkpoint=True)
def evil(name):
    return "value of " + name


with Flow("keys") as flow:
    evil(Parameter("name", default="../../../etc/passwd"))
'''


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


def _setup(processes: Processes, tmp_path: Path, prefix: str) -> tuple[Path, Path, dict[str, str]]:
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(FLOW)
    root = tmp_path / "store" / "results"
    env = processes.env(
        RUNWRIGHT__ENGINE__CHECKPOINTING="true",
        RUNWRIGHT__ENGINE__RESULT_HANDLER="local",
        RUNWRIGHT__PLUGINS__LOCAL__DIR=str(root),
        RUNWRIGHT__PLUGINS__LOCAL__PREFIX=prefix,
    )
    return flow_file, root, env


def test_task_names_and_parameters_never_become_paths(processes: Processes, tmp_path: Path) -> None:
    flow_file, root, env = _setup(processes, tmp_path, "team/etl")
    before = _files_under(tmp_path) - _files_under(root)
    done = processes.run(["run", str(flow_file), "--param", "name=../../../../tmp/x", "--json"], env)
    assert done.returncode == 0, done.stderr
    written = _files_under(root)
    assert len(written) == 1
    (only,) = written
    assert only.parent == root / "team" / "etl" and only.suffix == ".rwr"
    # nothing appeared anywhere else under the test's directory (HOME included)
    assert _files_under(tmp_path) - written - before <= {tmp_path / "home" / "config.toml"}


@pytest.mark.parametrize("prefix", ["../escape", "a/../../b", "/abs/path", ".hidden", "a\\\\b"])
def test_a_prefix_that_would_escape_the_root_is_a_one_line_error(processes: Processes, tmp_path: Path, prefix: str) -> None:
    flow_file, root, env = _setup(processes, tmp_path, prefix)
    done = processes.run(["run", str(flow_file), "--json"], env)
    no_traceback(done.stderr)
    assert done.returncode == 1, (done.stdout, done.stderr)
    summary = json_summary(done.stdout)
    assert summary["state"] == "Failed"
    messages = " ".join(str(t.get("message")) for t in summary["tasks"])
    assert "Invalid result prefix" in messages, summary
    assert not root.parent.exists() or _files_under(root.parent) == set()
    assert not (tmp_path / "escape").exists() and not (tmp_path / "store" / "escape").exists()
