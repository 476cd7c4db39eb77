"""Build every distribution as a wheel, check its metadata, and smoke-test non-editable
installs: the core alone, then the core plus each plugin, each in a throwaway venv.

What a user of a package index gets is what is checked:

* each wheel builds with no setuptools warning, and its METADATA has ``License:
  Apache-2.0`` and a ``License-File``, an author, classifiers, the hook-API pin
  ``runwright<0.2,>=0.1`` (plugins), and a long description with no repository-relative
  link and no development command;
* each venv gets the wheels it needs with ``--no-deps`` (the runwright wheels a selected
  wheel requires come along, so a missing ``Requires-Dist`` fails here), and their other
  declared dependencies from the index (pip's cache is reused);
* in each venv, ``runwright plugins``, ``runwright config`` and a small flow run, and what
  each plugin adds (checkpointing, a cached re-run, ...) is checked as the user sees it.

Usage: ``.venv/bin/python .ci/smoke_wheels.py [--keep]`` (``.ci/test`` runs it; about a
minute with a warm pip cache).
"""

from __future__ import annotations

import argparse
import email
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: distribution -> its source directory (the core is built from the top-level setup.py)
DISTS = {
    "runwright": ROOT,
    "runwright-local": ROOT / "plugins/runwright-local",
    "runwright-gcs": ROOT / "plugins/runwright-gcs",
    "runwright-cache": ROOT / "plugins/runwright-cache",
    "runwright-cloud": ROOT / "plugins/runwright-cloud",
    "runwright-server": ROOT / "plugins/runwright-server",
    "runwright-dask": ROOT / "plugins/runwright-dask",
}
#: what the core's sdist is made of (anything else at the top level is development only)
CORE_SOURCES = ("setup.py", "MANIFEST.in", "LICENSE", "README.md", "core", "docs")
SKIP = ("build", "dist", "__pycache__", ".pytest_cache", "tests")
#: words of setuptools output that are not warnings about the package
BENIGN = ("byte-compiling is disabled",)
#: development commands and repository paths that must not reach an index page
DEV_ONLY = re.compile(r"pip install -e|\.ci/|\bbash \.|pytest plugins/|\.venv/")
RELATIVE_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)]+)\)")


