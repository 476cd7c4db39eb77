"""Benchmark: a chain of N cached tasks, first run and fully cached re-run in a new process.

    .venv/bin/python benchmarks/bench_cache.py                 # runwright, runwright-cloud, Prefect 1.4.1, Prefect 3
    .venv/bin/python benchmarks/bench_cache.py --engines runwright,runwright-cloud
    .venv/bin/python benchmarks/bench_cache.py --engines runwright --profile

Each engine runs the same flow (``x = step(x)`` N times, each task caching its result
persistently, keyed on its inputs and its source) twice, each time in a fresh Python
process: the first run computes and stores every result, the second must take every task
from the cache. ``runwright-cloud`` is runwright with ``--backend cloud`` reporting to a
runwright server (``python -m runwright_server`` on 127.0.0.1, a new SQLite file, started
before the first run and stopped by its process id): the server keeps the cached states and
results, as Prefect 3's server does. "Engine time" is measured inside the process around the flow run only
(start-up, i.e. imports and loading plugins, and building the graph are reported apart;
Prefect 3 starts its ephemeral server inside the flow run, so that counts as engine time). Every task appends a line to a file, so
the table also shows how many task bodies ran: the cached run must show 0.

Prefect 1.4.1 and Prefect 3 are installed with pip into their own virtual environments
under ``benchmarks/.venvs/`` on first use (an engine whose install fails is skipped with a
note). Prefect 1 caches across processes with ``target=`` files (checkpointing on),
Prefect 3 with ``cache_policy=INPUTS + TASK_SOURCE`` and persisted results (ephemeral
server). Figures come from one run of each: expect noise of a few percent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _engines import RunwrightServer, ensure_venv, log  # noqa: E402

RUNWRIGHT_FLOW = """
import datetime, json, sys, time
t0 = time.perf_counter()
from runwright import Flow, task
from runwright.engine.executors import resolve_executor
from runwright.plugins import get_plugin_manager
from runwright_cache import Inputs, TaskSource
get_plugin_manager().registry  # load the plugins now: reported as start-up, not engine time
resolve_executor(None)
t1 = time.perf_counter()

COUNTER = sys.argv[2]

@task(cache_for=datetime.timedelta(days=1), cache_validator=Inputs() + TaskSource())
def step(x):
    with open(COUNTER, "a") as fh:
        fh.write("1\\n")
    return x + 1

with Flow("bench-cache-chain") as flow:
    x = 0
    for _ in range(int(sys.argv[1])):
        x = step(x)
t2 = time.perf_counter()
if len(sys.argv) > 3:
    import cProfile, pstats
    profiler = cProfile.Profile()
    profiler.enable()
state = flow.run()
t3 = time.perf_counter()
if len(sys.argv) > 3:
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats(sys.argv[3]).print_stats(30)
assert state.is_successful(), state
assert state.result[x].result == int(sys.argv[1]), state.result[x].result
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "engine": t3 - t2}))
"""

PREFECT1_FLOW = """
import json, os, sys, time
t0 = time.perf_counter()
from prefect import Flow, task
from prefect.engine.results import LocalResult
t1 = time.perf_counter()

COUNTER = sys.argv[2]
RESULTS = LocalResult(dir=os.environ["BENCH_RESULTS"])

@task(checkpoint=True, result=RESULTS, target="{task_slug}")
def step(x):
    with open(COUNTER, "a") as fh:
        fh.write("1\\n")
    return x + 1

with Flow("bench-cache-chain") as flow:
    x = 0
    for _ in range(int(sys.argv[1])):
        x = step(x)
t2 = time.perf_counter()
state = flow.run()
t3 = time.perf_counter()
assert state.is_successful(), state
assert state.result[x].result == int(sys.argv[1]), state.result[x].result
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "engine": t3 - t2}))
"""

PREFECT3_FLOW = """
import json, sys, time
t0 = time.perf_counter()
from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
t1 = time.perf_counter()

COUNTER = sys.argv[2]

@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def step(x):
    with open(COUNTER, "a") as fh:
        fh.write("1\\n")
    return x + 1

@flow(name="bench-cache-chain")
def chain(n):
    x = 0
    for _ in range(n):
        x = step(x)
    return x

