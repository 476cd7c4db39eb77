"""The client without the server: a user who talks to a remote runwright server installs
runwright-cloud alone, and neither needs nor loads FastAPI, SQLAlchemy or Alembic.

"Installed without runwright-server" is simulated faithfully: a throwaway venv whose
site-packages links every entry of this venv's except the files of runwright-server and its
server stack, so that neither ``import runwright_server`` nor its ``runwright`` entry point
exists there, while everything else (the core, runwright-cloud, requests) is the code under
test. The server the client talks to runs in its own process, from this venv.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwright_server.testing import TestServer, free_port

ROOT = Path(__file__).resolve().parents[3]
ETL = str(ROOT / "examples" / "etl.py")
#: What a client of a remote server must not need: the server and its stack.
SERVER_DISTS = ("runwright-server", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic")
SERVER_MODULES = ("runwright_server", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic")


def _top_level_entries(dist_name: str) -> set[str]:
    """The names in site-packages that belong to ``dist_name`` (packages, modules, .pth,
    .dist-info), from its RECORD."""
    files = importlib.metadata.distribution(dist_name).files or []
    return {f.parts[0] for f in files if f.parts and f.parts[0] != ".."}


@pytest.fixture(scope="module")
def client_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv with this venv's packages minus runwright-server and its stack."""
    venv = tmp_path_factory.mktemp("client-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )
    source = Path(sysconfig.get_paths()["purelib"])
    excluded = set().union(*(_top_level_entries(name) for name in SERVER_DISTS))
    assert any(name.startswith("runwright_server") for name in excluded)
    for entry in source.iterdir():
        if entry.name not in excluded and entry.name != "__pycache__":
            (target / entry.name).symlink_to(entry)
    return python


def _env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT")}
    config = home / "config.toml"
    config.write_text("")
    env.update(HOME=str(home), RUNWRIGHT_CONFIG=str(config), **settings)
    return env


def _runwright(python: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "runwright.cli", *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_the_client_only_venv_has_no_server_stack(client_only_python: Path, tmp_path: Path) -> None:
    script = f"import importlib.util as u; print([m for m in {SERVER_MODULES!r} if u.find_spec(m)])"
    done = subprocess.run([str(client_only_python), "-c", script], env=_env(tmp_path), capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("args", [("server", "start"), ("server", "stop"), ("server", "token", "create", "--name", "x")])
def test_runwright_server_without_the_server_installed_names_the_package_to_install(
    client_only_python: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    done = _runwright(client_only_python, _env(tmp_path), *args)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: `runwright server` needs the runwright server, which is not installed: pip install runwright-server"
    ]


def test_a_cloud_run_needing_the_embedded_server_without_it_is_a_one_line_error(
    client_only_python: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, RUNWRIGHT__SERVER__PORT=str(free_port()))
    done = _runwright(client_only_python, env, "run", ETL, "--backend", "cloud", "--param", "n=2")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    words = " ".join((done.stdout + done.stderr).split())  # the summary table wraps long messages
    assert words.count("the embedded server is not installed: pip install runwright-server") == 1, words
    assert not (tmp_path / ".runwright" / "server.pid").exists()


def test_a_client_without_the_server_installed_runs_flows_on_a_remote_server(
    client_only_python: Path, server: TestServer, tmp_path: Path
) -> None:
    env = _env(tmp_path, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a)
    created = _runwright(client_only_python, env, "runs", "create", ETL, "--param", "n=3")
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    done = _runwright(client_only_python, env, "run", ETL, "--flow-run-id", run_id)
    assert done.returncode == 0, done.stderr
    shown = json.loads(_runwright(client_only_python, env, "runs", "show", run_id, "--json").stdout)
    assert shown["state"]["type"] == "Success"
    assert sorted(t["state"]["type"] for t in shown["task_runs"] if t["map_index"] >= 0) == ["Success"] * 3


@pytest.fixture
def client_process_script(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "client.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import json
            import sys

            import runwright_cloud
            from runwright import Flow, task
            from runwright_cloud import CloudFlowRunner

            @task
            def double(x):
                return 2 * x

            with Flow("client-process-modules") as flow:
                double.map([1, 2, 3])

            state = flow.run(runner_cls=CloudFlowRunner)
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in {SERVER_MODULES!r})
            print(json.dumps({{"successful": state.is_successful(), "server_modules": loaded}}))
            """
        )
    )
    yield path


def test_a_cloud_flow_run_never_imports_the_server_stack_in_the_client_process(
    server: TestServer, client_process_script: Path, tmp_path: Path
) -> None:
    """With runwright-server installed (this venv), a client process loads none of the server:
    only the server's plugin module, which the plugin host loads like every installed plugin's
    (its one hook adds ``runwright server``; it imports nothing but the core)."""
    env = _env(tmp_path, RUNWRIGHT__CLOUD__API=server.url, RUNWRIGHT__CLOUD__API_TOKEN=server.token_a)
    done = subprocess.run([sys.executable, str(client_process_script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["successful"] is True
    assert set(report["server_modules"]) <= {"runwright_server", "runwright_server.plugin"}


def test_the_server_extra_is_an_alias_for_runwright_server() -> None:
    requires = importlib.metadata.requires("runwright-cloud") or []
    server_extra = [r for r in requires if 'extra == "server"' in r]
    assert [r.split(";")[0].strip() for r in server_extra] == ["runwright-server"]
    assert not [r for r in requires if "extra" not in r and r.split(">")[0].split("<")[0].strip().lower() in SERVER_DISTS]
