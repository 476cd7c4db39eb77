"""Bad input end to end through the CLI: malformed flow files and arguments, corrupt or
truncated result files, a corrupt cache database, results damaged on the server. Each is a
clear error (one line, exit code 1 or 2, no traceback) or a documented recovery, never
silent data loss.

Covered elsewhere and not repeated here (see docs/reliability.md): schemathesis against the
server (plugins/runwright-cloud/tests/test_schemathesis.py), 422s for malformed API bodies
(plugins/runwright-cloud/tests/test_api.py::test_malformed_input_is_422), flow files without
flows or with syntax errors (tests/core/test_cli.py), damaged local result files at the
handler level (plugins/runwright-local/tests/test_local_handler.py::
test_a_damaged_file_is_reported_never_unpickled), corrupt cache databases in process
(plugins/runwright-cache/tests/test_cache_flows.py::test_a_corrupt_database_is_a_warning_and_a_miss).
"""

from __future__ import annotations

import os
import runpy
import sqlite3
from pathlib import Path

import pytest

from .conftest import LiveServer, Processes, json_summary, no_traceback

GOOD_FLOW = '''
from runwright import Flow, Parameter, task


@task
def double(n):
    return 2 * n


with Flow("good") as flow:
    double(Parameter("n", default=2))
'''


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from runwright import Flow\nflow = Flow('x'\n", "not valid Python"),
        ("raise RuntimeError('boom at import')\n", "boom at import"),
        ("import sys\nsys.exit(3)\n", ""),
        ("from runwright import Flow\nflow = 42\n", "defines no Flow"),
        ("from runwright import Flow\na = Flow('a')\nb = Flow('b')\n", "--flow"),
        ("\x00\x01\x02 binary junk \xff", ""),
        ("from runwright import Flow, task\n@task\ndef t():\n    return 1\nwith Flow('c') as flow:\n    x = t()\n    x.set_upstream(x)\n", ""),
    ],
    ids=["syntax", "raises", "sys-exit", "no-flow", "two-flows", "binary", "self-cycle"],
)
def test_a_malformed_flow_file_is_a_one_line_error(processes: Processes, tmp_path: Path, source: str, expected: str) -> None:
    path = tmp_path / "bad_flow.py"
    path.write_bytes(source.encode("utf-8", "surrogateescape") if "\xff" not in source else source.encode("latin-1"))
    done = processes.run(["run", str(path)], processes.env())
    no_traceback(done.stderr + done.stdout)
    assert done.returncode != 0, done
    assert done.stderr.strip(), "no explanation"
    assert expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3, done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "{flow}", "--param", "n"], "KEY=VALUE"),
        (["run", "{flow}", "--param", "nope=1"], "nope"),
        (["run", "{flow}", "--executor", "warp-drive"], "warp-drive"),
        (["run", "{flow}", "--backend", "moon"], "moon"),
        (["run", "{flow}", "--flow", "other"], "other"),
        (["run", "{dir}/missing.py"], "missing.py"),
        (["run", "{dir}"], ""),
        (["run"], "PATH"),
        (["run", "{flow}", "--no-such-option"], "no-such-option"),
        (["runs", "show", "not-a-uuid"], ""),
        (["runs", "--limit", "-5"], ""),
        (["runs", "--limit", "many"], "many"),
        (["run", "{flow}", "--flow-run-id", "00000000-0000-0000-0000-000000000000", "--json"], "not found"),
    ],
)
def test_bad_cli_arguments_are_one_line_errors(
    live_server: LiveServer, processes: Processes, tmp_path: Path, args: list[str], expected: str
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(GOOD_FLOW)
    argv = [a.format(flow=flow, dir=tmp_path) for a in args]
    done = processes.run(argv, processes.env(live_server))
    no_traceback(done.stderr + done.stdout)
    assert done.returncode in (1, 2), (argv, done.returncode, done.stderr)
    assert expected.lower() in (done.stderr + done.stdout).lower(), (argv, done.stdout, done.stderr)


def test_a_task_message_that_looks_like_markup_is_printed_not_crashed_on(processes: Processes, tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        "from runwright import Flow, task\n@task(name='[bold]t[/x]')\ndef t():\n    raise ValueError('closing tag [/x] here')\n"
        "with Flow('markup') as flow:\n    t()\n"
    )
    done = processes.run(["run", str(path)], processes.env())
    no_traceback(done.stderr + done.stdout)
    assert done.returncode == 1
    assert "[/x]" in done.stdout and "closing tag" in done.stdout


# ------------------------------------------------------------------ damaged results

CHECKPOINT_FLOW = '''
import os
from pathlib import Path

from runwright import Flow, task


@task(checkpoint=True, cache_for=__import__("datetime").timedelta(hours=1))
def produce():
    with open(Path(os.environ["RW_MARKS"]) / "produce.count", "a") as f:
        f.write("x\\n")
    return {"rows": 41}


@task
def consume(data):
    return data["rows"] + 1


with Flow("damaged") as flow:
    consume(produce())
'''


def _local_env(processes: Processes, tmp_path: Path) -> dict[str, str]:
    return processes.env(
        RW_MARKS=str(tmp_path),
        RUNWRIGHT__ENGINE__RESULT_HANDLER="local",
        RUNWRIGHT__PLUGINS__LOCAL__DIR=str(tmp_path / "results"),
        RUNWRIGHT__PLUGINS__CACHE__PATH=str(tmp_path / "cache.db"),
    )


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "delete"])
def test_a_damaged_cached_result_file_is_a_miss_and_the_task_runs_again(
    processes: Processes, tmp_path: Path, damage: str
) -> None:
    """The persistent cache points at a result file that was then damaged: the next run
    notices (checksum), says so, re-runs the task and gets the right answer."""
    path = tmp_path / "flow.py"
    path.write_text(CHECKPOINT_FLOW)
    env = _local_env(processes, tmp_path)
    first = processes.run(["run", str(path), "--json"], env)
    assert first.returncode == 0, first.stderr
    (result_file,) = (tmp_path / "results").rglob("*.rwr")
    data = result_file.read_bytes()
    if damage == "truncate":
        result_file.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        result_file.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    elif damage == "empty":
        result_file.write_bytes(b"")
    else:
        result_file.unlink()
    second = processes.run(["run", str(path), "--json"], env)
    no_traceback(second.stderr)
    assert second.returncode == 0, second.stderr
    summary = json_summary(second.stdout)
    assert summary["state"] == "Success"
    assert (tmp_path / "produce.count").read_text().count("x") == 2  # recomputed, not served damaged
    assert "could not be read" in second.stderr, second.stderr  # and the user is told why


