"""The store's bookkeeping and the ``runwright cache`` commands."""

from __future__ import annotations

import datetime
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from runwright import Flow, Parameter, task
from runwright_cache.identity import TaskIdentity
from runwright_cache.plugin import runwright_register_commands
from runwright_cache.store import CacheStore, CacheStoreError

IDENTITY = TaskIdentity("flow", "task-1", None)


def test_entries_are_newest_first_and_bounded_per_task(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.db", max_entries_per_task=3)
    for i in range(5):
        store.add(IDENTITY, "task", "{}", cache_key=str(i), created=1000.0 + i)
    assert [e.cache_key for e in store.candidates(IDENTITY)] == ["4", "3", "2"]
    store.add(IDENTITY, "task", "{}", cache_key="3", created=2000.0)  # same key replaces
    assert [e.cache_key for e in store.candidates(IDENTITY)] == ["3", "4", "2"]
    assert [e.cache_key for e in store.candidates(IDENTITY, newer_than=1500.0)] == ["3"]


def test_the_cache_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.db")
    store.add(IDENTITY, "task", "{}", cache_key="k", created=1000.0)
    files = sorted(tmp_path.glob("c.db*"))
    assert files, "the store created no database file"
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {oct(0o600)}


def test_expired_entries_are_evicted(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.db")
    store.add(IDENTITY, "task", "{}", expires=time.time() - 1)
    store.add(TaskIdentity("flow", "other", 0), "other", "{}", expires=time.time() + 60)
    assert store.candidates(IDENTITY) == []
    assert store.evict_expired() == 1
    assert [e.identity for e in store.entries()] == [TaskIdentity("flow", "other", 0)]


def test_other_processes_writes_are_seen_by_a_loaded_snapshot(tmp_path: Path) -> None:
    reader, writer = CacheStore(tmp_path / "c.db"), CacheStore(tmp_path / "c.db")
    assert reader.candidates(IDENTITY) == []
    writer.add(IDENTITY, "task", "{}")
    assert len(reader.candidates(IDENTITY)) == 1
    writer.clear()
    assert reader.candidates(IDENTITY) == []


def test_a_lookup_with_max_staleness_sees_other_writes_late_at_most_that_long(tmp_path: Path) -> None:
    reader, writer = CacheStore(tmp_path / "c.db"), CacheStore(tmp_path / "c.db")
    assert reader.candidates(IDENTITY, max_staleness=0.3) == []
    writer.add(IDENTITY, "task", "{}")
    assert len(reader.candidates(IDENTITY)) == 1  # without max_staleness: always checked
    writer.clear()
    assert len(reader.candidates(IDENTITY, max_staleness=0.3)) == 1  # within the window
    time.sleep(0.35)
    assert reader.candidates(IDENTITY, max_staleness=0.3) == []  # the window is over
    writer.add(IDENTITY, "task", "{}")
    assert reader.candidates(IDENTITY, max_staleness=60) == []
    reader.expect_changes()  # what a flow run's start does
    assert len(reader.candidates(IDENTITY, max_staleness=60)) == 1


def test_a_corrupt_database_raises_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"\x00garbage" * 512)
    store = CacheStore(path)
    with pytest.raises(CacheStoreError, match="runwright cache clear"):
        store.candidates(IDENTITY)
    store.recreate()
    assert store.candidates(IDENTITY) == []


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("runwright")
    runwright_register_commands(group)
    return group


def _populate() -> None:
    @task(cache_for=datetime.timedelta(hours=1))
    def load(x: int) -> int:
        return x

    @task(cache_for=datetime.timedelta(hours=1))
    def transform(x: int) -> int:
        return x + 1

    with Flow("etl") as flow:
        transform(load(Parameter("x")))
    flow.run(x=1)


def test_cache_list_and_clear(cache_config: Any, cli: click.Group) -> None:
    _populate()
    runner = CliRunner()
    listing = runner.invoke(cli, ["cache", "list"])
    assert listing.exit_code == 0, listing.output
    assert "load-1" in listing.output and "transform-1" in listing.output and "2 entries" in listing.output
    as_json = json.loads(runner.invoke(cli, ["cache", "list", "--task", "load", "--json"]).output)
    assert [row["task_slug"] for row in as_json] == ["load-1"]
    assert as_json[0]["flow_name"] == "etl" and as_json[0]["result_location"].startswith("file://")
    cleared = runner.invoke(cli, ["cache", "clear", "--task", "load-1"])
    assert cleared.exit_code == 0 and "Deleted 1 cache entry" in cleared.output
    assert "transform-1" in runner.invoke(cli, ["cache", "list"]).output
    assert "Deleted 1 cache entry" in runner.invoke(cli, ["cache", "clear"]).output
    assert "No cache entries" in runner.invoke(cli, ["cache", "list"]).output


def test_cache_clear_recreates_a_corrupt_database(cache_config: Any, cache_db: Path, cli: click.Group) -> None:
    cache_db.parent.mkdir(parents=True, exist_ok=True)
    cache_db.write_bytes(b"garbage" * 1000)
    runner = CliRunner()
    listing = runner.invoke(cli, ["cache", "list"])
    assert listing.exit_code == 1 and "runwright cache clear" in listing.output
    partial = runner.invoke(cli, ["cache", "clear", "--task", "x"])
    assert partial.exit_code == 1 and "without --task" in partial.output
    cleared = runner.invoke(cli, ["cache", "clear"])
    assert cleared.exit_code == 0 and "recreated it empty" in cleared.output
    _populate()
    assert "2 entries" in runner.invoke(cli, ["cache", "list"]).output


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.db")
    store.add(IDENTITY, "task", "{}")
    assert len(store.candidates(IDENTITY)) == 1
    pid = os.fork()
    if pid == 0:  # the child: a lookup must not use the parent's connection
        code = 1
        try:
            found = len(store.candidates(IDENTITY, max_staleness=60))
            reconnected = store._pid == os.getpid()
            store.add(IDENTITY, "task", "{}")
            code = 0 if found == 1 and reconnected else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(store.candidates(IDENTITY)) == 2  # the parent's connection still works and sees the child's write
