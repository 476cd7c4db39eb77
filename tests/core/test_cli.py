"""The runwright command line, run as a user would run it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runwright import hookimpl
from runwright.cli import build_cli

RUNWRIGHT = [sys.executable, "-m", "runwright.cli.__main__"]


def run_cli(*args, cwd=None):
    return subprocess.run([*RUNWRIGHT, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "flow.py"
    path.write_text(
        textwrap.dedent(
            """
            from runwright import Flow, Parameter, task

            @task
            def double(x):
                return 2 * x

            @task
            def fail_if(x, limit):
                if x > limit:
                    raise ValueError(f"{x} is over {limit}")
                return x

            with Flow("cli-flow") as flow:
                limit = Parameter("limit", default=100)
                fail_if(double(Parameter("n")), limit)

            if __name__ == "__main__":
                raise SystemExit("the CLI must not run the script's main block")
            """
        )
    )
    return path


def test_run_prints_a_summary_and_exits_zero(flow_file):
    result = run_cli("run", str(flow_file), "--param", "n=4")
    assert result.returncode == 0, result.stderr
    assert "cli-flow" in result.stdout and "double-1" in result.stdout and "Success" in result.stdout


def test_run_exits_non_zero_when_the_flow_fails(flow_file):
    result = run_cli("run", str(flow_file), "--param", "n=80", "--param", "limit=10")
    assert result.returncode == 1
    assert "Failed" in result.stdout


def test_run_json_output(flow_file):
    result = run_cli("run", str(flow_file), "--param", "n=2", "--json", "--executor", "threads")
    data = json.loads(result.stdout)
    assert data["state"] == "Success" and {t["slug"] for t in data["tasks"]} >= {"double-1", "n", "limit"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "missing.py"], "No such flow file: missing.py"),
        (["run", "{flow}", "--param", "x=1", "--param", "n=1"], "has no parameter 'x'"),
        (["run", "{flow}"], "Missing required parameter(s): n"),
        (["run", "{flow}", "--param", "n"], "--param expects KEY=VALUE"),
        (["run", "{flow}", "--param", "n=1", "--executor", "warp"], "Executor 'warp' is not installed"),
        (["run", "{flow}", "--param", "n=1", "--flow", "other"], "has no flow named 'other'"),
        (["run", "{flow}", "--param", "n=1", "--backend", "mars"], "Backend 'mars' is not installed"),
    ],
)
def test_user_mistakes_get_one_line_errors(flow_file, args, message):
    result = run_cli(*[a.format(flow=flow_file) for a in args])
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_files_without_flows_or_with_errors_are_explained(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    raising = tmp_path / "raising.py"
    raising.write_text("import does_not_exist\n")
    assert "defines no Flow" in run_cli("run", str(empty)).stderr
    assert "not valid Python" in run_cli("run", str(broken)).stderr
    result = run_cli("run", str(raising))
    assert "ModuleNotFoundError" in result.stderr and "Traceback" not in result.stderr


def test_plugins_lists_builtins_with_hooks():
    result = run_cli("plugins", "--json")
    infos = {info["name"]: info for info in json.loads(result.stdout)}
    assert "runwright_register_executors" in infos["runwright.executors"]["hooks"]
    assert infos["runwright.executors"]["builtin"] is True


def test_config_shows_environment_overrides():
    env = dict(os.environ, RUNWRIGHT__ENGINE__EXECUTOR="threads")
    out = subprocess.run([*RUNWRIGHT, "config", "--json"], env=env, capture_output=True, text=True).stdout
    assert json.loads(out)["engine"]["executor"] == "threads"


def test_invalid_config_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine\n")
    env = dict(os.environ, RUNWRIGHT_CONFIG=str(bad))
    result = subprocess.run([*RUNWRIGHT, "config"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "Invalid TOML" in result.stderr and "Traceback" not in result.stderr


def test_plugins_can_add_commands(plugin_manager):
    class Extra:
        @hookimpl
        def runwright_register_commands(self, cli):
            @click.command("hello")
            def hello():
                click.echo("hello from a plugin")

            cli.add_command(hello)

    plugin_manager.register(Extra(), name="extra")
    result = CliRunner().invoke(build_cli(), ["hello"])
    assert result.output == "hello from a plugin\n"


def test_the_example_flow_runs(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "etl.py"
    result = run_cli("run", str(example), "--param", "n=3", "--backend", "local")
    assert result.returncode == 0, result.stderr
    assert "total 14" in result.stdout


def test_progress_counts_each_task_once_and_shows_mapped_parents(tmp_path):
    path = tmp_path / "progress_flow.py"
    path.write_text(
        textwrap.dedent(
            """
            import datetime
            from runwright import Flow, task

            @task
            def numbers():
                return [1, 2, 3]

            @task(cache_for=datetime.timedelta(hours=1))
            def square(x):
                return x * x

            @task
            def total(xs):
                return sum(xs)

            with Flow("progress") as flow:
                total(square.map(numbers()))
            """
        )
    )
    proc = run_cli("run", str(path))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/3", "[2/3", "[3/3"], lines
    assert any(line.endswith("square: Mapped (3 children)") for line in lines), lines


@pytest.mark.parametrize("hook_name", ["runwright_register_commands", "runwright_add_options"])
def test_a_plugin_raising_in_a_cli_hook_is_named_and_the_cli_keeps_working(plugin_manager, capsys, flow_file, hook_name):
    def broken(command_name=None, add_option=None, cli=None):
        raise RuntimeError("broken on purpose")

    class Broken:
        pass

    setattr(Broken, hook_name, hookimpl(specname=hook_name)(lambda self, **kwargs: broken(**kwargs)))
    plugin_manager.register(Broken(), name="broken-plugin")
    cli = build_cli()
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "broken-plugin" in warning and "broken on purpose" in warning
    assert {"run", "plugins", "config"} <= set(cli.commands)
    listing = CliRunner().invoke(cli, ["plugins"])
    assert listing.exit_code == 0 and "broken-plugin" in listing.output
    ran = CliRunner().invoke(cli, ["run", str(flow_file), "--param", "n=1"])
    assert ran.exit_code == 0, ran.output


def test_a_plugin_option_that_clashes_with_an_existing_one_is_a_warning_naming_the_plugin(plugin_manager, capsys):
    class Clash:
        @hookimpl
        def runwright_add_options(self, command_name, add_option):
            add_option("--backend", apply=lambda request, value: None)

    plugin_manager.register(Clash(), name="clashing")
    cli = build_cli()
    warning = capsys.readouterr().err
    assert "clashing" in warning and "already has the option --backend" in warning
    assert CliRunner().invoke(cli, ["run", "--help"]).exit_code == 0


def test_a_plugin_option_changes_the_run_through_the_request(plugin_manager, flow_file):
    seen = []

    class Tagging:
        @hookimpl
        def runwright_add_options(self, command_name, add_option):
            if command_name == "run":
                add_option("--tag", default=None, help="A tag.", apply=lambda request, value: request.context.update(tag=value))

        @hookimpl
        def runwright_flow_run_initialize(self, setup):
            seen.append(setup.context.get("tag"))

    plugin_manager.register(Tagging(), name="tagging")
    cli = build_cli()
    assert "--tag" in CliRunner().invoke(cli, ["run", "--help"]).output
    assert CliRunner().invoke(cli, ["run", str(flow_file), "--param", "n=1", "--tag", "nightly"]).exit_code == 0
    assert CliRunner().invoke(cli, ["run", str(flow_file), "--param", "n=1"]).exit_code == 0
    assert seen == ["nightly", None]  # not given: apply is not called


def test_backend_choices_come_from_the_installed_backends(plugin_manager):
    from runwright.backends import Backend

    class Memory(Backend):
        name = "memory"

    class MemoryPlugin:
        @hookimpl
        def runwright_register_backends(self, register):
            register(Memory())

    plugin_manager.register(MemoryPlugin(), name="memory-plugin")
    help_text = CliRunner().invoke(build_cli(), ["run", "--help"]).output
    names = sorted(plugin_manager.registry.backends)
    assert "memory" in names and "local" in names
    assert "[" + "|".join(names) + "]" in help_text


@pytest.mark.parametrize("how", ["option", "config"])
def test_an_unknown_backend_is_a_one_line_error_listing_the_installed_ones(flow_file, how):
    env = dict(os.environ, RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD="1")
    args = ["run", str(flow_file), "--param", "n=1"]
    if how == "option":
        args += ["--backend", "nope"]
    else:
        env["RUNWRIGHT__ENGINE__BACKEND"] = "nope"
    result = subprocess.run([*RUNWRIGHT, *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: Backend 'nope' is not installed (installed: local). Install the plugin that provides it "
        "(by convention: pip install runwright-nope); `runwright plugins` lists the loaded plugins"
    ]


def test_the_cloud_options_are_absent_without_the_cloud_plugin():
    env = dict(os.environ, RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD="1")
    result = subprocess.run([*RUNWRIGHT, "run", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "--backend [local]" in result.stdout
    assert "--flow-run-id" not in result.stdout