def test_a_corrupt_cache_database_is_a_warning_then_cache_clear_recovers(processes: Processes, tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(CHECKPOINT_FLOW)
    env = _local_env(processes, tmp_path)
    (tmp_path / "cache.db").write_bytes(b"definitely not sqlite " * 200)
    for _ in range(2):
        done = processes.run(["run", str(path), "--json"], env)
        no_traceback(done.stderr)
        assert done.returncode == 0, done.stderr
        assert "runwright cache clear" in done.stderr, done.stderr
    listing = processes.run(["cache", "list"], env)
    no_traceback(listing.stderr)
    assert listing.returncode == 1 and "runwright cache clear" in listing.stderr, (listing.stdout, listing.stderr)
    cleared = processes.run(["cache", "clear"], env)
    assert cleared.returncode == 0, cleared.stderr
    for _ in range(2):
        assert processes.run(["run", str(path), "--json"], env).returncode == 0
    assert (tmp_path / "produce.count").read_text().count("x") == 3  # cached again after the clear


def test_a_result_damaged_on_the_server_fails_the_resumed_reader_clearly(
    live_server: LiveServer, processes: Processes, tmp_path: Path
) -> None:
    """A resumed run whose upstream result was damaged in the server's database: the reading
    task fails naming the URI; nothing is silently substituted."""
    path = tmp_path / "flow.py"
    path.write_text(CHECKPOINT_FLOW.replace(", cache_for=__import__(\"datetime\").timedelta(hours=1)", ""))
    env = processes.env(live_server, RW_MARKS=str(tmp_path))
    client = live_server.a.client(live_server.url)
    os.environ["RW_MARKS"] = str(tmp_path)
    try:
        structure = runpy.run_path(str(path))["flow"].structure()
    finally:
        del os.environ["RW_MARKS"]
    flow_id = client.register_flow(structure["name"], structure["tasks"], structure["edges"])
    run_id = client.create_flow_run(flow_id)
    first = processes.run(["run", str(path), "--flow-run-id", run_id, "--json"], env)
    assert first.returncode == 0, first.stderr
    runs = {t.task_slug: t for t in client.get_flow_run_task_runs(run_id)}
    produce = next(t for slug, t in runs.items() if slug.startswith("produce"))
    consume = next(t for slug, t in runs.items() if slug.startswith("consume"))
    uri = produce.state._result.value
    live_server.stop()
    db = sqlite3.connect(live_server.db_path)
    with db:
        db.execute("UPDATE results SET data = substr(data, 1, 20) WHERE id = ?", (uri.rsplit("/", 1)[1],))
        # make the consumer run again, as after a crash that lost its state
        db.execute("UPDATE task_runs SET state = '{\"type\": \"Pending\"}', state_type = 'Pending' WHERE id = ?", (consume.id,))
        db.execute("UPDATE flow_runs SET state = '{\"type\": \"Running\"}', state_type = 'Running' WHERE id = ?", (run_id,))
    db.close()
    live_server.start()
    again = processes.run(["run", str(path), "--flow-run-id", run_id, "--json"], env)
    no_traceback(again.stderr)
    assert again.returncode == 1, again.stderr
    summary = json_summary(again.stdout)
    (row,) = [t for t in summary["tasks"] if t["slug"] == consume.task_slug]
    assert row["state"] == "Failed" and uri in row["message"] and "not a valid result" in row["message"], row
    assert (tmp_path / "produce.count").read_text().count("x") == 1  # the producer did not silently re-run
