"""Engine cost per task in CPU instructions (valgrind's callgrind), free of machine load.

    .venv/bin/python benchmarks/instructions.py                    # chain, fan-out, map
    .venv/bin/python benchmarks/instructions.py --workloads chain --sizes 1000,3000

Each workload of ``bench_engine.py`` runs under ``valgrind --tool=callgrind`` at two sizes
N1 < N2, in a fresh process; the per-task figure is the difference of the two runs'
instruction counts divided by N2 - N1, so start-up (imports, plugin loading) cancels out.
"build" counts graph construction only (the script runs with ``--build-only``); "run" is
the rest. Wall time on a busy 2-core machine says little; instruction counts are the same
at any load (one run takes about a minute: valgrind is ~50x slower than Python alone).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import RUNWRIGHT

BUILD_ONLY = "\nif '--build-only' in sys.argv:\n    raise SystemExit(0)\nstate = flow.run()"


def instructions(script: Path, workload: str, n: int, build_only: bool) -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}/cg.out",
            sys.executable,
            str(script),
            workload,
            str(n),
        ]
        if build_only:
            command.append("--build-only")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{workload} N={n} failed:\n{done.stderr[-3000:]}")
        found = re.search(r"Collected : (\d+)", done.stderr)
        if not found:
            raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="chain,fan-out,map")
    parser.add_argument("--sizes", default="1000,3000", help="N1,N2")
    args = parser.parse_args()
    n1, n2 = (int(x) for x in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "flow.py"
        script.write_text(RUNWRIGHT.replace("\nstate = flow.run()", BUILD_ONLY, 1))
        print(f"instructions per task ((I(N={n2}) - I(N={n1})) / {n2 - n1}), build + run, local backend")
        print(f"{'workload':10} {'build':>10} {'run':>10} {'total':>10}")
        for workload in args.workloads.split(","):
            build = (instructions(script, workload, n2, True) - instructions(script, workload, n1, True)) / (n2 - n1)
            total = (instructions(script, workload, n2, False) - instructions(script, workload, n1, False)) / (n2 - n1)
            print(
                f"{workload:10} {build:10,.0f} {total - build:10,.0f} {total:10,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
