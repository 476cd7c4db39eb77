"""Benchmark: orchestration latency, throughput, cancel and idle cost; runwright vs Prefect 3.

    .venv/bin/python benchmarks/bench_orchestration.py                      # both engines
    .venv/bin/python benchmarks/bench_orchestration.py --engines runwright --runs 100

runwright: ``python -m runwright_server start`` on a temp SQLite file and ``runwright agent
start`` subprocesses (temp HOME), all on 127.0.0.1, stopped by PID. The deployment is a
trivial one-task flow in the built-in ``server`` storage. Times are the server's own state
timestamps (the run's history), so client overhead does not count:

- **lateness**: a deployment with an interval schedule of 1 s (the server's scheduler creates
  the runs), one idle agent: ``Running`` timestamp minus the run's scheduled start, p50/p95
  over ``--scheduled`` runs;
- **deployments run → Running**: ``POST /deployments/{name}/runs`` (one at a time, the agent
  idle in its long poll) to the run's ``Running`` timestamp, median and max of 5;
- **burst**: ``--runs`` runs created at once, one agent ``--limit 4``: from the first run's
  creation to the last run's final state, and how many ended otherwise than ``Success``;
- **cancel**: a run in a 120 s task body; ``POST /flow_runs/{id}/cancel`` to the flow-run
  process gone (its pid polled every 5 ms) and to the run ``Cancelled`` (3 runs, max);
- **idle CPU**: server CPU time (``/proc``) over 20 s with 10 agents connected and idle;
- **logs at the final state**: a run whose task logs 1,000 lines; the moment its final state
  is visible (polled every 5 ms), how many of those lines the logs API already answers.

Prefect 3 (its own venv under ``benchmarks/.venvs/prefect3``, ``prefect server start`` on a
temp SQLite file, a ``process`` work pool and ``prefect worker start``): the same measures
where it has them (see ``bench_prefect3``).

Expect noise on a 2-core machine where server, agents and flow-run processes share the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engines import log, print_table  # noqa: E402

TRIVIAL_FLOW = """
import time

from runwright import Flow, Parameter, get_run_logger, task


@task
def work(seconds, lines):
    logger = get_run_logger()
    for i in range(lines):
        logger.info("bench line %d", i)
    time.sleep(seconds)
    return 1


with Flow("bench-orchestration") as flow:
    work(Parameter("seconds", default=0.0), Parameter("lines", default=0))
