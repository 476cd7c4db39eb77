"""Engine overhead per task: runwright vs Prefect 1.4.1, Prefect 3 and Dask's synchronous
scheduler, on the same workloads, at growing sizes (so the growth of the cost shows).

    .venv/bin/python benchmarks/bench_engine.py                       # everything (minutes)
    .venv/bin/python benchmarks/bench_engine.py --engines runwright   # runwright's own figures
    .venv/bin/python benchmarks/bench_engine.py --sizes 1000,10000 --workloads chain
    .venv/bin/python benchmarks/bench_engine.py --limit prefect1=10000   # let Prefect 1 run longer
    .venv/bin/python benchmarks/bench_engine.py --backend cloud --workloads map --sizes 10000,100000

Workloads (trivial task bodies, so the numbers are engine overhead):

* chain: a linear chain of N tasks;
* fan-out: ``root = one()``, ``total([child(root, i) for i in range(N)])`` (N children, each
  with a literal argument, and a reducer);
* map: ``total(child.map(unmapped(root), range(N)))`` (N mapped children and a reducer).

Sizes: N = 1,000 / 10,000 / 100,000, and 1,000,000 for the map. Each engine runs each
workload in a fresh process with start-up excluded (imports and plugin loading; Prefect 3's
ephemeral server is started by a one-task warm-up flow first). "build" is the graph
construction (Prefect 3 builds nothing ahead: its figure is all "run"), "run" the flow run,
"peak MB" the process's maximum RSS. runwright runs with every shipped plugin installed and
the local backend.

``--backend cloud`` runs runwright only, reporting to a runwright server (``python -m
runwright_server start`` on 127.0.0.1 with a new SQLite file, one server per run, stopped by
its process id): "peak MB" is then the client's, "server MB" the server's peak RSS (VmHWM,
read before it is stopped), "requests" the HTTP requests the client sent, and "on server"
how many task runs the server holds Success (or Mapped) at the end, checked against the
workload's count: every child's final state must have landed.

Competitors are skipped at sizes where they would take minutes (``--limit`` says up to which
N each runs; the output names what was skipped). Prefect 1.4.1 and Prefect 3 are installed
into benchmarks/.venvs/ on first use; Dask is the one runwright-dask installs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engines import RunwrightServer, ensure_venv, log, print_table, run_json_script  # noqa: E402

TASKS = """
@task
def one():
    return 1

@task
def inc(x):
    return x + 1

@task
def child(x, i):
    return x + i

@task
def total(xs):
    return sum(xs)
"""

COMMON = """
import json, resource, sys, time
WORKLOAD, N = sys.argv[1], int(sys.argv[2])
EXTRA = {}  # further figures of a run (the cloud backend's request count)

def report(build, run, value):
    expected = N if WORKLOAD == "chain" else N + N * (N - 1) // 2
    assert value == expected, (value, expected)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"build": build, "run": run, "peak_mb": peak, **EXTRA}))
"""

# runwright and Prefect 1.4.1: the same user script; only the imports differ.
FLOW_BODY = TASKS + """
t0 = time.perf_counter()
with Flow("bench") as flow:
    if WORKLOAD == "chain":
        last = one()
        for _ in range(N - 1):
            last = inc(last)
    elif WORKLOAD == "fan-out":
        root = one()
        last = total([child(root, i) for i in range(N)])
    else:
        root = one()
        last = total(child.map(unmapped(root), range(N)))
t1 = time.perf_counter()
state = flow.run()
t2 = time.perf_counter()
assert state.is_successful(), state
report(t1 - t0, t2 - t1, state.result[last].result)
"""

RUNWRIGHT = COMMON + """
from runwright import Flow, task, unmapped
from runwright.plugins import get_plugin_manager
get_plugin_manager().registry  # plugin loading is start-up, not engine time
""" + FLOW_BODY

# the same, reporting to a server: also counts the HTTP requests the client sends
RUNWRIGHT_CLOUD = COMMON + """
import itertools, requests
_sent, _send = itertools.count(), requests.Session.send
def _counted(self, *args, **kwargs):
    EXTRA["requests"] = next(_sent) + 1  # the writer, heartbeat and log threads send too
    return _send(self, *args, **kwargs)
requests.Session.send = _counted
_report = report

def report(build, run, value):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    EXTRA.update(tasks=len(flow.tasks), cpu=usage.ru_utime + usage.ru_stime)
    _report(build, run, value)
""" + RUNWRIGHT[len(COMMON):]

PREFECT1 = COMMON + """
from prefect import Flow, task, unmapped
""" + FLOW_BODY

PREFECT3 = COMMON + """
from prefect import flow, task, unmapped
""" + TASKS + """
@flow
def warm_up():
    return one()

