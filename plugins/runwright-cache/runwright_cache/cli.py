"""``runwright cache list`` and ``runwright cache clear``, built for the plugin object that
owns the store (:func:`make_cache_command`)."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from runwright_cache.store import CacheStore, CacheStoreError


def make_cache_command(get_store: Callable[[], CacheStore]) -> click.Group:
    """The ``cache`` group; ``get_store()`` gives the configured store when a command runs."""

    @click.group("cache")
    def cache_command() -> None:
        """Inspect or clear the local cache of task results."""

    cache_command.add_command(_list_command(get_store))
    cache_command.add_command(_clear_command(get_store))
    return cache_command


def _list_command(get_store: Callable[[], CacheStore]) -> click.Command:
    @click.command("list")
    @click.option("--task", "task", default=None, help="Only entries of this task (slug or name).")
    @click.option("--flow", "flow", default=None, help="Only entries of this flow.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per entry).")
    def list_command(task: str | None, flow: str | None, as_json: bool) -> None:
        """List cache entries, newest first within each task."""
        store = get_store()
        try:
            entries = store.entries(task=task, flow=flow)
        except CacheStoreError as exc:
            raise click.ClickException(str(exc)) from exc
        rows = [entry.to_dict() for entry in entries]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            click.echo(f"No cache entries in {store.path}" + (f" for task {task!r}" if task else "") + ".")
            return
        headers = ["flow", "task", "map index", "created (UTC)", "expires (UTC)", "key", "result"]
        table = [
            [
                row["flow_name"],
                row["task_slug"],
                "" if row["map_index"] is None else str(row["map_index"]),
                row["created"] or "",
                row["expires"] or "never",
                (row["cache_key"] or "")[:12],
                str(row["result_location"] or ""),
            ]
            for row in rows
        ]
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
        click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        for row_cells in table:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row_cells, widths)))
        click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'} in {store.path}")

    return list_command


def _clear_command(get_store: Callable[[], CacheStore]) -> click.Command:
    @click.command("clear")
    @click.option("--task", "task", default=None, help="Only entries of this task (slug or name).")
    @click.option("--flow", "flow", default=None, help="Only entries of this flow.")
    def clear_command(task: str | None, flow: str | None) -> None:
        """Delete cache entries (all of them by default).

        Without --task/--flow a corrupt cache database is deleted and recreated empty.
        Result files stay where their result handler wrote them.
        """
        store = get_store()
        try:
            count = store.clear(task=task, flow=flow)
        except CacheStoreError as exc:
            if task is not None or flow is not None:
                raise click.ClickException(f"{exc}\nRun `runwright cache clear` without --task/--flow to recreate it.") from exc
            store.recreate()
            click.echo(f"The cache database {store.path} was unreadable ({exc.__cause__}); recreated it empty.")
            return
        click.echo(f"Deleted {count} cache entr{'y' if count == 1 else 'ies'} from {store.path}.")

    return clear_command
