"""Shared benchmark plumbing: competitor venvs, subprocess runs, tables."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"


#: The tasks of the W1 / W2 / W2-map workloads, in every engine's flow script (runwright,
#: Prefect 1 and Prefect 3 all spell them with a ``task`` decorator).
WORKLOAD_TASKS = """
@task
def one():
    return 1

@task
def inc(x):
    return x + 1

@task
def total(xs):
    return sum(xs)
"""

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_venv(name: str, requirement: str, module: str = "prefect") -> tuple[Path | None, str]:
    """A venv under benchmarks/.venvs/ with ``requirement`` installed: (python, "") or (None, why)."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0:
        return python, ""
    log(f"creating {venv} and installing {requirement} (first use only) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", requirement], check=True, capture_output=True, text=True, timeout=1800
        )
        subprocess.run([python, "-c", f"import {module}"], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = (getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or str(exc)).strip().splitlines()
        return None, f"install of {requirement} failed: {output[-1] if output else exc}"
    return python, ""


def run_json_script(python: Path | str, script: Path, args: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script`` and parse the JSON object on its last stdout line; {"error": ...} on failure."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(python), str(script), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {proc.returncode}: {tail[0][:120]}"}
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "no result printed"}
    result: dict[str, Any] = json.loads(lines[-1])
    result.setdefault("wall", time.monotonic() - started)
    return result


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * width for width in widths))