warm_up()  # starts the ephemeral server: start-up, not engine time

@flow
def bench():
    if WORKLOAD == "chain":
        last = one()
        for _ in range(N - 1):
            last = inc(last)
        return last
    root = one()
    if WORKLOAD == "fan-out":
        return total([child(root, i) for i in range(N)])
    return total(child.map(unmapped(root), range(N)).result())

t0 = time.perf_counter()
value = bench()
report(0.0, time.perf_counter() - t0, value)
"""

DASK = COMMON + """
import dask
from dask import delayed

def one():
    return 1

def inc(x):
    return x + 1

def child(x, i):
    return x + i

def total(xs):
    return sum(xs)

t0 = time.perf_counter()
if WORKLOAD == "chain":
    last = delayed(one)()
    for _ in range(N - 1):
        last = delayed(inc)(last)
else:  # Dask has no map of its own over delayed values: one delayed call per child
    root = delayed(one)()
    last = delayed(total)([delayed(child)(root, i) for i in range(N)])
t1 = time.perf_counter()
value = last.compute(scheduler="synchronous")
report(t1 - t0, time.perf_counter() - t1, value)
"""

SCRIPTS = {"runwright": RUNWRIGHT, "prefect1": PREFECT1, "prefect3": PREFECT3, "dask": DASK}
LABELS = {"runwright": "runwright", "prefect1": "Prefect 1.4.1", "prefect3": "Prefect 3", "dask": "Dask (sync)"}
#: the largest N each competitor runs by default: beyond it a run takes minutes (measured
#: here: Prefect 1.4.1 did not finish a 10,000 chain in 5 minutes, Dask's synchronous scheduler a
#: 100,000 chain, fan-out or map in 10 minutes)
DEFAULT_LIMITS = {"runwright": 1_000_000, "prefect1": 1_000, "prefect3": 1_000, "dask": 10_000}
WORKLOADS = ("chain", "fan-out", "map")


def parse_limits(text: str) -> dict[str, int]:
    limits = dict(DEFAULT_LIMITS)
    for item in filter(None, text.split(",")):
        engine, _, value = item.partition("=")
        if engine not in limits or not value.isdigit():
            raise SystemExit(f"--limit takes ENGINE=N with ENGINE one of {', '.join(limits)}; got {item!r}")
        limits[engine] = int(value)
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="N for every workload")
    parser.add_argument("--map-sizes", default="1000000", help="further N for the map only")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--engines", default="runwright,prefect1,prefect3,dask")
    parser.add_argument("--limit", default="", help="ENGINE=N,...: the largest N an engine runs (see DEFAULT_LIMITS)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per run")
    parser.add_argument(
        "--backend", choices=("local", "cloud"), default="local", help="cloud: runwright reporting to a runwright server"
    )
    args = parser.parse_args()
    if args.backend == "cloud":
        run_cloud(args)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    map_sizes = [int(s) for s in args.map_sizes.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - set(SCRIPTS):
        parser.error(f"unknown engine(s) {sorted(set(engines) - set(SCRIPTS))}; choose from {', '.join(SCRIPTS)}")
    limits = parse_limits(args.limit)

    work = Path(tempfile.mkdtemp(prefix="rw-bench-engine-"))
    pythons: dict[str, object] = {"runwright": sys.executable, "dask": sys.executable}
    notes: list[str] = []
    for engine, requirement in (("prefect1", "prefect==1.4.1"), ("prefect3", "prefect>=3,<4")):
        if engine in engines:
            python, why = ensure_venv(engine, requirement)
            if python is None:
                notes.append(f"{LABELS[engine]} not run: {why}")
                engines.remove(engine)
            else:
                pythons[engine] = python
    scripts = {}
    for engine in engines:
        scripts[engine] = work / f"{engine}_flow.py"
        scripts[engine].write_text(textwrap.dedent(SCRIPTS[engine]))
    env = dict(
        os.environ,
        RUNWRIGHT__LOGGING__LEVEL="WARNING",
        PREFECT__LOGGING__LEVEL="WARNING",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_HOME=str(work / "prefect3-home"),
        PREFECT__HOME_DIR=str(work / "prefect1-home"),
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )

    rows = []
    skipped: dict[str, list[str]] = {}
    for workload in workloads:
        for n in sizes + (map_sizes if workload == "map" else []):
            ours: dict[str, float] | None = None
            for engine in engines:
                if n > limits[engine]:
                    skipped.setdefault(engine, []).append(f"{workload} N={n:,}")
                    continue
                log(f"{engine} {workload} N={n:,} ...")
                result = run_json_script(pythons[engine], scripts[engine], [workload, str(n)], args.timeout, env=env)  # type: ignore[arg-type]
                if "error" in result:
                    rows.append([workload, f"{n:,}", LABELS[engine], "-", "-", "-", "-", "-", result["error"]])
                    continue
                total = result["build"] + result["run"]
                if engine == "runwright":
                    ours = result
                ratio = f"{total / (ours['build'] + ours['run']):.0f}x" if ours and engine != "runwright" else ""
                rows.append(
                    [
                        workload,
                        f"{n:,}",
                        LABELS[engine],
                        f"{result['build'] / n * 1e6:.1f}",
                        f"{result['run'] / n * 1e6:.1f}",
                        f"{total / n * 1e6:.1f}",
                        f"{total:.2f}",
                        f"{result['peak_mb']:.0f}",
                        ratio,
                    ]
                )
    print_table(
        ["workload", "N", "engine", "build µs/task", "run µs/task", "total µs/task", "total s", "peak MB", "vs runwright"],
        rows,
    )
    for engine, where in skipped.items():
        print(
            f"{LABELS[engine]} skipped at N > {limits[engine]:,} (it would take minutes; --limit {engine}=N runs it): "
            + ", ".join(where)
        )
    if "prefect3" in engines:
        print("Prefect 3 builds no graph ahead: its whole figure is in 'run'.")
    for note in notes:
        print(note)


#: task runs Success on the server at the end of a run: the workload's tasks and children
SUCCESS_ON_SERVER = "SELECT count(*) FROM task_runs WHERE state_type IN ('Success', 'Mapped')"


def run_cloud(args: argparse.Namespace) -> None:
    """runwright with ``[engine] backend = "cloud"``, one fresh server per run."""
    sizes = [int(s) for s in args.sizes.split(",") if s]
    map_sizes = [int(s) for s in args.map_sizes.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    work = Path(tempfile.mkdtemp(prefix="rw-bench-engine-cloud-"))
    script = work / "runwright_cloud_flow.py"
    script.write_text(textwrap.dedent(RUNWRIGHT_CLOUD))
    rows = []
    for workload in workloads:
        for n in sizes + (map_sizes if workload == "map" else []):
            run_dir = work / f"{workload}-{n}"
            run_dir.mkdir()
            (run_dir / "config.toml").write_text("")
            log(f"runwright-cloud {workload} N={n:,} ...")
            server = RunwrightServer(run_dir)
            try:
                idle_cpu = server.cpu_seconds() or 0.0  # its start-up
                # [cloud] settings from the environment (RUNWRIGHT__CLOUD__BATCH_SIZE=...) are kept
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("RUNWRIGHT", "PREFECT")) or k.startswith("RUNWRIGHT__CLOUD__")
                }
                env.update(
                    server.env,
                    RUNWRIGHT_CONFIG=str(run_dir / "config.toml"),
                    RUNWRIGHT__LOGGING__LEVEL="WARNING",
                    RUNWRIGHT__PLUGINS__LOCAL__DIR=str(run_dir / "results"),
                    HOME=str(run_dir),  # the client's journal (~/.runwright) stays in the run's directory
                )
                result = run_json_script(sys.executable, script, [workload, str(n)], args.timeout, env=env)
                server_mb = server.peak_mb()
                server_cpu = (server.cpu_seconds() or 0.0) - idle_cpu
            finally:
                server.stop()
            landed = server.count(SUCCESS_ON_SERVER)
            if "error" in result:
                rows.append([workload, f"{n:,}", "-", "-", "-", "-", "-", "-", "-", "-", f"{landed:,}", result["error"]])
                continue
            # every task of the flow Success (the mapped parent Mapped), and every child Success
            expected = result["tasks"] + (n if workload == "map" else 0)
            total = result["build"] + result["run"]
            rows.append(
                [
                    workload,
                    f"{n:,}",
                    f"{result['build']:.2f}",
                    f"{result['run']:.2f}",
                    f"{total / n * 1e6:.1f}",
                    f"{result['cpu']:.1f}",
                    f"{server_cpu:.1f}",
                    f"{result['peak_mb']:.0f}",
                    "-" if server_mb is None else f"{server_mb:.0f}",
                    f"{result.get('requests', 0):,}",
                    f"{landed:,}",
                    "" if landed == expected else f"expected {expected:,}",
                ]
            )
    print_table(
        [
            "workload",
            "N",
            "build s",
            "run s",
            "total µs/task",
            "client CPU s",
            "server CPU s",
            "client MB",
            "server MB",
            "requests",
            "on server",
            "",
        ],
        rows,
    )
    print(
        "runwright with the cloud backend, one new server (SQLite) per run. 'client CPU s' includes the client's "
        "start-up; 'server CPU s' is the server's during the run; 'on server': task runs Success (or Mapped) in "
        "the server's database at the end (every task of the flow and every child)"
    )


if __name__ == "__main__":
    main()
