"""Load: 20 concurrent flow runs of 500 tasks each (thread-pool executor) against one server
on SQLite. Afterwards every task run is finished, every state history has contiguous
versions, and no state write was lost or applied twice.

Prints runs/s and state writes/s (``pytest -s tests/reliability/test_reliability_load.py``).
"""

from __future__ import annotations

import runpy
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path

from .conftest import LiveServer, Processes, json_summary, no_traceback, stored_value

RUNS = 20
CHAINS = 25
CHAIN_LENGTH = 20  # 25 chains x 20 tasks = 500 tasks per flow run

FLOW = f'''
from runwright import Flow, Task, task


class Seed(Task):
    def __init__(self, value, **kwargs):
        self.value = value
        super().__init__(**kwargs)

    def run(self):
        return self.value


@task
def step(x):
    return (x * 31 + 7) % 1000003


with Flow("load") as flow:
    for chain in range({CHAINS}):
        x = Seed(chain, name=f"seed{{chain}}")()
        for _ in range({CHAIN_LENGTH - 1}):
            x = step(x)
'''


def expected_chain_end(seed: int) -> int:
    x = seed
    for _ in range(CHAIN_LENGTH - 1):
        x = (x * 31 + 7) % 1000003
    return x


def test_twenty_concurrent_runs_of_500_tasks_lose_no_state_write(live_server: LiveServer, processes: Processes, tmp_path: Path) -> None:
    flow_file = tmp_path / "load_flow.py"
    flow_file.write_text(FLOW)
    flow = runpy.run_path(str(flow_file))["flow"]
    assert len(flow.tasks) == CHAINS * CHAIN_LENGTH == 500
    client = live_server.a.client(live_server.url)
    structure = flow.structure()
    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
    run_ids = [client.create_flow_run(flow_id) for _ in range(RUNS)]

    env = processes.env(live_server, RUNWRIGHT__ENGINE__THREADS="8")
    started = time.monotonic()
    procs = [processes.start(["run", str(flow_file), "--flow-run-id", rid, "--executor", "threads", "--json"], env) for rid in run_ids]
    outputs = [processes.wait(p, timeout=400) for p in procs]
    elapsed = time.monotonic() - started
    for proc, (out, err) in zip(procs, outputs, strict=True):
        no_traceback(err)
        assert proc.returncode == 0, err[-4000:]
        assert json_summary(out)["state"] == "Success"

    # What a user sees through the API: every flow run Success, every task run finished.
    for rid in run_ids:
        info = client.get_flow_run_info(rid)
        assert type(info.state).__name__ == "Success"
        assert [h["version"] for h in client.get_flow_run_states(rid)] == list(range(info.version + 1))
        task_runs = client.get_flow_run_task_runs(rid)
        assert len(task_runs) == 500
        assert Counter(type(t.state).__name__ for t in task_runs) == {"Success": 500}
    # Spot-check stored results: the last task of each chain holds the right value.
    last_run = client.get_flow_run_task_runs(run_ids[-1])
    by_slug = {t.task_slug: t for t in last_run}
    ends = list(flow.terminal_tasks())
    assert len(ends) == CHAINS
    values = sorted(stored_value(client, by_slug[t.slug].state) for t in ends)
    assert values == sorted(expected_chain_end(c) for c in range(CHAINS))

    # Every history, straight from the database: contiguous versions 0..n, one row per
    # version (nothing applied twice), and exactly Pending -> Running -> Success per task run
    # (nothing lost).
    db = sqlite3.connect(f"file:{live_server.db_path}?mode=ro", uri=True)
    try:
        histories = _histories(db, "task_run", run_ids)
        flow_histories = _histories(db, "flow_run", run_ids)
    finally:
        db.close()
    assert len(histories) == RUNS * 500
    for key, rows in histories.items():
        assert [v for v, _ in rows] == [0, 1, 2], key
        assert [t for _, t in rows] == ["Pending", "Running", "Success"], key
    for key, rows in flow_histories.items():
        assert [v for v, _ in rows] == list(range(len(rows))), key
        assert [t for _, t in rows][-2:] == ["Running", "Success"], key
    writes = sum(len(rows) - 1 for rows in histories.values()) + sum(len(rows) - 1 for rows in flow_histories.values())
    assert writes == RUNS * (500 * 2 + 2)
    print(
        f"\nload: {RUNS} runs x 500 tasks in {elapsed:.1f} s: {RUNS / elapsed:.2f} runs/s, "
        f"{writes / elapsed:.0f} state writes/s, {RUNS * 500 / elapsed:.0f} task runs/s"
    )


def _histories(db: sqlite3.Connection, kind: str, run_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
    """``{run id: [(version, state type), ...]}`` ordered by version, for the given flow runs."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    marks = ",".join("?" * len(run_ids))
    if kind == "task_run":
        assert {"task_runs", "task_run_states"} <= tables, tables
        query = (
            "SELECT s.task_run_id, s.version, s.state_type FROM task_run_states s JOIN task_runs t ON t.id = s.task_run_id "
            f"WHERE t.flow_run_id IN ({marks}) ORDER BY s.task_run_id, s.version"
        )
    else:
        assert "flow_run_states" in tables, tables
        query = f"SELECT flow_run_id, version, state_type FROM flow_run_states WHERE flow_run_id IN ({marks}) ORDER BY flow_run_id, version"
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key, version, state_type in db.execute(query, run_ids):
        found[str(key)].append((int(version), str(state_type)))
    return dict(found)
