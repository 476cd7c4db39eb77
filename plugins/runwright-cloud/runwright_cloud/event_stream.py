"""Reading a ``text/event-stream`` response (the server's ``GET /flow_runs/{id}/events``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests


def read_events(response: requests.Response) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """``(event, data, id)`` per event, until the stream closes; comments (keep-alives) are skipped."""
    kind: str = "message"
    data: list[str] = []
    event_id: str | None = None
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data)), event_id
            kind, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