"""
LOG_LINES = 1000
FINISHED = {"Success", "Failed", "Cancelled", "TriggerFailed", "Crashed"}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


class Runwright:
    """A server and agents of one benchmark run, in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        from runwright_server import migrate
        from runwright_server.auth import create_token
        from runwright_server.db import make_engine
        from runwright_server.testing import ServerProcess

        self.tmp = tmp
        db_url = f"sqlite:///{tmp / 'server.db'}"
        engine = make_engine(db_url)
        migrate.upgrade(engine)
        self.token = create_token(engine, "bench")
        engine.dispose()
        self.server = ServerProcess(db_url).start()
        self.api = self.server.url + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRIGHT__")}
        self.env.update(
            HOME=str(home),
            RUNWRIGHT_CONFIG=str(home / "config.toml"),
            RUNWRIGHT__CLOUD__API=self.server.url,
            RUNWRIGHT__CLOUD__API_TOKEN=self.token,
            RUNWRIGHT__CLOUD__AUTO_START="false",
        )
        self.agents: list[subprocess.Popen[bytes]] = []

    def close(self) -> None:
        for agent in self.agents:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
        for agent in self.agents:
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(10)
        self.server.stop()

    def start_agent(self, *args: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"agent-{len(self.agents)}.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runwright.cli", "agent", "start", *args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.agents.append(proc)
        return proc

    def stop_agents(self) -> None:
        for agent in self.agents:
            agent.send_signal(signal.SIGTERM)
        for agent in self.agents:
            agent.wait(60)
        self.agents = []

    def deploy(self, name: str, schedule: dict[str, Any] | None = None) -> None:
        from runwright.cli.loading import load_flow

        path = self.tmp / f"{name}.py"
        path.write_text(TRIVIAL_FLOW)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        r = self.session.put(f"{self.api}/storage/{digest}", data=data, headers={"Content-Type": "application/octet-stream"})
        r.raise_for_status()
        structure = load_flow(str(path)).structure()
        registered = {key: structure[key] for key in ("name", "tasks", "edges")}  # what the server stores
        flow = self.session.post(f"{self.api}/flows", json=registered)
        flow.raise_for_status()
        body = {
            "name": name,
            "flow_id": flow.json()["id"],
            "flow_name": structure["name"],
            "storage": "server",
            "storage_ref": {"digest": digest, "filename": path.name},
            "schedule": schedule,
            "parameters": {},
            "queue": "default",
            "executor": None,
            "concurrency_limit": None,
        }
        r = self.session.post(f"{self.api}/deployments", json=body)
        assert r.status_code in (200, 201), r.text

    def run_now(self, name: str, **parameters: Any) -> str:
        r = self.session.post(f"{self.api}/deployments/{name}/runs", json={"parameters": parameters})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.session.get(f"{self.api}/flow_runs/{run_id}").json()
        return result

    def history(self, run_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.session.get(f"{self.api}/flow_runs/{run_id}/states").json()
        return result

    def stamp(self, run_id: str, state: str) -> float | None:
        for item in self.history(run_id):
            if item["state"]["type"] == state:
                return _ts(item["timestamp"])
        return None

    def wait_state(self, run_id: str, states: set[str], timeout: float, interval: float = 0.02) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.run(run_id)["state"]["type"])
            if state in states or time.monotonic() > deadline:
                return state
            time.sleep(interval)


def bench_runwright(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rw-bench-orch-") as tmp_name:
        rw = Runwright(Path(tmp_name))
        try:
            rw.deploy("trivial")
            rw.start_agent("--name", "bench")
            time.sleep(8)  # registered, in its long poll, its launcher ready (on a loaded machine)
            # deployments run -> Running
            delays = []
            for _ in range(5):
                run_id = rw.run_now("trivial")
                rw.wait_state(run_id, FINISHED, 60)
                created, running = _ts(rw.run(run_id)["created"]), rw.stamp(run_id, "Running")
                assert running is not None
                delays.append(running - created)
                time.sleep(0.5)
            out["run_to_running"] = delays
            log(f"runwright: deployments run -> Running {[round(d, 3) for d in delays]}")
            # a run's logs on the server when its final state is written
            run_id = rw.run_now("trivial", lines=LOG_LINES)
            rw.wait_state(run_id, FINISHED, 60, interval=0.005)
            records = rw.session.get(f"{rw.api}/flow_runs/{run_id}/logs", params={"limit": 10000}).json()
            out["logs_at_final"] = sum(r["message"].startswith("bench line ") for r in records)
            log(f"runwright: {out['logs_at_final']} of {LOG_LINES} log lines on the server at the final state")
            # cancel during a long task body
            gone_times, cancelled_times = [], []
            for _ in range(3):
                run_id = rw.run_now("trivial", seconds=120)
                rw.wait_state(run_id, {"Running"}, 60)
                time.sleep(1.0)  # inside the task body
                pid = int(rw.run(run_id)["lease_holder"].rpartition(":")[2])
                started = time.monotonic()
                rw.session.post(f"{rw.api}/flow_runs/{run_id}/cancel").raise_for_status()
                gone = cancelled = None
                while gone is None or cancelled is None:
                    if gone is None and not _alive(pid):
                        gone = time.monotonic() - started
                    if cancelled is None and rw.run(run_id)["state"]["type"] == "Cancelled":
                        cancelled = time.monotonic() - started
                    if time.monotonic() - started > 30:
                        break
                    time.sleep(0.005)
                gone_times.append(gone)
                cancelled_times.append(cancelled)
            out["cancel_gone"], out["cancel_cancelled"] = gone_times, cancelled_times
            log(f"runwright: cancel -> gone {gone_times}, Cancelled {cancelled_times}")
            # idle CPU with 10 agents
            for i in range(9):
                rw.start_agent("--name", f"idle-{i}")
            time.sleep(8)  # all registered and waiting
            pid = rw.server.proc.pid  # type: ignore[union-attr]
            cpu0, wall0 = _cpu_seconds(pid), time.monotonic()
            time.sleep(args.idle_seconds)
            out["idle_cpu"] = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
            log(f"runwright: server CPU with 10 idle agents {out['idle_cpu']:.2%}")
            rw.stop_agents()
            # burst of runs, one agent --limit 4
            rw.start_agent("--name", "burst", "--limit", "4")
            time.sleep(3)
            ids = [rw.run_now("trivial") for _ in range(args.runs)]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                states = [r["state"]["type"] for r in rw.session.get(f"{rw.api}/flow_runs", params={"limit": 1000}).json() if r["id"] in set(ids)]
                if len(states) == len(ids) and all(s in FINISHED for s in states):
                    break
                time.sleep(0.5)
            first = min(_ts(rw.run(i)["created"]) for i in ids[:1])
            last = max(_ts(rw.history(i)[-1]["timestamp"]) for i in ids)
            not_success = sum(rw.run(i)["state"]["type"] != "Success" for i in ids)
            out["burst_seconds"], out["burst_not_success"] = last - first, not_success
            log(f"runwright: {args.runs} runs with --limit 4 in {last - first:.1f} s ({not_success} not Success)")
            rw.stop_agents()
            # lateness of scheduled runs (the server's scheduler, interval 1 s)
            rw.start_agent("--name", "scheduled")
            time.sleep(3)
            from datetime import timedelta

            from runwright.schedules import IntervalSchedule

            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            rw.deploy("every-second", IntervalSchedule(start, timedelta(seconds=1)).serialize())
            time.sleep(args.scheduled + 6)
            rw.session.post(f"{rw.api}/deployments/every-second/pause")
            runs = rw.session.get(f"{rw.api}/flow_runs", params={"limit": 1000}).json()
            lateness = []
            for r in runs:
                if r["flow_name"] == "bench-orchestration" and r.get("state", {}).get("type") in FINISHED:
                    running = rw.stamp(r["id"], "Running")
                    if running is not None and _ts(r["scheduled_start_time"]) >= start.timestamp():
                        lateness.append(running - _ts(r["scheduled_start_time"]))
            out["lateness"] = sorted(lateness)
            log(f"runwright: lateness of {len(lateness)} scheduled runs, p50 {_pct(lateness, 50):.3f} s")
        finally:
            rw.close()
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def _fmt(values: list[float | None] | None, how: str) -> str:
    if not values:
        return "-"
    clean = [v for v in values if v is not None]
    if len(clean) != len(values):
        return "timed out"
    if how == "median/max":
        return f"{statistics.median(clean):.2f} / {max(clean):.2f} s"
    if how == "p50/p95":
        return f"{_pct(clean, 50):.2f} / {_pct(clean, 95):.2f} s (n={len(clean)})"
    return f"{max(clean):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="runwright,prefect3")
    parser.add_argument("--runs", type=int, default=100, help="runs of the burst (default 100)")
    parser.add_argument("--prefect-runs", type=int, default=50, help="runs of Prefect 3's burst (default 50, as in the issue)")
    parser.add_argument("--scheduled", type=int, default=25, help="scheduled runs for the lateness (default 25)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    engines = args.engines.split(",")
    results: dict[str, dict[str, Any]] = {}
    if "runwright" in engines:
        results["runwright"] = bench_runwright(args)
    if "prefect3" in engines:
        from _orchestration_prefect3 import bench_prefect3

        results["prefect3"] = bench_prefect3(args)
    rows = []
    measures = [
        ("lateness p50 / p95 (target 0.2 / 0.5 s)", "lateness", "p50/p95"),
        ("deployments run -> Running, median / max (target 0.5 s)", "run_to_running", "median/max"),
        ("cancel -> process gone, max (target 1 s)", "cancel_gone", "max"),
        ("cancel -> Cancelled, max (target 1.5 s)", "cancel_cancelled", "max"),
    ]
    for title, key, how in measures:
        rows.append([title, *[_fmt(results[e].get(key), how) for e in results]])
    rows.append(
        [
            f"{args.runs} runs at once (Prefect 3: {args.prefect_runs}), --limit 4: all finished (target 30 s)",
            *[
                f"{results[e]['burst_seconds']:.1f} s ({results[e]['burst_not_success']} not Success)"
                if "burst_seconds" in results[e]
                else results[e].get("error", "-")
                for e in results
            ],
        ]
    )
    rows.append(
        [
            f"log lines on the server when the final state is seen (of {LOG_LINES}; target all)",
            *[str(results[e]["logs_at_final"]) if "logs_at_final" in results[e] else "-" for e in results],
        ]
    )
    rows.append(
        ["server CPU, 10 idle agents (target < 5 %)", *[f"{results[e]['idle_cpu']:.1%}" if "idle_cpu" in results[e] else "-" for e in results]]
    )
    print_table(["measure", *results], rows)
    for engine, result in results.items():
        if "error" in result:
            print(f"{engine}: stopped early: {result['error']}")


if __name__ == "__main__":
    main()
