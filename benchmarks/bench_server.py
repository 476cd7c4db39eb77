"""Benchmark: task-run state writes per second on the runwright server vs Prefect 3's server.

    .venv/bin/python benchmarks/bench_server.py                       # both, 2,000 writes each
    .venv/bin/python benchmarks/bench_server.py --engines runwright --writes 4000
    .venv/bin/python benchmarks/bench_server.py --engines runwright --py-spy /tmp/rw.svg  # profile it (.txt: collapsed stacks)

Both servers run on 127.0.0.1 on a free port with a fresh SQLite file in a temp dir, one
process each, started and stopped by this script (by PID). The work is the same on both:
``writes / 2`` task runs of one flow run, each taken Pending -> Running -> Completed (runwright:
``Success``), i.e. two state writes per task run; task runs are created before the clock
starts. Every mode is bounded by ``--writes`` and by ``--time-limit`` seconds (a mode that hits
the limit reports the writes it finished).

runwright (this venv, ``requests`` sessions, keep-alive):

- ``sequential``: one client, ``POST /api/v1/task_runs/{id}/state`` with the expected version;
- ``4 threads``: four clients, each its own session and its own task runs;
- ``batched``: ``POST /api/v1/task_run_states`` with ``--batch`` writes per request.

Prefect 3 (``prefect server start`` from its own venv under ``benchmarks/.venvs/prefect3``,
created on first use; temp ``PREFECT_HOME`` and SQLite DB; UI and telemetry off):

- ``REST set_state``: ``SyncPrefectClient.set_task_run_state`` (``POST
  /api/task_runs/{id}/set_state``, orchestrated and synchronous: the counterpart of ours),
  one client, then four threads with one client each;
- ``events (engine path)``: what Prefect 3's task engine does: it builds the task run
  locally and emits one ``prefect.task-run.<State>`` event per transition (Pending,
  Running, Completed) through its events worker (one websocket); the server's task-run
  recorder persists them. Timed from the first emit until the server reports every task
  run Completed (the client-side emit time is shown apart). Counted as 2 writes per task
  run like the others, although 3 events are sent.

Figures come from one run: expect noise of 10-20 % on a 2-core machine where client and
server share the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engines import ensure_venv, log, print_table  # noqa: E402

PREFECT_REQUIREMENT = "prefect>=3,<4"
THREADS = 4


# ----------------------------------------------------------------------------- runwright


def _timed(limit: float, work: Callable[[float], int]) -> dict[str, Any]:
    started = time.perf_counter()
    done = work(started + limit)
    elapsed = time.perf_counter() - started
    return {"writes": done, "seconds": elapsed, "per_s": done / elapsed if elapsed else 0.0}


def _write_pair(session: requests.Session, api: str, task_run_id: str) -> int:
    for version, kind in ((0, "Running"), (1, "Success")):
        r = session.post(f"{api}/task_runs/{task_run_id}/state", json={"version": version, "state": {"type": kind}})
        if r.status_code != 200 or r.json()["version"] != version + 1:
            raise RuntimeError(f"state write failed: {r.status_code} {r.text[:200]}")
    return 2


def bench_runwright(writes: int, batch: int, limit: float, py_spy: str | None) -> dict[str, dict[str, Any]]:
    from runwright_server import migrate
    from runwright_server.auth import create_token
    from runwright_server.db import make_engine
    from runwright_server.testing import ServerProcess

    n_runs = max(1, writes // 2)
    with tempfile.TemporaryDirectory(prefix="rw-bench-server-") as tmp:
        db_url = f"sqlite:///{tmp}/server.db"
        engine = make_engine(db_url)
        migrate.upgrade(engine)
        token = create_token(engine, "bench")
        engine.dispose()
        proc = ServerProcess(db_url).start()
        api = proc.url + "/api/v1"
        spy: subprocess.Popen[bytes] | None = None
        try:
            with requests.Session() as s:
                s.headers["Authorization"] = f"Bearer {token}"
                tasks = [{"slug": f"t{i}", "name": f"t{i}"} for i in range(n_runs)]
                r = s.post(f"{api}/flows", json={"name": "bench-server", "tasks": tasks, "edges": []})
                r.raise_for_status()
                flow_id = r.json()["id"]

                def fresh_task_runs() -> list[str]:
                    r = s.post(f"{api}/flow_runs", json={"flow_id": flow_id})
                    r.raise_for_status()
                    r = s.get(f"{api}/flow_runs/{r.json()['id']}/task_runs")
                    r.raise_for_status()
                    return [tr["id"] for tr in r.json()]

                # warm-up (connections, caches, SQLite pages): not timed
                for tr_id in fresh_task_runs()[:50]:
                    _write_pair(s, api, tr_id)

                results: dict[str, dict[str, Any]] = {}
                ids = fresh_task_runs()
                if py_spy and proc.proc is not None:  # sample the server (all threads) from here on
                    fmt = "raw" if py_spy.endswith(".txt") else "flamegraph"  # raw: collapsed stacks
                    spy = subprocess.Popen(["py-spy", "record", "-p", str(proc.proc.pid), "-o", py_spy, "-f", fmt, "-r", "200"])
                    time.sleep(1.0)

                def sequential(deadline: float) -> int:
                    done = 0
                    for tr_id in ids:
                        if time.perf_counter() > deadline:
                            break
                        done += _write_pair(s, api, tr_id)
                    return done

                results["sequential"] = _timed(limit, sequential)
                log(f"runwright sequential: {results['sequential']['per_s']:.0f}/s")

                ids = fresh_task_runs()

                def threaded(deadline: float) -> int:
                    counts = [0] * THREADS
                    errors: list[BaseException] = []

                    def worker(n: int) -> None:
                        with requests.Session() as ts:
                            ts.headers["Authorization"] = f"Bearer {token}"
                            try:
                                for tr_id in ids[n::THREADS]:
                                    if time.perf_counter() > deadline:
                                        break
                                    counts[n] += _write_pair(ts, api, tr_id)
                            except BaseException as exc:  # reported below
                                errors.append(exc)

                    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(limit + 30)
                    if errors:
                        raise errors[0]
                    return sum(counts)

                results["4 threads"] = _timed(limit, threaded)
                log(f"runwright 4 threads: {results['4 threads']['per_s']:.0f}/s")

                ids = fresh_task_runs()

                def batched(deadline: float) -> int:
                    done = 0
                    pairs = max(1, batch // 2)
                    for start in range(0, len(ids), pairs):
                        if time.perf_counter() > deadline:
                            break
                        chunk = ids[start : start + pairs]
                        body = [{"task_run_id": i, "version": 0, "state": {"type": "Running"}} for i in chunk]
                        body += [{"task_run_id": i, "version": 1, "state": {"type": "Success"}} for i in chunk]
                        r = s.post(f"{api}/task_run_states", json={"writes": body})
                        r.raise_for_status()
                        if any(item["status"] != "ok" for item in r.json()["results"]):
                            raise RuntimeError("a batched write was not applied")
                        done += len(body)
                    return done

                results[f"batched ({batch}/request)"] = _timed(limit, batched)
                log(f"runwright batched: {results[f'batched ({batch}/request)']['per_s']:.0f}/s")
                return results
        finally:
            if spy is not None and spy.poll() is None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait(10)
            proc.stop()


# ----------------------------------------------------------------------------- Prefect 3

PREFECT_CLIENT = textwrap.dedent(
    '''
    """Runs inside the Prefect 3 venv against a running `prefect server start`."""
    import json, sys, threading, time, uuid
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import TaskRun
    from prefect.events.worker import EventsWorker
    from prefect.states import Completed, Pending, Running
    from prefect.utilities.engine import emit_task_run_state_change_event

    mode, n_runs, threads, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    api = __import__("os").environ["PREFECT_API_URL"]
    http = httpx.Client(base_url=api, timeout=60)

    def post(path, body):
        for attempt in range(10):  # like Prefect's client: retry 503 (SQLite busy) with backoff
            r = http.post(path, json=body)
            if r.status_code != 503:
                break
            time.sleep(0.1 * 2 ** min(attempt, 4))
        r.raise_for_status()
        return r.json()

    flow_id = post("/flows/", {"name": "bench-server"})["id"]
    flow_run = post("/flow_runs/", {"flow_id": flow_id, "state": {"type": "RUNNING", "name": "Running"}})

    def completed_count(ids):
        body = {"task_runs": {"id": {"any_": [str(i) for i in ids]}, "state": {"type": {"any_": ["COMPLETED"]}}}}
        return post("/task_runs/count", body)

    result = {}
    if mode == "rest":
        ids = [
            post("/task_runs/", {"flow_run_id": flow_run["id"], "task_key": "t", "dynamic_key": str(i),
                                 "name": f"t-{i}", "state": {"type": "PENDING", "name": "Pending"}})["id"]
            for i in range(n_runs)
        ]
        counts, errors = [0] * threads, []

        def worker(n, deadline):
            try:
                with get_client(sync_client=True) as client:
                    for tr_id in ids[n::threads]:
                        if time.perf_counter() > deadline:
                            break
                        for state in (Running(), Completed()):
                            out = client.set_task_run_state(uuid.UUID(tr_id), state)
                            if out.status.value != "ACCEPT":
                                raise RuntimeError(f"state not accepted: {out.status} {out.details}")
                            counts[n] += 1
            except BaseException as exc:
                errors.append(repr(exc))

        started = time.perf_counter()
        pool = [threading.Thread(target=worker, args=(n, started + limit)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(limit + 60)
        elapsed = time.perf_counter() - started
        if errors:
            raise SystemExit(errors[0])
        result = {"writes": sum(counts), "seconds": elapsed, "persisted": completed_count(ids)}
    else:
        runs = [TaskRun(flow_run_id=flow_run["id"], task_key="t", dynamic_key=str(i), name=f"t-{i}",
                        state=Pending()) for i in range(n_runs)]

        def emit_all(chunk, deadline):
            for tr in chunk:
                if time.perf_counter() > deadline:
                    break
                last, event = tr.state, None
                last.state_details.task_run_id, last.state_details.flow_run_id = tr.id, tr.flow_run_id
                event = emit_task_run_state_change_event(task_run=tr, initial_state=None, validated_state=last)
                for state in (Running(), Completed()):
                    state.state_details.task_run_id, state.state_details.flow_run_id = tr.id, tr.flow_run_id
                    tr.state = state
                    tr.state_type, tr.state_name = state.type, state.name
                    event = emit_task_run_state_change_event(task_run=tr, initial_state=last, validated_state=state, follows=event)
                    last = state

        started = time.perf_counter()
        deadline = started + limit
        pool = [threading.Thread(target=emit_all, args=(runs[n::threads], deadline)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(limit + 60)
        EventsWorker.drain_all(timeout=limit, at_exit=False)
        emitted = time.perf_counter() - started
        ids = [tr.id for tr in runs]
        persisted = completed_count(ids)
        while persisted < n_runs and time.perf_counter() < deadline:
            time.sleep(0.1)
            persisted = completed_count(ids)
        elapsed = time.perf_counter() - started
        result = {"writes": 2 * persisted, "seconds": elapsed, "emit_seconds": emitted, "persisted": persisted}
    result["per_s"] = result["writes"] / result["seconds"]
    print(json.dumps(result))
    '''
)


@contextlib.contextmanager
def prefect_server(python: Path, tmp: Path, timeout: float = 90.0) -> Iterator[str]:
    from runwright_server.testing import free_port

    port = free_port()
    home = tmp / "prefect-home"
    home.mkdir()
    env = dict(
        os.environ,
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
    )
    env.pop("PREFECT_API_URL", None)
    prefect = python.parent / "prefect"
    with open(tmp / "prefect-server.log", "wb") as out:
        # its own session: `prefect server start` runs uvicorn in a child, stopped with it
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode}: see {tmp / 'prefect-server.log'}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not become healthy in time")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group led by the process we started
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def bench_prefect3(writes: int, limit: float) -> tuple[dict[str, dict[str, Any]], str]:
    python, why = ensure_venv("prefect3", PREFECT_REQUIREMENT)
    if python is None:
        return {}, why
    version = subprocess.run(
        [str(python), "-c", "import prefect; print(prefect.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    n_runs = max(1, writes // 2)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rw-bench-prefect3-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "prefect_client.py"
        script.write_text(PREFECT_CLIENT)
        for label, mode, threads in [
            ("REST set_state, sequential", "rest", 1),
            ("REST set_state, 4 threads", "rest", THREADS),
            ("events (engine path), 4 threads", "events", THREADS),
        ]:
            run_dir = tmp / mode / str(threads)
            run_dir.mkdir(parents=True)
            with prefect_server(python, run_dir) as url:  # a fresh server and DB per mode
                env = dict(os.environ, PREFECT_API_URL=url, PREFECT_HOME=str(run_dir / "prefect-home"))
                env["PREFECT_LOGGING_LEVEL"] = "WARNING"
                try:
                    proc = subprocess.run(
                        [str(python), str(script), mode, str(n_runs), str(threads), str(limit)],
                        capture_output=True,
                        text=True,
                        timeout=limit + 240,
                        env=env,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    results[label] = {"error": "timed out"}
                    continue
                lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
                if proc.returncode != 0 or not lines:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
                    results[label] = {"error": f"exit {proc.returncode}: {tail[0][:160]}"}
                else:
                    results[label] = json.loads(lines[-1])
                log(f"prefect3 {label}: {results[label]}")
    return results, f"Prefect {version}"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=2000, help="state writes per mode (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="writes per POST /task_run_states (100)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per mode at most (60)")
    parser.add_argument("--engines", default="runwright,prefect3", help="comma-separated: runwright,prefect3")
    parser.add_argument("--py-spy", default=None, help="record the runwright server with py-spy (on PATH) to this file")
    args = parser.parse_args(argv)
    engines = {e.strip() for e in args.engines.split(",") if e.strip()}

    rows: list[tuple[str, str, dict[str, Any]]] = []
    if "runwright" in engines:
        for mode, res in bench_runwright(args.writes, args.batch, args.time_limit, args.py_spy).items():
            rows.append(("runwright", mode, res))
    if "prefect3" in engines:
        results, name = bench_prefect3(args.writes, args.time_limit)
        if not results:
            log(f"Prefect 3 skipped: {name}")
        for mode, res in results.items():
            rows.append((name, mode, res))

    base = next((r[2]["per_s"] for r in rows if r[0] == "runwright" and r[1] == "sequential"), None)
    table = []
    for engine, mode, res in rows:
        if "error" in res:
            table.append([engine, mode, "-", "-", "-", res["error"]])
            continue
        note = f"emitted in {res['emit_seconds']:.2f} s" if "emit_seconds" in res else ""
        ratio = f"{res['per_s'] / base:.2f}x" if base else "-"
        table.append([engine, mode, res["writes"], f"{res['seconds']:.2f}", f"{res['per_s']:.0f}", ratio + (f"  {note}" if note else "")])
    print(f"\ntask-run state writes, {args.writes} per mode, SQLite, loopback, one run (ratio: vs runwright sequential)\n")
    print_table(["engine", "mode", "writes", "seconds", "writes/s", "ratio"], table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
