"""Engine overhead: runwright vs Prefect 1.4.1 (the seed's descendant) on the same workloads.

    .venv/bin/python benchmarks/bench_engine.py                  # N = 1,000 and 10,000
    .venv/bin/python benchmarks/bench_engine.py --sizes 1000 --engines runwright

Workloads (trivial task bodies, so the numbers are engine overhead):

* W1: a linear chain of N tasks;
* W2: one root, N independent children, one reducer over all of them;
* W2-map: the same with ``task.map`` (N mapped children).

Each engine runs each workload in a fresh process (import time excluded); "build" is the
graph construction, "run" is ``flow.run()``, "peak MB" the process's maximum RSS. Prefect
1.4.1 is installed into benchmarks/.venvs/prefect1 on first use; a run that exceeds the
time limit is reported as such (Prefect 1.4.1 did not finish W1 with N = 10,000 in 5 minutes
on these machines).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engines import WORKLOAD_TASKS, ensure_venv, log, print_table, run_json_script  # noqa: E402

COMMON = """
import json, resource, sys, time
WORKLOAD, N = sys.argv[1], int(sys.argv[2])
"""

BODY = """
""" + WORKLOAD_TASKS + """
t0 = time.perf_counter()
with Flow("bench") as flow:
    if WORKLOAD == "W1":
        last = one()
        for _ in range(N - 1):
            last = inc(last)
    elif WORKLOAD == "W2":
        root = one()
        last = total([inc(root) for _ in range(N)])
    else:
        root = one()
        last = total(inc.map(list(range(N))))
t1 = time.perf_counter()
state = flow.run()
t2 = time.perf_counter()
assert state.is_successful(), state
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"build": t1 - t0, "run": t2 - t1, "peak_mb": peak}))
"""

# The same user script for both engines; only the imports differ.
RUNWRIGHT = COMMON + """
from runwright import Flow, task
from runwright.plugins import get_plugin_manager
get_plugin_manager().registry  # plugin loading is start-up, not engine time
""" + BODY

PREFECT1 = COMMON + """
from prefect import Flow, task
""" + BODY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workloads", default="W1,W2,W2-map")
    parser.add_argument("--engines", default="runwright,prefect1")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per competitor run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workloads = args.workloads.split(",")
    engines = args.engines.split(",")

    work = Path(tempfile.mkdtemp(prefix="rw-bench-engine-"))
    scripts = {"runwright": work / "runwright_flow.py", "prefect1": work / "prefect1_flow.py"}
    scripts["runwright"].write_text(textwrap.dedent(RUNWRIGHT))
    scripts["prefect1"].write_text(textwrap.dedent(PREFECT1))
    pythons: dict[str, object] = {"runwright": sys.executable}
    notes = []
    if "prefect1" in engines:
        python, why = ensure_venv("prefect1", "prefect==1.4.1")
        if python is None:
            notes.append(f"Prefect 1.4.1 skipped: {why}")
            engines.remove("prefect1")
        else:
            pythons["prefect1"] = python

    rows = []
    for workload in workloads:
        for n in sizes:
            results = {}
            for engine in engines:
                log(f"{engine} {workload} N={n} ...")
                timeout = 120.0 if engine == "runwright" else args.timeout
                results[engine] = run_json_script(pythons[engine], scripts[engine], [workload, str(n)], timeout)  # type: ignore[arg-type]
            ours = results.get("runwright", {})
            for engine, result in results.items():
                if "error" in result:
                    rows.append([workload, n, engine, "-", "-", "-", "-", "-", result["error"]])
                    continue
                total = result["build"] + result["run"]
                ratio = ""
                if engine != "runwright" and "error" not in ours:
                    ratio = f"{total / (ours['build'] + ours['run']):.0f}x slower"
                rows.append(
                    [
                        workload,
                        n,
                        engine,
                        f"{result['build']:.3f}",
                        f"{result['run']:.3f}",
                        f"{total:.3f}",
                        f"{total / n * 1e6:.0f}",
                        f"{result['peak_mb']:.0f}",
                        ratio,
                    ]
                )
    print_table(["workload", "N", "engine", "build s", "run s", "total s", "µs/task", "peak MB", "vs runwright"], rows)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
