"""What a new user sees from the CLI (issue 13 items 8 and 14): checkpointing with no
default result handler, long messages in the summary, flow files that fail to load."""

import json
import os
import subprocess
import sys
import textwrap

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]


def run_cli(tmp_path, *args, config=""):
    (tmp_path / "config.toml").write_text(config)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(tmp_path / "config.toml"), "COLUMNS": "200"}
    return subprocess.run([*RUNWRIGHT, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


ONE_TASK = "from runwright import Flow, task\n\n@task\ndef one():\n    return 1\n\nwith Flow('f') as flow:\n    one()\n"


def test_checkpointing_without_the_default_result_handler_is_one_clear_error_before_anything_runs(tmp_path):
    (tmp_path / "flow.py").write_text(ONE_TASK)
    config = '[plugins]\ndisable = ["local"]\n[engine]\ncheckpointing = true\n'
    result = run_cli(tmp_path, "run", "flow.py", config=config)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: [engine] checkpointing = true stores every task's result with [engine] result_handler 'local', "
        f"which is not installed (installed: {result.stderr.split('installed: ')[1].split(')')[0]}). Install it "
        "(pip install runwright-local), or set [engine] result_handler to an installed one, or turn checkpointing off"
    ]
    assert "Beginning Flow run" not in result.stderr


def test_checkpointing_with_the_core_json_handler_works(tmp_path):
    (tmp_path / "flow.py").write_text(ONE_TASK)
    config = '[plugins]\ndisable = ["local"]\n[engine]\ncheckpointing = true\nresult_handler = "json"\n'
    result = run_cli(tmp_path, "run", "flow.py", "--json", config=config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"][0]["state"] == "Success"


LONG = textwrap.dedent(
    """
    from runwright import Flow, task

    @task
    def boom():
        raise ValueError("x" * 300 + " END")

    with Flow("long") as flow:
        boom()
    """
)


def test_the_summary_cuts_a_long_message_with_an_ellipsis_and_json_keeps_it_whole(tmp_path):
    (tmp_path / "flow.py").write_text(LONG)
    table = run_cli(tmp_path, "run", "flow.py")
    assert table.returncode == 1
    assert "\u2026" in table.stdout and " END" not in table.stdout
    as_json = run_cli(tmp_path, "run", "flow.py", "--json")
    message = json.loads(as_json.stdout)["tasks"][0]["message"]
    assert "x" * 300 + " END" in message


def test_a_syntax_error_names_the_file_the_line_and_the_offending_text(tmp_path):
    (tmp_path / "flow.py").write_text("from runwright import Flow\n\nwith Flow('f') as flow\n    pass\n")
    result = run_cli(tmp_path, "run", "flow.py")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "flow.py is not valid Python" in result.stderr
    assert "(line 3): with Flow('f') as flow" in result.stderr


def test_an_exception_at_import_names_the_file_the_line_and_the_offending_text(tmp_path):
    (tmp_path / "flow.py").write_text("from runwright import Flow\n\nsettings = {}\nlimit = settings['limit']\n")
    result = run_cli(tmp_path, "run", "flow.py")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Loading flow.py failed, line 4: limit = settings['limit']: KeyError: 'limit'" in result.stderr


def test_an_exception_raised_in_a_module_the_flow_imports_names_the_flow_file_line(tmp_path):
    (tmp_path / "helper.py").write_text("def load():\n    raise RuntimeError('no data')\n")
    (tmp_path / "flow.py").write_text("import helper\n\nDATA = helper.load()\n")
    result = run_cli(tmp_path, "run", "flow.py")
    assert "Loading flow.py failed, line 3: DATA = helper.load(): RuntimeError: no data" in result.stderr
