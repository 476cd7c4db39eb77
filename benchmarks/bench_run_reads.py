"""Reads of run control on a server holding many runs: the flow-run filters, the flows by
name, and a run's logs after an id, each timed over HTTP (minimum of several requests).

    python benchmarks/bench_run_reads.py [--runs 100000] [--logs 100000]

The database (SQLite, in a temp dir) is filled with plain inserts: ``--runs`` flow runs of 3
flows (1 % of them Failed, 1 % of them of one deployment) and ``--logs`` log records of one
run, then a real server process answers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import insert

from runwright_server import migrate, models
from runwright_server.auth import create_token
from runwright_server.db import make_engine
from runwright_server.testing import ServerProcess


def fill(db_url: str, runs: int, logs: int) -> tuple[str, str]:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    token = create_token(engine, "bench", tenant="bench")
    with engine.begin() as conn:
        tenant = conn.execute(models.tenants.select()).mappings().one()["id"]
        now = datetime(2026, 1, 1)
        flow_ids = [str(uuid.uuid4()) for _ in range(3)]
        conn.execute(insert(models.flows), [
            {"id": fid, "tenant_id": tenant, "name": f"flow-{i}", "version": None, "content_hash": f"{i:064d}",
             "tasks": '[{"slug":"a","name":"a"}]', "edges": "[]", "created": now}
            for i, fid in enumerate(flow_ids)
        ])
        deployment = str(uuid.uuid4())
        conn.execute(insert(models.deployments), [{
            "id": deployment, "tenant_id": tenant, "name": "nightly", "flow_id": flow_ids[0], "flow_name": "flow-0",
            "storage": "server", "storage_ref": "{}", "schedule": None, "parameters": "{}", "queue": "default",
            "executor": None, "concurrency_limit": None, "paused": False, "spec_hash": "0" * 64, "version": 1,
            "scheduled_until": None, "created": now, "updated": now}])
        rows = []
        for i in range(runs):
            failed = i % 100 == 7
            state = "Failed" if failed else "Success"
            rows.append({
                "id": str(uuid.uuid4()), "tenant_id": tenant, "flow_id": flow_ids[i % 3], "parameters": "{}",
                "context": "{}", "scheduled_start_time": now, "state": f'{{"type":"{state}"}}', "state_type": state,
                "version": 3, "heartbeat": None, "created": now + timedelta(seconds=i), "updated": now,
                "deployment_id": deployment if i % 100 == 3 else None,
            })
        conn.execute(insert(models.flow_runs), rows)
        target = rows[-1]["id"]
        conn.execute(insert(models.logs), [
            {"tenant_id": tenant, "flow_run_id": target, "task_run_id": None, "timestamp": now,
             "level": "INFO" if i % 10 else "ERROR", "name": "runwright.Task: a", "message": f"record {i}"}
            for i in range(logs)
        ])
    engine.dispose()
    return token, target


def timed(session: requests.Session, url: str, params: dict[str, object], repeat: int = 7) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.get(url, params=params)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        count = len(response.json())
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        token, target = fill(db_url, args.runs, args.logs)
        server = ServerProcess(db_url).start()
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            api = server.url + "/api/v1"
            cases = [
                ("GET /flow_runs (newest 100)", "/flow_runs", {}),
                ("GET /flow_runs?flow=flow-1", "/flow_runs", {"flow": "flow-1"}),
                ("GET /flow_runs?state=Failed", "/flow_runs", {"state": "Failed"}),
                ("GET /flow_runs?deployment=nightly", "/flow_runs", {"deployment": "nightly"}),
                ("GET /flow_runs?flow=flow-1&state=Failed", "/flow_runs", {"flow": "flow-1", "state": "Failed"}),
                ("GET /flows/summary", "/flows/summary", {}),
                ("GET logs?after_id=90000 (1000)", f"/flow_runs/{target}/logs", {"after_id": args.logs * 9 // 10}),
                ("GET logs?level=ERROR (1000)", f"/flow_runs/{target}/logs", {"level": "ERROR"}),
            ]
            print(f"{args.runs:,} flow runs, {args.logs:,} log records of one run (SQLite); minimum of 7 requests")
            for label, path, params in cases:
                best, count = timed(session, api + path, params)
                print(f"  {label:45} {best * 1000:7.1f} ms  ({count} items)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
