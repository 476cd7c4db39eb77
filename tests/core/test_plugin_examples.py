"""The custom backend of docs/writing-plugins.md, run as written there."""

from __future__ import annotations

import re
import textwrap
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from runwright import Flow, task
from runwright.cli import build_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-plugins.md"


def _documented_module() -> types.ModuleType:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## A plugin object with state, and a small custom backend") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the custom backend example is gone from docs/writing-plugins.md"
    module = types.ModuleType("runwright_memory")
    exec(compile(code.group(1), str(DOC), "exec"), module.__dict__)
    return module


@pytest.fixture
def memory(plugin_manager):
    module = _documented_module()
    plugin_manager.register(module.plugin, name="memory")
    return module.plugin


@task
def hello():
    return "hi"


def test_the_documented_backend_records_the_runs_that_choose_it(memory):
    with Flow("greet") as flow:
        hello()
    assert flow.run().is_successful()
    assert memory.backend.history == []  # a local run
    assert flow.run(context={"backend": "memory"}).is_successful()
    assert memory.backend.history == [
        ("greet", "Running"),
        ("hello", "Running"),
        ("hello", "Success"),
        ("greet", "Success"),
    ]


@pytest.mark.parametrize("args", [["--backend", "memory"], ["--in-memory"]])
def test_the_documented_backend_is_a_choice_of_runwright_run_and_tells_the_user(memory, tmp_path, args):
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(
        textwrap.dedent(
            """
            from runwright import Flow, task

            @task
            def hello():
                return "hi"

            with Flow("greet") as flow:
                hello()
            """
        )
    )
    cli = build_cli()
    assert "memory" in CliRunner().invoke(cli, ["run", "--help"]).output
    result = CliRunner().invoke(cli, ["run", str(flow_file), *args])
    assert result.exit_code == 0, result.output
    assert "4 states recorded in memory" in result.stderr
    assert len(memory.backend.history) == 4