t2 = time.perf_counter()
result = chain(int(sys.argv[1]))
t3 = time.perf_counter()
assert result == int(sys.argv[1]), result
print(json.dumps({"import": t1 - t0, "build": 0.0, "engine": t3 - t2}))
"""


def run_engine(name: str, python: Path, source: str, n: int, env: dict[str, str], work: Path, profile: str | None) -> dict[str, object]:
    script = work / f"{name}_flow.py"
    script.write_text(textwrap.dedent(source))
    counter = work / "counter.txt"
    out: dict[str, object] = {}
    for label in ("first", "cached"):
        before = len(counter.read_text().splitlines()) if counter.exists() else 0
        args = [str(python), str(script), str(n), str(counter)]
        if profile and label == "cached":
            args.append(profile)
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{name} {label} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        if profile and label == "cached":
            log(done.stderr)
        timings = json.loads(done.stdout.strip().splitlines()[-1])
        ran = (len(counter.read_text().splitlines()) if counter.exists() else 0) - before
        out[label] = {**timings, "process": wall, "tasks_run": ran}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000, help="length of the chain (default 1000)")
    parser.add_argument("--engines", default="runwright,runwright-cloud,prefect1,prefect3", help="comma-separated subset")
    parser.add_argument("--profile", nargs="?", const="cumulative", default=None,
                        help="cProfile runwright's cached run (sort key, default cumulative)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    results: dict[str, dict[str, object]] = {}
    notes: list[str] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWRIGHT", "PREFECT"))}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        root = Path(tmp)
        for engine in engines:
            work = root / engine
            work.mkdir()
            env = dict(base_env)
            server: RunwrightServer | None = None
            if engine in ("runwright", "runwright-cloud"):
                config = work / "config.toml"
                config.write_text("")
                env.update(
                    RUNWRIGHT_CONFIG=str(config),
                    RUNWRIGHT__PLUGINS__CACHE__PATH=str(work / "cache.db"),
                    RUNWRIGHT__PLUGINS__LOCAL__DIR=str(work / "results"),
                    RUNWRIGHT__ENGINE__RESULT_HANDLER="local",
                    RUNWRIGHT__LOGGING__LEVEL="WARNING",
                )
                python, source = Path(sys.executable), RUNWRIGHT_FLOW
                if engine == "runwright-cloud":
                    server = RunwrightServer(work)
                    env.update(server.env, HOME=str(work))
                    del env["RUNWRIGHT__ENGINE__RESULT_HANDLER"]  # the cloud backend's: results on the server
            elif engine == "prefect1":
                python, why = ensure_venv("prefect1", "prefect==1.4.1")
                env.update(
                    PREFECT__FLOWS__CHECKPOINTING="true",
                    PREFECT__LOGGING__LEVEL="WARNING",
                    PREFECT__HOME_DIR=str(work / "home"),
                    BENCH_RESULTS=str(work / "results"),
                )
                source = PREFECT1_FLOW
            elif engine == "prefect3":
                python, why = ensure_venv("prefect3", "prefect>=3,<4")
                env.update(
                    PREFECT_HOME=str(work / "home"),
                    PREFECT_LOCAL_STORAGE_PATH=str(work / "results"),
                    PREFECT_LOGGING_LEVEL="WARNING",
                    PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true",
                    PREFECT_SERVER_ANALYTICS_ENABLED="false",
                )
                source = PREFECT3_FLOW
            else:
                parser.error(f"unknown engine {engine!r}")
            if python is None:
                notes.append(f"{engine}: skipped, {why}")
                continue
            log(f"running {engine} ({args.tasks} tasks, first run then cached run) ...")
            try:
                profile = args.profile if engine.startswith("runwright") else None
                results[engine] = run_engine(engine, python, source, args.tasks, env, work, profile)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                notes.append(f"{engine}: failed: {str(exc).strip()[:500]}")
            finally:
                if server is not None:
                    server.stop()
            shutil.rmtree(work, ignore_errors=True)

    print_table(results, args.tasks)
    for note in notes:
        print(f"note: {note}")
    if args.json:
        print(json.dumps(results, indent=2))


def print_table(results: dict[str, dict[str, object]], n: int) -> None:
    base = results.get("runwright")
    width = max([11, *(len(engine) for engine in results)])
    print(f"\nchain of {n} cached tasks, each run in a new process (engine time = flow run only)\n")
    header = f"{'engine':<{width}} {'run':<7} {'engine s':>9} {'vs ours':>8} {'build s':>8} {'startup s':>10} {'process s':>10} {'tasks run':>10}"
    print(header)
    print("-" * len(header))
    for engine, runs in results.items():
        for label in ("first", "cached"):
            row = runs[label]
            assert isinstance(row, dict)
            ratio = ""
            if base is not None:
                ours = base[label]["engine"]  # type: ignore[index]
                ratio = f"{row['engine'] / ours:.1f}x" if ours else ""
            print(
                f"{engine:<{width}} {label:<7} {row['engine']:>9.3f} {ratio:>8} {row['build']:>8.3f} "
                f"{row['import']:>10.3f} {row['process']:>10.2f} {row['tasks_run']:>10}"
            )


if __name__ == "__main__":
    main()