def sh(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def fail(message: str) -> None:
    raise SystemExit(f"smoke-wheels: {message}")


# -- building and metadata -------------------------------------------------------------------
def copy_sources(name: str, source: Path, into: Path) -> Path:
    """A clean copy of a dist's sources (no stale build/ or egg-info of the work tree)."""
    target = into / name
    target.mkdir(parents=True)
    entries = CORE_SOURCES if name == "runwright" else sorted(p.name for p in source.iterdir())
    for entry in entries:
        path = source / entry
        if path.name in SKIP or path.name.endswith(".egg-info"):
            continue
        if path.is_dir():
            shutil.copytree(path, target / entry, ignore=shutil.ignore_patterns(*SKIP, "*.egg-info", "*.pyc"))
        else:
            shutil.copy2(path, target / entry)
    return target


def build_wheel(name: str, source: Path, wheels: Path) -> Path:
    result = sh(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", wheels, source)
    if result.returncode != 0:
        fail(f"building {name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    warnings = [
        line.strip()
        for line in (result.stdout + result.stderr).splitlines()
        if re.search(r"warning", line, re.IGNORECASE) and not any(b in line for b in BENIGN)
    ]
    if warnings:
        fail(f"building {name} gave warnings:\n" + "\n".join(warnings))
    (wheel,) = wheels.glob(f"{name.replace('-', '_')}-*.whl")
    return wheel


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (path,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_string(zf.read(path).decode())


def check_metadata(name: str, wheel: Path) -> list[str]:
    """Problems of one wheel's METADATA as an index would show it (empty: none)."""
    meta = metadata(wheel)
    problems = []
    if meta.get("License") != "Apache-2.0" and meta.get("License-Expression") != "Apache-2.0":
        problems.append("no License: Apache-2.0")
    if not meta.get_all("License-File"):
        problems.append("no License-File")
    with zipfile.ZipFile(wheel) as zf:
        if not any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in zf.namelist()):
            problems.append("the LICENSE file is not in the wheel")
    if not meta.get("Author"):
        problems.append("no Author")
    if not meta.get_all("Classifier"):
        problems.append("no Classifier")
    requires = meta.get_all("Requires-Dist") or []
    if name != "runwright" and not any(re.fullmatch(r"runwright\s*\(?(<0\.2,>=0\.1|>=0\.1,<0\.2)\)?", r) for r in requires):
        problems.append(f"no Requires-Dist runwright>=0.1,<0.2 (has: {requires})")
    description = meta.get_payload()
    if len(description.strip()) < 200:
        problems.append("no long description")
    for link in RELATIVE_LINK.findall(description):
        problems.append(f"a repository-relative link in the description: {link}")
    for match in DEV_ONLY.findall(description):
        problems.append(f"a development command in the description: {match!r}")
    return problems


def runwright_requirements(wheel: Path) -> tuple[set[str], list[str]]:
    """(the runwright dists a wheel requires, its other requirements), extras left out."""
    ours, others = set(), []
    for req in metadata(wheel).get_all("Requires-Dist") or []:
        if "extra ==" in req:
            continue
        dist = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0].lower()
        (ours.add(dist) if dist in DISTS else others.append(req))
    return ours, others


# -- venvs -----------------------------------------------------------------------------------
def make_venv(where: Path, wheels: dict[str, Path], selected: list[str]) -> Path:
    """A venv holding ``selected`` and the runwright dists they require, installed from the
    wheels with --no-deps, plus every other declared requirement from the index."""
    sh(sys.executable, "-m", "venv", "--without-pip", where).check_returncode()
    python = where / "bin" / "python"
    todo, chosen, index_reqs = list(selected), [], []
    while todo:
        dist = todo.pop()
        if dist in chosen:
            continue
        chosen.append(dist)
        ours, others = runwright_requirements(wheels[dist])
        todo.extend(ours)
        index_reqs.extend(others)
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    result = sh(*pip, "--no-deps", *(wheels[d] for d in chosen))
    if result.returncode == 0 and index_reqs:
        result = sh(*pip, *sorted(set(index_reqs)))
    if result.returncode != 0:
        fail(f"installing {selected} failed:\n{result.stderr[-3000:]}")
    return python


class Smoke:
    """One venv: run ``runwright`` there as a user would, with its own HOME and config."""

    def __init__(self, label: str, python: Path, home: Path) -> None:
        self.label, self.python, self.home = label, python, home
        home.mkdir(parents=True)

    def runwright(self, *args: str, config: str = "", files: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        for name, text in (files or {}).items():
            (self.home / name).write_text(textwrap.dedent(text))
        (self.home / "config.toml").write_text(textwrap.dedent(config))
        env = {
            "PATH": f"{self.python.parent}:{os.environ.get('PATH', '')}",
            "HOME": str(self.home),
            "RUNWRIGHT_CONFIG": str(self.home / "config.toml"),
            "COLUMNS": "200",
        }
        return sh(self.python.parent / "runwright", *args, env=env, cwd=self.home)

    def expect(self, result: subprocess.CompletedProcess[str], ok: bool, *texts: str) -> str:
        output = result.stdout + result.stderr
        if (result.returncode == 0) != ok or not all(t in output for t in texts):
            fail(f"[{self.label}] expected exit {'0' if ok else '!= 0'} and {texts!r}, got {result.returncode}:\n{output[-3000:]}")
        return output

    def run_json(self, flow: str, *args: str, config: str = "", files: dict[str, str] | None = None) -> dict:
        result = self.runwright("run", flow, "--json", *args, config=config, files=files)
        self.expect(result, True)
        return json.loads(result.stdout)

    def common(self, plugins: list[str], table: str | None) -> None:
        listed = self.expect(self.runwright("plugins"), True, "runwright.result_handlers")
        for plugin in plugins:
            if not re.search(rf"^{plugin} 0\.1\.0 \(runwright-", listed, re.MULTILINE):
                fail(f"[{self.label}] `runwright plugins` does not list {plugin}:\n{listed}")
        self.expect(self.runwright("config"), True, "[engine]", *([f"[{table}]"] if table else []))
        self.expect(self.runwright("config", config="[engine]\nexecutr = 1\n"), False, "Unknown key 'executr' in [engine]")
        summary = self.run_json("flow.py", files={"flow.py": FLOW})
        if summary["state"] != "Success":
            fail(f"[{self.label}] the flow did not succeed: {summary}")


FLOW = """
    from runwright import Flow, Parameter, task

    @task
    def double(x):
        return 2 * x

    with Flow("smoke") as flow:
        double(Parameter("n", default=21))
"""

CACHED_FLOW = """
    from datetime import timedelta
    from pathlib import Path

    from runwright import Flow, task

    @task(cache_for=timedelta(hours=1), cache_validator="all_inputs")
    def slow(x):
        marker = Path("ran.txt")
        marker.write_text((marker.read_text() if marker.exists() else "") + "x")
        return x + 1

    with Flow("cached") as flow:
        slow(41)
"""


def smoke_core(s: Smoke) -> None:
    s.common([], None)
    s.expect(
        s.runwright("run", "flow.py", config="[engine]\ncheckpointing = true\n"),
        False,
        "result_handler 'local', which is not installed",
        "pip install runwright-local",
    )
    summary = s.run_json("flow.py", config='[engine]\ncheckpointing = true\nresult_handler = "json"\n')
    assert summary["state"] == "Success", summary


def smoke_local(s: Smoke) -> None:
    s.common(["local"], "plugins.local")
    s.run_json("flow.py", config=f'[engine]\ncheckpointing = true\n[plugins.local]\ndir = "{s.home / "results"}"\n')
    if not list((s.home / "results").glob("*.rwr")):
        fail(f"[{s.label}] checkpointing wrote no result file")


def smoke_cache(s: Smoke) -> None:
    s.common(["cache", "local"], "plugins.cache")
    (s.home / "cached.py").write_text(textwrap.dedent(CACHED_FLOW))
    states = [next(t["state"] for t in s.run_json("cached.py")["tasks"] if t["task"] == "slow") for _ in range(2)]
    if states != ["Cached", "Cached"] or (s.home / "ran.txt").read_text() != "x":
        fail(f"[{s.label}] the cached re-run recomputed or was misreported: {states}, ran {(s.home / 'ran.txt').read_text()!r}")
    s.expect(s.runwright("cache", "list"), True, "slow")


def smoke_gcs(s: Smoke) -> None:
    s.common(["gcs"], "plugins.gcs")


def smoke_cloud(s: Smoke) -> None:
    s.common(["cloud"], "cloud")
    s.expect(s.runwright("run", "--help"), True, "--flow-run-id")


def smoke_server(s: Smoke) -> None:
    s.common(["server"], "server")
    s.expect(s.runwright("server", "token", "create", "--name", "smoke", "--db", f"sqlite:///{s.home / 'server.db'}"), True)
    s.expect(s.runwright("server", "token", "list", "--db", f"sqlite:///{s.home / 'server.db'}"), True, "smoke")
    # the web UI's templates and vendored browser files are package data of the wheel
    check = (
        "from pathlib import Path; import runwright_server.ui as ui; here = Path(ui.__file__).parent; "
        "files = ['templates/base.html', 'templates/flow_run.html', 'static/ui.css', 'static/run.js', "
        "'static/vendor/htmx/htmx.min.js', 'static/vendor/dagre/dagre.min.js', "
        "'static/vendor/swagger-ui/swagger-ui-bundle.js', 'static/vendor/swagger-ui/swagger-ui.css']; "
        "bad = [f for f in files if not (here / f).is_file()]; print('ui ok' if not bad else f'ui missing {bad}')"
    )
    s.expect(sh(s.python, "-c", check, cwd=s.home), True, "ui ok")


def smoke_dask(s: Smoke) -> None:
    s.common(["dask"], "plugins.dask")
    summary = s.run_json("flow.py", "--executor", "dask", config="[plugins.dask]\nn_workers = 1\nthreads_per_worker = 1\n")
    assert summary["state"] == "Success", summary


SMOKES = {
    "runwright": smoke_core,
    "runwright-local": smoke_local,
    "runwright-gcs": smoke_gcs,
    "runwright-cache": smoke_cache,
    "runwright-cloud": smoke_cloud,
    "runwright-server": smoke_server,
    "runwright-dask": smoke_dask,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="runwright-smoke-"))
    try:
        wheels_dir = tmp / "wheels"
        wheels = {name: build_wheel(name, copy_sources(name, source, tmp / "src"), wheels_dir) for name, source in DISTS.items()}
        problems = [f"{wheel.name}: {p}" for name, wheel in wheels.items() for p in check_metadata(name, wheel)]
        if problems:
            fail("wheel metadata:\n" + "\n".join(problems))
        print(f"smoke-wheels: built and checked {len(wheels)} wheels in {time.monotonic() - started:.0f} s")
        for name, smoke in SMOKES.items():
            t0 = time.monotonic()
            selected = ["runwright"] if name == "runwright" else ["runwright", name]
            python = make_venv(tmp / "venvs" / name, wheels, selected)
            smoke(Smoke(name, python, tmp / "homes" / name))
            print(f"smoke-wheels: {' + '.join(selected)}: ok ({time.monotonic() - t0:.0f} s)")
        print(f"smoke-wheels: all passed in {time.monotonic() - started:.0f} s")
    finally:
        if args.keep:
            print(f"smoke-wheels: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
